/**
 * Continuous replication of the control plane's datastore to a voter (docs/k3s.md "Replication"):
 * the pure decisions, shared by the lab runtime and the k3s runtime. No I/O here: the runtimes ask
 * etcd for its members and its revision, call these functions, and do what they return.
 *
 * A replica is an etcd learner member of the leader's etcd for one epoch. It receives the raft log
 * asynchronously (the leader's writes never wait for it) and applies it with the leader's revisions.
 * Its position is (epoch, revision): the epoch of the leader it followed, then the revision it has
 * applied. Positions of different epochs compare by epoch first, like Raft's (lastTerm, lastIndex):
 * a replica of a newer epoch holds the one history the site kept, whatever the revision numbers of
 * an older epoch's divergent writes.
 */
import type { NodeId } from '../../statecharts/messages.ts';
import type { SnapshotRecord } from './runtime.ts';

export interface ReplicaPosition {
  /** The epoch (term) of the leader whose etcd this replica follows or followed. */
  readonly epoch: number;
  /** The newest etcd revision the replica has applied. */
  readonly revision: number;
}

/** What a voter without a replica reports: below every real position. */
export const NO_REPLICA: ReplicaPosition = { epoch: 0, revision: 0 };

/** compareReplica orders older before newer: epoch, then revision. */
export function compareReplica(a: ReplicaPosition, b: ReplicaPosition): number {
  return a.epoch - b.epoch || a.revision - b.revision;
}

export function describeReplica(p: ReplicaPosition | null): string {
  return p === null || compareReplica(p, NO_REPLICA) === 0 ? 'none' : `e${p.epoch}@${p.revision}`;
}

/**
 * Where a new leader's datastore comes from: its own replica, else the newest committed snapshot
 * it holds, else nothing (a new site).
 */
export type TakeoverSource =
  | { readonly kind: 'replica'; readonly position: ReplicaPosition }
  | { readonly kind: 'snapshot'; readonly record: SnapshotRecord }
  | { readonly kind: 'empty' };

/**
 * takeoverSource: the replica when it has applied anything and belongs to an epoch no older than
 * the newest committed snapshot this robot can restore. A replica of the same epoch as that
 * snapshot wins: it kept applying after the snapshot was taken (a snapshot is a point in the same
 * raft log the replica follows), unless it was cut off before; the site log does not say which, and
 * the common case is the replica. A replica of an older epoch lost to a newer leader's snapshot.
 */
export function takeoverSource(o: {
  readonly replica: ReplicaPosition | null;
  readonly snapshot: SnapshotRecord | null;
}): TakeoverSource {
  const r = o.replica;
  const usable = r !== null && r.revision > 0 && r.epoch > 0;
  if (usable && (o.snapshot === null || r.epoch >= o.snapshot.epoch)) return { kind: 'replica', position: r };
  if (o.snapshot) return { kind: 'snapshot', record: o.snapshot };
  return { kind: 'empty' };
}

/** An etcd member as the leader's etcd lists it. */
export interface EtcdMember {
  /** etcd's member id, as the JSON gateway prints it (a decimal uint64). */
  readonly id: string;
  /** The member's name: the robot's node id (empty until a learner has started). */
  readonly name: string;
  readonly peerUrls: readonly string[];
  readonly learner: boolean;
}

export type MemberChange =
  | { readonly kind: 'addLearner'; readonly node: NodeId; readonly peerUrl: string }
  | { readonly kind: 'remove'; readonly id: string; readonly reason: string };

/**
 * standbyPlan: the member changes that make the leader's etcd have replicas on the first
 * `maxLearners` of `candidates` (live voters, fittest first), keeping a replica that is still a
 * candidate so a caught-up replica is never traded for an empty one. etcd 3.4 allows one learner
 * (docs/k3s.md "Replication"); removals come first so an add never meets that limit.
 *
 * Any other voting member than the leader is removed too: a second voter would make every write
 * wait for it, which is exactly what replication must never do.
 */
export function standbyPlan(o: {
  readonly self: NodeId;
  readonly selfPeerUrl: string;
  readonly members: readonly EtcdMember[];
  readonly candidates: readonly { readonly id: NodeId; readonly peerUrl: string }[];
  readonly maxLearners: number;
}): MemberChange[] {
  const changes: MemberChange[] = [];
  const wanted = new Map(o.candidates.filter((c) => c.id !== o.self).map((c) => [c.peerUrl, c.id]));
  const kept: EtcdMember[] = [];
  for (const m of o.members) {
    if (m.peerUrls.includes(o.selfPeerUrl)) continue;
    if (!m.learner)
      changes.push({ kind: 'remove', id: m.id, reason: 'a voting member other than the leader' });
    else if (!m.peerUrls.some((u) => wanted.has(u)))
      changes.push({ kind: 'remove', id: m.id, reason: 'not a live voter' });
    else kept.push(m);
  }
  // More replicas than allowed (the limit was lowered): keep the ones listed first.
  const order = (m: EtcdMember) =>
    o.candidates.findIndex((c) => m.peerUrls.includes(c.peerUrl) && c.id !== o.self);
  const sorted = [...kept].sort((a, b) => order(a) - order(b));
  for (const m of sorted.slice(o.maxLearners))
    changes.push({ kind: 'remove', id: m.id, reason: 'over the learner limit' });
  let room = o.maxLearners - Math.min(sorted.length, o.maxLearners);
  const held = new Set(sorted.slice(0, o.maxLearners).flatMap((m) => m.peerUrls));
  for (const c of o.candidates) {
    if (room <= 0) break;
    if (c.id === o.self || held.has(c.peerUrl)) continue;
    changes.push({ kind: 'addLearner', node: c.id, peerUrl: c.peerUrl });
    room--;
  }
  return changes;
}

/** The etcd peer URL of a robot: TLS on its site address, the standard peer port. */
export function etcdPeerUrl(host: string, port = 2380): string {
  return `https://${host}:${port}`;
}
