/**
 * K3sSettings: a robot's k3s settings, as the agent config (`controlPlane.k3s`) carries them, and
 * K3sNodeSpec, what every renderer and plan in agent/k3s/ takes. Defaults are for robots on Wi-Fi.
 */
import { z } from 'zod';
import { interfaceNameProblem } from '../interface-name.ts';
import { RECEIVED_SNAPSHOT_DIR } from './paths.ts';

const labelKey = /^([a-z0-9]([-a-z0-9.]*[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const labelValue = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/;

export const K3sSettingsSchema = z
  .object({
    /** The robot's address on the site network: node-ip, and the address workers reach a leader at. */
    nodeIp: z.union([z.ipv4(), z.ipv6()]),
    /** The Wi-Fi interface flannel runs over (flannel-iface). */
    flannelIface: z
      .string()
      .superRefine((s, ctx) => {
        const p = interfaceNameProblem(s);
        if (p) ctx.addIssue({ code: 'custom', message: p });
      })
      .default('wlan0'),
    /** Whether this robot may be elected and run the k3s server; workers get no server files. */
    serverCapable: z.boolean().default(true),
    /** Extra node labels. k3s applies node-label when a node registers, not on later restarts. */
    labels: z.record(z.string().regex(labelKey), z.string().regex(labelValue)).default({}),
    /** Extra names and addresses for the server certificate (tls-san); node name and IP are added by k3s. */
    tlsSans: z.array(z.string().min(1)).default([]),
    /** Packaged components not to deploy (disable). Robots need no ingress or service load balancer. */
    disable: z.array(z.string().min(1)).default(['traefik', 'servicelb']),
  })
  .strict();

export type K3sSettings = z.infer<typeof K3sSettingsSchema>;

/** K3sNodeSpec: everything agent/k3s/ renders for one robot. */
export interface K3sNodeSpec extends K3sSettings {
  /** The site id (labels, snapshot names). */
  readonly site: string;
  /** The robot's node id: the Kubernetes node name. */
  readonly nodeName: string;
}

/**
 * K3sControlPlaneSchema: the agent config's `controlPlane` section for `runtime: k3s`. The config
 * loader validates it (agent/config.ts), in the child process on robots, so the k3s runtime's chunk
 * reads the values with their defaults and loads no zod into the agent.
 */
export const K3sControlPlaneSchema = z
  .object({
    runtime: z.literal('k3s'),
    /** The robot's k3s settings. */
    k3s: K3sSettingsSchema,
    /** The site spec the leader applies while the site log holds none (bootstrap installs it). */
    siteSpecFile: z.string().min(1).default('/etc/edgectl/site.yaml'),
    /** The admin kubeconfig k3s server writes. */
    kubeconfig: z.string().min(1).default('/etc/rancher/k3s/k3s.yaml'),
    /** The addon templates bootstrap installs (CRDs, Multus, Whereabouts). */
    templatesDir: z.string().min(1).default('/opt/edgectl/templates'),
    /** Accept sealed snapshots from the leader (port 7948 on the node IP). */
    snapshotReceiver: z.boolean().default(true),
    receivedSnapshotDir: z.string().min(1).default(RECEIVED_SNAPSHOT_DIR),
    /** The largest snapshot the receiver accepts (default: agent/control-plane/snapshots.ts). */
    snapshotMaxBytes: z.number().int().positive().optional(),
  })
  .strict();

export type K3sControlPlaneConfig = z.output<typeof K3sControlPlaneSchema>;
