/**
 * The applier's decisions, as pure functions over objects it has read: how an apply changed an
 * object, what to prune, how to add and remove the out-of-service taint, which Whereabouts
 * allocations a lost robot's pods hold. applier.ts does the I/O around them.
 */
import { LABEL_EPOCH, objectKey, type KubeObject } from './objects.ts';

export type ApplyAction = 'created' | 'updated' | 'unchanged';

/**
 * classifyApply: no object before means created; a new resourceVersion means the apply changed it
 * (the API server does not bump it for a no-op server-side apply).
 */
export function classifyApply(before: KubeObject | null, after: KubeObject): ApplyAction {
  if (!before) return 'created';
  return before.metadata.resourceVersion === after.metadata.resourceVersion ? 'unchanged' : 'updated';
}

/** pruneCandidates: the existing objects (already selected by the site's labels) the render no longer names. */
export function pruneCandidates(
  existing: readonly KubeObject[],
  desired: readonly KubeObject[],
): KubeObject[] {
  const wanted = new Set(desired.map(objectKey));
  return existing.filter((o) => !wanted.has(objectKey(o)));
}

/** epochOf reads an object's edgectl epoch label, or null. */
export function epochOf(o: KubeObject | null): number | null {
  const v = o?.metadata.labels?.[LABEL_EPOCH];
  return v !== undefined && /^[0-9]+$/.test(v) ? Number(v) : null;
}

export interface Taint {
  key: string;
  value?: string;
  effect: string;
  timeAdded?: string;
}

/**
 * The non-graceful node shutdown taint: pods on the Node that do not tolerate it are force-deleted
 * and their volumes detached, so they reschedule without waiting for the robot.
 */
/**
 * Set on a Node with the out-of-service taint when edgectl's leader put the taint there: edgectl
 * takes off only the taints it set, never one an operator set by hand.
 */
export const TAINTED_BY_EDGECTL = 'edgectl.io/out-of-service';

export const OUT_OF_SERVICE_TAINT: Taint = {
  key: 'node.kubernetes.io/out-of-service',
  value: 'nodeshutdown',
  effect: 'NoExecute',
};

export function hasTaint(taints: readonly Taint[], t: Taint): boolean {
  return taints.some((x) => x.key === t.key && x.effect === t.effect);
}

/** withTaint adds `t` unless a taint with its key and effect is there; null when nothing changes. */
export function withTaint(taints: readonly Taint[], t: Taint): Taint[] | null {
  return hasTaint(taints, t) ? null : [...taints, t];
}

/** withoutTaint removes every taint with `t`'s key and effect; null when there is none. */
export function withoutTaint(taints: readonly Taint[], t: Taint): Taint[] | null {
  return hasTaint(taints, t) ? taints.filter((x) => !(x.key === t.key && x.effect === t.effect)) : null;
}

export function taintsOf(node: KubeObject): Taint[] {
  const spec = node.spec as { taints?: Taint[] } | undefined;
  return spec?.taints ?? [];
}

interface IpPoolSpec {
  range?: string;
  allocations?: Record<string, { id?: string; podref?: string; ifname?: string }>;
}

/** heldAllocations lists the offsets in an IPPool whose podref is one of `podRefs` (namespace/name). */
export function heldAllocations(pool: KubeObject, podRefs: ReadonlySet<string>): string[] {
  const allocations = (pool.spec as IpPoolSpec | undefined)?.allocations ?? {};
  return Object.entries(allocations)
    .filter(([, a]) => a.podref !== undefined && podRefs.has(a.podref))
    .map(([offset]) => offset)
    .sort((a, b) => Number(a) - Number(b));
}

/** reservationHeld: an OverlappingRangeIPReservation whose podref is one of `podRefs`. */
export function reservationHeld(reservation: KubeObject, podRefs: ReadonlySet<string>): boolean {
  const podref = (reservation.spec as { podref?: string } | undefined)?.podref;
  return podref !== undefined && podRefs.has(podref);
}

interface Toleration {
  key?: string;
  operator?: 'Exists' | 'Equal';
  value?: string;
  effect?: string;
}

/**
 * tolerates: does the pod tolerate `t`, by Kubernetes' rules (an empty key with Exists tolerates
 * everything; an empty effect matches every effect; Equal is the default operator)?
 */
export function tolerates(pod: KubeObject, t: Taint): boolean {
  const tolerations = (pod.spec as { tolerations?: Toleration[] } | undefined)?.tolerations ?? [];
  return tolerations.some((x) => {
    if (x.effect && x.effect !== t.effect) return false;
    if (x.operator === 'Exists') return !x.key || x.key === t.key;
    return x.key === t.key && (x.value ?? '') === (t.value ?? '');
  });
}

export function podRef(pod: KubeObject): string {
  return `${pod.metadata.namespace ?? 'default'}/${pod.metadata.name}`;
}
