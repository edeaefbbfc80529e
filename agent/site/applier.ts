/**
 * SiteApplier: what the leader does to its control plane for the site (docs/site.md).
 *
 *   apply(epoch)            on every new epoch, and to reconcile while it leads: install the CRDs and
 *                           wait until they are Established, server-side apply the addons and the
 *                           site's objects (fieldManager edgectl, force), prune the site objects
 *                           the spec no longer names, and take the out-of-service taint off every
 *                           Node (the leader marks the robots still lost again once it serves).
 *   markNodeLost(node)      when membership has called a worker dead for nodeLoss.graceSeconds:
 *                           taint it out-of-service (or delete it) and free its Whereabouts IPs.
 *   markNodeReturned(node)  when it is back: remove the taint.
 *
 * KubeSiteApplier (kube-site.ts) talks to a real API server; InMemorySiteApplier
 * (testing/in-memory-applier.ts) is its twin for tests. Both run the same logic (ObjectSiteApplier)
 * over an ObjectClient, and applier.contract.ts holds them, and a real kube-apiserver, to the same
 * behaviour. This module loads no client: the leader gives it the one it reaches its server with.
 */
import { EdgeError, InternalError } from '../errors.ts';
import { isCrd, renderSiteAddons, type AddonTemplate } from './addon-objects.ts';
import { ConflictError, refOf, type ObjectClient, type ObjectRef } from './object-client.ts';
import { describeObject, PRUNABLE_KINDS, siteSelector, type KubeObject } from './objects.ts';
import {
  classifyApply,
  epochOf,
  hasTaint,
  heldAllocations,
  OUT_OF_SERVICE_TAINT,
  podRef,
  tolerates,
  pruneCandidates,
  reservationHeld,
  TAINTED_BY_EDGECTL,
  taintsOf,
  withoutTaint,
  withTaint,
  type ApplyAction,
} from './plan.ts';
import { renderSite } from './render.ts';
import type { SiteSpec } from './spec.ts';
import { siteNamespace } from './spec-names.ts';

export interface AppliedObject {
  readonly kind: string;
  readonly namespace?: string;
  readonly name: string;
  readonly action: ApplyAction | 'pruned';
}

export interface ApplyReport {
  readonly epoch: number;
  readonly created: number;
  readonly updated: number;
  readonly unchanged: number;
  readonly pruned: number;
  /** Every object, in apply order, then the pruned ones. */
  readonly objects: readonly AppliedObject[];
  /** Nodes whose out-of-service taint this apply took off. */
  readonly untaintedNodes: readonly string[];
}

export interface NodeLostReport {
  readonly node: string;
  readonly action: 'taint' | 'delete';
  /** False when no Node of that name exists (it never joined, or was deleted already). */
  readonly nodeFound: boolean;
  /** Pods the API server still places on the node: whose IPs were freed. */
  readonly pods: number;
  /** Of those, the ones deleted at once (all but those that tolerate the out-of-service taint). */
  readonly forceDeletedPods: number;
  readonly freedAllocations: number;
  readonly deletedReservations: number;
}

export interface NodeReturnedReport {
  readonly node: string;
  readonly nodeFound: boolean;
  /** True when the out-of-service taint was there and is now removed. */
  readonly untainted: boolean;
}

/** What the leader knows when it applies: the robots it holds lost now (their taint stays). */
export interface ApplyOptions {
  readonly stillLost?: ReadonlySet<string>;
}

export interface SiteApplier {
  apply(epoch: number, o?: ApplyOptions): Promise<ApplyReport>;
  markNodeLost(nodeName: string): Promise<NodeLostReport>;
  markNodeReturned(nodeName: string): Promise<NodeReturnedReport>;
}

/** The slice of a pino logger the applier uses. */
export interface SiteLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

const silentLog: SiteLog = { info: () => undefined, warn: () => undefined };

export interface SiteApplierOptions {
  readonly spec: SiteSpec;
  readonly log?: SiteLog;
  /** Install the CRDs, Multus and Whereabouts (templates/). Default true. */
  readonly addons?: boolean;
  /**
   * The addon templates, parsed (addons.ts readAddonTemplates): needed unless addons is false. This
   * module reads no YAML, so that the leader's apply path does not load the parser.
   */
  readonly templates?: readonly AddonTemplate[];
  /** How long to wait for the CRDs to be Established. Default 60 s. */
  readonly crdTimeoutMs?: number;
  /** How long to wait between polls (CRD status, discovery). Injected so tests need not wait. */
  readonly sleep?: (ms: number) => Promise<void>;
}

const IPPOOL = { apiVersion: 'whereabouts.cni.cncf.io/v1alpha1', kind: 'IPPool' };
const RESERVATION = { apiVersion: 'whereabouts.cni.cncf.io/v1alpha1', kind: 'OverlappingRangeIPReservation' };
const CONFLICT_RETRIES = 5;

/** StaleEpochError: the cluster holds the site at a newer epoch than the one asked to apply. */
export class StaleEpochError extends EdgeError {
  constructor(epoch: number, seen: number) {
    super('SITE_STALE_EPOCH', `the site was applied at epoch ${seen}, newer than ${epoch}: not applying`, {
      hint: 'a newer leader owns the site; this robot should have stepped down (it is fenced by its term)',
    });
  }
}

/** ObjectSiteApplier is the SiteApplier logic over any ObjectClient. */
export class ObjectSiteApplier implements SiteApplier {
  protected readonly client: ObjectClient;
  private readonly spec: SiteSpec;
  private readonly log: SiteLog;
  private readonly templates: readonly AddonTemplate[];
  private readonly crdTimeoutMs: number;
  private readonly sleep: (ms: number) => Promise<void>;

  constructor(client: ObjectClient, opts: SiteApplierOptions) {
    this.client = client;
    this.spec = opts.spec;
    this.log = opts.log ?? silentLog;
    if (opts.addons !== false && !opts.templates)
      throw new InternalError('a site applier that installs the addons needs their templates');
    this.templates = opts.addons === false ? [] : opts.templates!;
    this.crdTimeoutMs = opts.crdTimeoutMs ?? 60_000;
    this.sleep = opts.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
  }

  /** render is everything apply would write at `epoch`, in order: CRDs, addons, the site. */
  render(epoch: number): KubeObject[] {
    return [
      ...renderSiteAddons(this.templates, { site: this.spec.id, epoch, images: this.spec.addons?.images }),
      ...renderSite(this.spec, { epoch }),
    ];
  }

  async apply(epoch: number, o: ApplyOptions = {}): Promise<ApplyReport> {
    if (!Number.isSafeInteger(epoch) || epoch < 0) throw new InternalError(`apply: bad epoch ${epoch}`);
    const ns = await this.client.get({ apiVersion: 'v1', kind: 'Namespace', name: siteNamespace(this.spec) });
    const seen = epochOf(ns);
    if (seen !== null && seen > epoch) throw new StaleEpochError(epoch, seen);

    const desired = this.render(epoch);
    const crds = desired.filter(isCrd);
    const objects: AppliedObject[] = [];
    for (const o of crds) objects.push(await this.applyOne(o));
    await this.waitEstablished(crds);
    for (const o of desired.filter((x) => !isCrd(x))) objects.push(await this.applyOne(o));

    const existing: KubeObject[] = [];
    for (const k of PRUNABLE_KINDS)
      existing.push(
        ...(await this.client.list(k.apiVersion, k.kind, { labelSelector: siteSelector(this.spec.id) })),
      );
    for (const o of pruneCandidates(existing, desired)) {
      if (await this.client.delete(refOf(o))) objects.push({ ...nameOf(o), action: 'pruned' });
    }

    // The taint stands for a leader's decision that a robot is lost, which a leader holds only
    // while it serves: a new leader starts with no robot lost and marks the ones still gone again
    // once it serves. A taint left behind (restored from a snapshot or replica taken while the
    // robot was away, or set by a leader that has gone) would keep every pod off a robot that is
    // back, and no leader would remove it. A reconcile keeps the taints of the robots this leader
    // still holds lost.
    const untaintedNodes: string[] = [];
    for (const node of await this.client.list('v1', 'Node')) {
      if (o.stillLost?.has(node.metadata.name) || !taintedByEdgectl(node)) continue;
      let untainted = false;
      await this.updateWithRetry(refOf(node), (current) => {
        const u = untaint(current);
        untainted = u.untainted;
        return u.patch;
      });
      if (untainted) untaintedNodes.push(node.metadata.name);
    }

    const count = (a: AppliedObject['action']) => objects.filter((o) => o.action === a).length;
    const report: ApplyReport = {
      epoch,
      created: count('created'),
      updated: count('updated'),
      unchanged: count('unchanged'),
      pruned: count('pruned'),
      objects,
      untaintedNodes,
    };
    this.log.info(
      {
        epoch,
        created: report.created,
        updated: report.updated,
        unchanged: report.unchanged,
        pruned: report.pruned,
        ...(untaintedNodes.length ? { untaintedNodes } : {}),
      },
      'site applied',
    );
    return report;
  }

  private async applyOne(o: KubeObject): Promise<AppliedObject> {
    const before = await this.client.get(refOf(o));
    const after = await this.withDiscoveryRetry(o, () => this.client.apply(o));
    return { ...nameOf(o), action: classifyApply(before, after) };
  }

  /**
   * withDiscoveryRetry: right after a CRD is Established, the API server's discovery may not list
   * its kind for a moment; the client then cannot find the kind's path. Retry that for a few seconds.
   */
  private async withDiscoveryRetry<T>(o: KubeObject, f: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await f();
      } catch (e) {
        if (attempt >= 20 || !/Unrecognized API version and kind/.test((e as Error).message)) throw e;
        this.log.warn({ object: describeObject(o), attempt }, 'kind not yet served; retrying');
        await this.sleep(250);
      }
    }
  }

  private async waitEstablished(crds: readonly KubeObject[]): Promise<void> {
    const waited = { ms: 0 };
    for (const crd of crds) {
      for (;;) {
        const got = await this.client.get(refOf(crd));
        const conditions = (got?.status as { conditions?: { type: string; status: string }[] } | undefined)
          ?.conditions;
        if (conditions?.some((c) => c.type === 'Established' && c.status === 'True')) break;
        if (waited.ms >= this.crdTimeoutMs)
          throw new EdgeError('SITE_CRD_NOT_ESTABLISHED', `CRD ${crd.metadata.name} is not Established`, {
            hint: `the API server did not accept the CRD within ${this.crdTimeoutMs / 1000}s: look at its status.conditions (kubectl get crd ${crd.metadata.name} -o yaml)`,
          });
        await this.sleep(200);
        waited.ms += 200;
      }
    }
  }

  async markNodeLost(nodeName: string): Promise<NodeLostReport> {
    const action = this.spec.nodeLoss.action;
    const pods = await this.client.list('v1', 'Pod', { fieldSelector: `spec.nodeName=${nodeName}` });
    const refs = new Set(pods.map(podRef));
    const nodeRef: ObjectRef = { apiVersion: 'v1', kind: 'Node', name: nodeName };

    // The Node first, so its pods start moving; then their IPs, so the moved pods can have them.
    let nodeFound: boolean;
    if (action === 'delete') nodeFound = await this.client.delete(nodeRef);
    else
      nodeFound = await this.updateWithRetry(nodeRef, (node) => {
        // A taint already there is an operator's (or ours, annotated): it stays theirs.
        const taints = withTaint(taintsOf(node), OUT_OF_SERVICE_TAINT);
        return taints && { metadata: { annotations: { [TAINTED_BY_EDGECTL]: 'true' } }, spec: { taints } };
      });

    // What the pod garbage collector does for an out-of-service node, at once rather than on its
    // next pass (every 20 s, not configurable): the robot has been unheard for the grace period
    // already, and a StatefulSet's replacement cannot start while the old pod object exists.
    let forceDeletedPods = 0;
    for (const pod of pods)
      if (
        !tolerates(pod, OUT_OF_SERVICE_TAINT) &&
        (await this.client.delete(refOf(pod), { gracePeriodSeconds: 0 }))
      )
        forceDeletedPods++;

    let freedAllocations = 0;
    for (const pool of await this.client.list(IPPOOL.apiVersion, IPPOOL.kind)) {
      let freedHere = 0;
      await this.updateWithRetry(refOf(pool), (current) => {
        const held = heldAllocations(current, refs);
        freedHere = held.length;
        return held.length ? { spec: { allocations: Object.fromEntries(held.map((k) => [k, null])) } } : null;
      });
      freedAllocations += freedHere;
    }
    let deletedReservations = 0;
    for (const r of await this.client.list(RESERVATION.apiVersion, RESERVATION.kind))
      if (reservationHeld(r, refs) && (await this.client.delete(refOf(r)))) deletedReservations++;

    const report: NodeLostReport = {
      node: nodeName,
      action,
      nodeFound,
      pods: pods.length,
      forceDeletedPods,
      freedAllocations,
      deletedReservations,
    };
    this.log.info({ ...report }, 'node marked lost');
    return report;
  }

  async markNodeReturned(nodeName: string): Promise<NodeReturnedReport> {
    let untainted = false;
    const nodeFound = await this.updateWithRetry(
      { apiVersion: 'v1', kind: 'Node', name: nodeName },
      (node) => {
        const u = untaint(node);
        untainted = u.untainted;
        return u.patch;
      },
    );
    const report: NodeReturnedReport = { node: nodeName, nodeFound, untainted };
    this.log.info({ ...report }, 'node marked returned');
    return report;
  }

  /**
   * updateWithRetry reads an object, asks `change` for a merge patch (null: nothing to do), and
   * patches it at the version it read, again from the read on a conflict. False if it does not exist.
   */
  private async updateWithRetry(
    ref: ObjectRef,
    change: (current: KubeObject) => Record<string, unknown> | null,
  ): Promise<boolean> {
    for (let attempt = 0; ; attempt++) {
      const current = await this.client.get(ref);
      if (!current) return false;
      const patch = change(current);
      if (!patch) return true;
      try {
        await this.client.mergePatch(ref, patch, current.metadata.resourceVersion);
        return true;
      } catch (e) {
        if (!(e instanceof ConflictError) || attempt >= CONFLICT_RETRIES) throw e;
      }
    }
  }
}

function nameOf(o: KubeObject): Omit<AppliedObject, 'action'> {
  return {
    kind: o.kind,
    ...(o.metadata.namespace === undefined ? {} : { namespace: o.metadata.namespace }),
    name: o.metadata.name,
  };
}

/** taintedByEdgectl: the Node has the out-of-service taint, and edgectl's leader set it. */
function taintedByEdgectl(node: KubeObject): boolean {
  return (
    node.metadata.annotations?.[TAINTED_BY_EDGECTL] !== undefined &&
    hasTaint(taintsOf(node), OUT_OF_SERVICE_TAINT)
  );
}

/**
 * untaint: the merge patch that takes edgectl's out-of-service taint and its mark off (null: edgectl
 * set none), and whether a taint goes with it.
 */
function untaint(node: KubeObject): { patch: Record<string, unknown> | null; untainted: boolean } {
  if (node.metadata.annotations?.[TAINTED_BY_EDGECTL] === undefined) return { patch: null, untainted: false };
  const taints = withoutTaint(taintsOf(node), OUT_OF_SERVICE_TAINT);
  return {
    patch: {
      metadata: { annotations: { [TAINTED_BY_EDGECTL]: null } },
      ...(taints ? { spec: { taints } } : {}),
    },
    untainted: taints !== null,
  };
}
