/**
 * The lab's demo workload on real nodes (`lab up --node real`): a Deployment and a StatefulSet of
 * the locally built demo image (lab/node/images/demo), each pod with a second interface on the
 * site network (the leader's NAD, a Whereabouts address). What `lab status` lists, what the
 * workload scenarios apply, and what their expectations are judged on, read from the real API:
 * pods with their node and site address, and the Whereabouts allocations.
 */
import { KubeHttp } from './runtime/kube-http.ts';

/** The site network every lab site has (renderLabSiteSpec). */
export const LAB_SITE_NETWORK = 'fleet';
/** Names of the demo workload's objects, in the site's namespace. */
export const WORKLOAD_DEPLOYMENT = 'demo-web';
export const WORKLOAD_STATEFULSET = 'demo-db';

export interface WorkloadSpec {
  /** Replicas of the Deployment and of the StatefulSet. */
  readonly deployment: number;
  readonly statefulset: number;
  /** Where the StatefulSet's pods prefer to run: on a worker (default) or on the leader. */
  readonly statefulsetOn?: 'worker' | 'leader';
}

export interface PodObservation {
  readonly name: string;
  readonly uid: string;
  /** Deployment or StatefulSet (by owner), else the owner's kind, or null. */
  readonly workload: string | null;
  readonly node: string | null;
  readonly phase: string;
  readonly ready: boolean;
  /** Has a deletionTimestamp: going, not counted as running. */
  readonly deleting: boolean;
  readonly restarts: number;
  /** The pod's address on the site network (Multus' network-status), or null. */
  readonly siteAddress: string | null;
}

export interface AllocationObservation {
  readonly ip: string;
  /** namespace/name of the pod Whereabouts holds it for. */
  readonly pod: string;
  /** The sandbox (container id) it was allocated to: a moved pod of the same name has another. */
  readonly id: string;
}

export interface WorkloadObservation {
  readonly pods: readonly PodObservation[];
  readonly allocations: readonly AllocationObservation[];
}

/** renderWorkload is the demo workload's objects for a site's namespace. */
export function renderWorkload(
  site: string,
  image: string,
  spec: WorkloadSpec,
  opts: { leader?: string } = {},
): Record<string, unknown>[] {
  const namespace = `site-${site}`;
  // The StatefulSet's pods prefer a worker (a robot loss is then a worker's) or the leader (a
  // leader loss then takes them too); the Deployment's spread as the scheduler likes.
  const prefer =
    opts.leader === undefined
      ? null
      : { operator: spec.statefulsetOn === 'leader' ? 'In' : 'NotIn', values: [opts.leader] };
  const podTemplate = (app: string, placed: typeof prefer) => ({
    metadata: {
      labels: { app },
      annotations: { 'k8s.v1.cni.cncf.io/networks': LAB_SITE_NETWORK },
    },
    spec: {
      terminationGracePeriodSeconds: 1,
      ...(placed
        ? {
            affinity: {
              nodeAffinity: {
                preferredDuringSchedulingIgnoredDuringExecution: [
                  {
                    weight: 100,
                    preference: {
                      matchExpressions: [{ key: 'kubernetes.io/hostname', ...placed }],
                    },
                  },
                ],
              },
            },
          }
        : {}),
      containers: [
        {
          name: 'demo',
          image,
          imagePullPolicy: 'Never',
          env: [{ name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } }],
          readinessProbe: { tcpSocket: { port: 8080 }, periodSeconds: 1 },
        },
      ],
    },
  });
  const meta = (name: string) => ({
    name,
    namespace,
    labels: { 'app.kubernetes.io/part-of': 'edgectl-lab-demo' },
  });
  return [
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: meta(WORKLOAD_DEPLOYMENT),
      spec: {
        replicas: spec.deployment,
        selector: { matchLabels: { app: WORKLOAD_DEPLOYMENT } },
        template: podTemplate(WORKLOAD_DEPLOYMENT, null),
      },
    },
    {
      apiVersion: 'apps/v1',
      kind: 'StatefulSet',
      metadata: meta(WORKLOAD_STATEFULSET),
      spec: {
        replicas: spec.statefulset,
        serviceName: WORKLOAD_STATEFULSET,
        selector: { matchLabels: { app: WORKLOAD_STATEFULSET } },
        template: podTemplate(WORKLOAD_STATEFULSET, prefer),
      },
    },
  ];
}

/** applyWorkload applies the demo workload server-side (idempotent). */
export async function applyWorkload(
  api: KubeHttp,
  objects: readonly Record<string, unknown>[],
): Promise<void> {
  for (const o of objects) {
    const m = o['metadata'] as { name: string; namespace: string };
    const plural = `${String(o['kind']).toLowerCase()}s`;
    await api.ok(
      'PATCH',
      `/apis/apps/v1/namespaces/${m.namespace}/${plural}/${m.name}?fieldManager=edgectl-lab&force=true`,
      o,
      'application/apply-patch+yaml',
    );
  }
}

interface RawPod {
  metadata: {
    name: string;
    uid: string;
    deletionTimestamp?: string;
    annotations?: Record<string, string>;
    ownerReferences?: { kind: string }[];
  };
  spec?: { nodeName?: string };
  status?: {
    phase?: string;
    conditions?: { type: string; status: string }[];
    containerStatuses?: { restartCount?: number }[];
  };
}

/** siteAddressOf reads a pod's site-network address from Multus' network-status annotation. */
export function siteAddressOf(annotations: Readonly<Record<string, string>> | undefined): string | null {
  const raw = annotations?.['k8s.v1.cni.cncf.io/network-status'];
  if (!raw) return null;
  try {
    const status = JSON.parse(raw) as { name?: string; interface?: string; ips?: string[] }[];
    const site = status.find((s) => s.name?.endsWith(`/${LAB_SITE_NETWORK}`));
    return site?.ips?.[0] ?? null;
  } catch {
    return null;
  }
}

/** podObservation is one pod as the lab reports it. */
export function podObservation(p: RawPod): PodObservation {
  const owner = p.metadata.ownerReferences?.[0]?.kind ?? null;
  return {
    name: p.metadata.name,
    uid: p.metadata.uid,
    workload: owner === 'ReplicaSet' ? 'Deployment' : owner,
    node: p.spec?.nodeName ?? null,
    phase: p.status?.phase ?? 'Unknown',
    ready: p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false,
    deleting: p.metadata.deletionTimestamp !== undefined,
    restarts: (p.status?.containerStatuses ?? []).reduce((n, c) => n + (c.restartCount ?? 0), 0),
    siteAddress: siteAddressOf(p.metadata.annotations),
  };
}

/** offsetAddress is the IPv4 address `offset` after the network address of `cidr`. */
export function offsetAddress(cidr: string, offset: number): string {
  const [base] = cidr.split('/');
  const n = base!.split('.').reduce((a, o) => a * 256 + Number(o), 0) + offset;
  return [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.');
}

interface RawPool {
  spec?: { range?: string; allocations?: Record<string, { id?: string; podref?: string }> };
}

/** allocationsOf lists every address the Whereabouts IPPools hold, with the pod and sandbox. */
export function allocationsOf(pools: readonly RawPool[]): AllocationObservation[] {
  return pools.flatMap((p) =>
    Object.entries(p.spec?.allocations ?? {}).map(([offset, a]) => ({
      ip: offsetAddress(p.spec?.range ?? '0.0.0.0/0', Number(offset)),
      pod: a.podref ?? '',
      id: a.id ?? '',
    })),
  );
}

/** observeWorkload reads the site namespace's pods and the Whereabouts allocations. */
export async function observeWorkload(api: KubeHttp, site: string): Promise<WorkloadObservation> {
  const [pods, pools] = (await Promise.all([
    api.ok('GET', `/api/v1/namespaces/site-${site}/pods`),
    api.call('GET', '/apis/whereabouts.cni.cncf.io/v1alpha1/ippools'),
  ])) as [{ items: RawPod[] }, { status: number; body: unknown }];
  return {
    pods: pods.items.map(podObservation).sort((a, b) => a.name.localeCompare(b.name)),
    allocations: pools.status === 200 ? allocationsOf((pools.body as { items: RawPool[] }).items) : [],
  };
}

/**
 * workloadReady: every replica of the workload runs Ready with a site address, none is going, on
 * a robot in `alive`, and no pod is there twice (exactly the desired count of each).
 */
export function workloadReady(
  w: WorkloadObservation,
  spec: WorkloadSpec,
  alive: ReadonlySet<string>,
): { ok: boolean; why: string } {
  for (const [kind, want] of [
    ['Deployment', spec.deployment],
    ['StatefulSet', spec.statefulset],
  ] as const) {
    const pods = w.pods.filter((p) => p.workload === kind);
    const good = pods.filter(
      (p) =>
        !p.deleting && p.phase === 'Running' && p.ready && p.siteAddress !== null && alive.has(p.node ?? ''),
    );
    if (good.length !== want || pods.length !== want)
      return {
        ok: false,
        why: `${kind}: ${good.length} of ${want} running with a site address (${pods.length} pods)`,
      };
  }
  return { ok: true, why: 'every replica runs with a site address' };
}

/** duplicateAddresses lists site addresses two live pods hold, or two allocations name. */
export function duplicateAddresses(w: WorkloadObservation): string[] {
  const seen = new Map<string, number>();
  for (const p of w.pods)
    if (p.siteAddress && !p.deleting) seen.set(p.siteAddress, (seen.get(p.siteAddress) ?? 0) + 1);
  for (const a of w.allocations) seen.set(`alloc:${a.ip}`, (seen.get(`alloc:${a.ip}`) ?? 0) + 1);
  return [...seen].filter(([, n]) => n > 1).map(([ip]) => ip.replace(/^alloc:/, ''));
}
