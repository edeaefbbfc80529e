/**
 * Membership: a per-peer failure detector (docs/agent.md). Pure: the agent feeds it what it heard
 * and when, and asks it to evaluate at a time. A peer is
 *   alive   heard within suspectAfterMs,
 *   suspect not heard for suspectAfterMs (a robot driving through a Wi-Fi dead spot),
 *   dead    not heard for deadAfterMs: the leader acts on it (taint, cleanup) after its own grace period.
 * Separating suspect from dead is what keeps a one-second dead spot from costing a robot its pods.
 */
import type { NodeId } from './messages.ts';

export type MemberState = 'alive' | 'suspect' | 'dead';

export interface Member {
  readonly id: NodeId;
  readonly state: MemberState;
  readonly lastHeardMs: number;
  /** Smoothed round-trip time (ms), when measured (Append echo), else null. */
  readonly rttMs: number | null;
  readonly since: number;
}

export interface MembershipConfig {
  readonly suspectAfterMs: number;
  readonly deadAfterMs: number;
}

export type MembershipView = ReadonlyMap<NodeId, Member>;

export interface StateChange {
  readonly id: NodeId;
  readonly from: MemberState | null;
  readonly to: MemberState;
  readonly atMs: number;
}

/** heard records that `id` was heard at `now`, with a round-trip sample when one was measured. */
export function heard(
  view: MembershipView,
  id: NodeId,
  now: number,
  rttSampleMs?: number,
): { view: MembershipView; change: StateChange | null } {
  const prev = view.get(id);
  // RFC 6298-style smoothing (alpha 1/8): one slow sample does not swing the figure.
  const rttMs =
    rttSampleMs === undefined
      ? (prev?.rttMs ?? null)
      : prev?.rttMs == null
        ? rttSampleMs
        : prev.rttMs + (rttSampleMs - prev.rttMs) / 8;
  const next = new Map(view);
  const state: MemberState = 'alive';
  next.set(id, {
    id,
    state,
    lastHeardMs: now,
    rttMs,
    since: prev && prev.state === 'alive' ? prev.since : now,
  });
  const change = prev?.state === 'alive' ? null : { id, from: prev?.state ?? null, to: state, atMs: now };
  return { view: next, change };
}

/** evaluate moves peers to suspect or dead by how long they have been silent. */
export function evaluate(
  view: MembershipView,
  now: number,
  cfg: MembershipConfig,
): { view: MembershipView; changes: StateChange[] } {
  const changes: StateChange[] = [];
  let next: Map<NodeId, Member> | null = null;
  for (const m of view.values()) {
    const silent = now - m.lastHeardMs;
    const state: MemberState =
      silent >= cfg.deadAfterMs ? 'dead' : silent >= cfg.suspectAfterMs ? 'suspect' : 'alive';
    if (state !== m.state) {
      next ??= new Map(view);
      next.set(m.id, { ...m, state, since: now });
      changes.push({ id: m.id, from: m.state, to: state, atMs: now });
    }
  }
  return { view: next ?? view, changes };
}

/**
 * nodeLossChanges is the leader's decision about robots gone for good: a peer dead and unheard for
 * `lostAfterMs` is lost (its pods must move, its IPs be freed), and a lost peer heard again has
 * returned. `lost` is what the leader already acted on; the result is what to act on now.
 * Kubernetes alone would wait 5 min 40 s; a robot site wants about a minute (docs/site.md).
 */
export function nodeLossChanges(
  view: MembershipView,
  now: number,
  lostAfterMs: number,
  lost: ReadonlySet<NodeId>,
): { lost: NodeId[]; returned: NodeId[] } {
  const out = { lost: [] as NodeId[], returned: [] as NodeId[] };
  for (const m of view.values()) {
    if (m.state === 'dead' && now - m.lastHeardMs >= lostAfterMs && !lost.has(m.id)) out.lost.push(m.id);
    if (m.state === 'alive' && lost.has(m.id)) out.returned.push(m.id);
  }
  out.lost.sort();
  out.returned.sort();
  return out;
}

/** What a robot can tell about its site's quorum. */
export interface QuorumView {
  /** Voters, witnesses included. */
  readonly voters: number;
  /** Voters this robot hears (itself included, when it votes). */
  readonly reachable: number;
  /** It leads with a lease, follows a live leader, or hears a majority of voters itself. */
  readonly ok: boolean;
}

/**
 * quorumView: whether this robot's site has a quorum as far as it can tell. A follower hears only
 * its leader, so its own count is low on a healthy site: a live leader is what vouches for the
 * quorum then. Without one, the count of voters it hears is the honest answer.
 */
export function quorumView(o: {
  readonly self: NodeId;
  readonly voters: readonly NodeId[];
  readonly view: MembershipView;
  readonly liveLeader: NodeId | null;
}): QuorumView {
  const reachable = o.voters.filter((v) => v === o.self || o.view.get(v)?.state === 'alive').length;
  const majority = Math.floor(o.voters.length / 2) + 1;
  return { voters: o.voters.length, reachable, ok: o.liveLeader !== null || reachable >= majority };
}
