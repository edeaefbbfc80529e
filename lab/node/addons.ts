/**
 * The site's addon DaemonSets on real lab nodes, as the API shows them: which Multus and
 * Whereabouts pods run where, from which image. Pods ask for the site network only once Multus has
 * written its config on their node, so the lab starts a workload after every node runs both.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { KubeHttp } from '../runtime/kube-http.ts';

/** The addon DaemonSets (templates/site), by their pods' app.kubernetes.io/name. */
export const ADDON_APPS = ['multus', 'whereabouts'] as const;
export type AddonApp = (typeof ADDON_APPS)[number];

export interface AddonPodObservation {
  readonly name: string;
  readonly app: AddonApp;
  readonly node: string | null;
  readonly phase: string;
  readonly ready: boolean;
  readonly restarts: number;
  /** The images of its containers (init containers first). */
  readonly images: readonly string[];
}

interface RawAddonPod {
  metadata: { name: string; labels?: Record<string, string>; deletionTimestamp?: string };
  spec?: { nodeName?: string; initContainers?: { image: string }[]; containers?: { image: string }[] };
  status?: {
    phase?: string;
    conditions?: { type: string; status: string }[];
    containerStatuses?: { restartCount?: number }[];
  };
}

/** addonPodObservations picks the addon pods out of kube-system's pods (pure). */
export function addonPodObservations(pods: readonly RawAddonPod[]): AddonPodObservation[] {
  return pods
    .filter((p) => !p.metadata.deletionTimestamp)
    .flatMap((p) => {
      const app = ADDON_APPS.find((a) => a === p.metadata.labels?.['app.kubernetes.io/name']);
      if (!app) return [];
      return [
        {
          name: p.metadata.name,
          app,
          node: p.spec?.nodeName ?? null,
          phase: p.status?.phase ?? 'Unknown',
          ready: p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false,
          restarts: (p.status?.containerStatuses ?? []).reduce((n, c) => n + (c.restartCount ?? 0), 0),
          images: [...(p.spec?.initContainers ?? []), ...(p.spec?.containers ?? [])].map((c) => c.image),
        },
      ];
    })
    .sort((a, b) => `${a.node}/${a.app}`.localeCompare(`${b.node}/${b.app}`));
}

/** observeAddonPods reads the addon pods from a server. */
export async function observeAddonPods(api: KubeHttp): Promise<AddonPodObservation[]> {
  const list = (await api.ok('GET', '/api/v1/namespaces/kube-system/pods')) as { items: RawAddonPod[] };
  return addonPodObservations(list.items);
}

/** addonsRunning: on every node of `nodes`, one pod of each addon runs and is Ready. */
export function addonsRunning(
  pods: readonly AddonPodObservation[],
  nodes: readonly string[],
): { ok: boolean; why: string } {
  const missing = nodes.flatMap((n) =>
    ADDON_APPS.filter(
      (app) => !pods.some((p) => p.node === n && p.app === app && p.phase === 'Running' && p.ready),
    ).map((app) => `${app} on ${n}`),
  );
  return missing.length
    ? { ok: false, why: `not running: ${missing.join(', ')}` }
    : { ok: true, why: `${ADDON_APPS.join(' and ')} run on ${nodes.length} nodes` };
}

/**
 * What the addon pods write on their node (lab/node/real-node.ts's directory layout): the
 * plugins, Multus' config wrapping the pod network and Whereabouts' flat file. A pod of theirs is
 * Running as soon as its container starts, a moment before these are in place.
 */
export const ADDON_NODE_FILES = [
  'cni/bin/multus',
  'cni/bin/whereabouts',
  'cni/bin/macvlan',
  'cni/net.d/00-multus.conf',
  'cni/net.d/multus.d/multus.kubeconfig',
  'cni/net.d/whereabouts.d/whereabouts.conf',
  'cni/net.d/whereabouts.d/whereabouts.kubeconfig',
] as const;

/** addonFilesMissing lists the ADDON_NODE_FILES a node's directory does not have yet. */
export function addonFilesMissing(nodeDir: string): string[] {
  return ADDON_NODE_FILES.filter((f) => !existsSync(join(nodeDir, f)));
}
