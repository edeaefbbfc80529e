/**
 * The k3s runtime on a robot (docs/k3s.md): K3sControlPlane runs plans through the robot's own
 * CommandRunner, and the leader applies the site with the SiteApplier through the k3s server's
 * admin kubeconfig. Built only when `controlPlane.runtime: k3s`, so other runtimes never load it.
 */
import type { Logger } from 'pino';
import { z } from 'zod';
import type { AgentConfig } from '../config.ts';
import { K3sControlPlane } from './k3s.ts';
import {
  DEFAULT_MAX_SNAPSHOT_BYTES,
  logSnapshotPush,
  SnapshotReceiver,
  SnapshotStore,
  type SnapshotKeys,
} from './snapshots.ts';
import { RECEIVED_SNAPSHOT_DIR } from '../k3s/paths.ts';
import { ConfigError } from '../errors.ts';
import { LocalCommandRunner } from '../exec/local.ts';
import { K3sSettingsSchema } from '../k3s/settings.ts';
import { readAddonTemplates } from '../site/addons.ts';
import { loadSiteSpec } from '../site/spec.ts';
import { parseSpecText } from '../site/spec-source.ts';

const k3sControlPlaneSchema = z.object({
  runtime: z.literal('k3s'),
  /** The robot's k3s settings (agent/k3s/settings.ts). */
  k3s: K3sSettingsSchema,
  /** The site spec the leader applies (bootstrap installs it). */
  siteSpecFile: z.string().min(1).default('/etc/edgectl/site.yaml'),
  /** The admin kubeconfig k3s server writes. */
  kubeconfig: z.string().min(1).default('/etc/rancher/k3s/k3s.yaml'),
  /** The addon templates bootstrap installs (CRDs, Multus, Whereabouts). */
  templatesDir: z.string().min(1).default('/opt/edgectl/templates'),
  /** Accept sealed snapshots from the leader (port 7948 on the node IP). */
  snapshotReceiver: z.boolean().default(true),
  receivedSnapshotDir: z.string().min(1).default(RECEIVED_SNAPSHOT_DIR),
  /** The largest snapshot the receiver accepts. */
  snapshotMaxBytes: z.number().int().positive().default(DEFAULT_MAX_SNAPSHOT_BYTES),
});

export async function makeK3sControlPlane(
  config: AgentConfig,
  log: Logger,
  snapshotKeysFor?: (peer: string) => readonly Buffer[],
): Promise<K3sControlPlane> {
  const r = k3sControlPlaneSchema.safeParse(config.controlPlane);
  if (!r.success)
    throw new ConfigError(
      'controlPlane (k3s runtime)',
      r.error.issues.map((i) => `controlPlane.${i.path.join('.')}: ${i.message}`),
      { hint: 'edgectl bootstrap site writes these fields; see docs/k3s.md' },
    );
  const spec = loadSiteSpec(r.data.siteSpecFile);
  const templates = readAddonTemplates(r.data.templatesDir);
  // Every server-capable robot keeps the snapshots the leader pushes, to restore when it leads.
  const keys: SnapshotKeys | undefined = snapshotKeysFor ? { forPeer: snapshotKeysFor } : undefined;
  let receiver: SnapshotReceiver | undefined;
  if (keys && r.data.k3s.serverCapable && r.data.snapshotReceiver) {
    receiver = await SnapshotReceiver.start({
      self: config.node.id,
      address: r.data.k3s.nodeIp,
      keys,
      store: new SnapshotStore(r.data.receivedSnapshotDir, 3, ''),
      maxBytes: r.data.snapshotMaxBytes,
      onPush: logSnapshotPush(log, config.node.id),
    });
    receiver.server.unref();
  }
  return new K3sControlPlane({
    snapshotKeys: keys,
    receiver,
    runner: new LocalCommandRunner({ log: (line) => log.debug(line) }),
    node: { ...r.data.k3s, site: config.site.id, nodeName: config.node.id },
    site: {
      apply: async (epoch, committed) => {
        // The newest spec committed in the site log wins over the installed file.
        const applied = committed
          ? await parseSpecText(committed.text, `site spec version ${committed.version}`)
          : spec;
        // Only a leader applies the site, so the Kubernetes client loads when this robot first leads.
        const { kubeSiteApplier } = await import('../site/kube-site.ts');
        const report = await kubeSiteApplier(r.data.kubeconfig, { spec: applied, log, templates }).apply(
          epoch,
        );
        log.info(
          { epoch, report, specVersion: committed?.version ?? null },
          `${config.node.id} applied site ${applied.id} for epoch ${epoch}`,
        );
      },
    },
    siteMembers: () => [config.node.id, ...config.voters, ...config.network.seeds.map((s) => s.node)],
  });
}
