/**
 * Wire-level message types of the Raft-lite election protocol (docs/protocol.md).
 *
 * These are plain data. The election statechart consumes them as `message` events and emits them in
 * `send` actions; the transport encodes them (agent/transport/codec.ts) and the simulator carries
 * them in memory. Every message carries the sender's `term`; the receiver applies the term rules of
 * docs/protocol.md §2 before anything else.
 */

/** A node id: the robot's name, unique within a site (`[a-z0-9-]`, at most 63 characters). */
export type NodeId = string;

/** What a site log entry holds. `noop` is the entry every new leader appends to commit its term. */
export type EntryKind = 'noop' | 'site' | 'snapshot';

/**
 * LogEntry is one entry of the replicated site log. Its index is its 1-based position in the log;
 * it is not stored in the entry. `data` is opaque to the election core (a site spec chunk, a
 * snapshot pointer): at most `ElectionTiming.maxEntryBytes` bytes so that it fits one datagram.
 */
export interface LogEntry {
  readonly term: number;
  readonly kind: EntryKind;
  readonly data: string;
}

/** PreVote (Raft thesis §9.6): "would you vote for me at `term`?" It changes no state on receipt. */
export interface PreVote {
  readonly type: 'preVote';
  readonly from: NodeId;
  readonly to: NodeId;
  /** The term the sender would campaign at: its current term + 1. */
  readonly term: number;
  readonly lastIndex: number;
  readonly lastTerm: number;
  /** The sender's datastore replica position (agent/control-plane/replica.ts); absent: none. */
  readonly replicaEpoch?: number;
  readonly replicaRev?: number;
}

export interface PreVoteResp {
  readonly type: 'preVoteResp';
  readonly from: NodeId;
  readonly to: NodeId;
  /** The requested term when granted; the responder's own term when refused. */
  readonly term: number;
  readonly granted: boolean;
}

export interface Vote {
  readonly type: 'vote';
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: number;
  readonly lastIndex: number;
  readonly lastTerm: number;
  /** Set when the campaign follows a TimeoutNow from the leader: voters skip the stickiness check. */
  readonly transfer: boolean;
  /** As in PreVote. */
  readonly replicaEpoch?: number;
  readonly replicaRev?: number;
}

export interface VoteResp {
  readonly type: 'voteResp';
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: number;
  readonly granted: boolean;
}

/** Append is both the heartbeat and the carrier of site log entries (append-entries-lite). */
export interface Append {
  readonly type: 'append';
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: number;
  readonly prevIndex: number;
  readonly prevTerm: number;
  readonly entries: readonly LogEntry[];
  /** The leader's commit index. */
  readonly commit: number;
  /**
   * The leader's monotonic clock (ms) when it sent this message. Echoed back in AppendResp so the
   * leader measures its lease from its own send time, independent of network delay (docs/protocol.md §5).
   */
  readonly sentAt: number;
}

export interface AppendResp {
  readonly type: 'appendResp';
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: number;
  readonly success: boolean;
  /** On success: the highest index known to match the leader. On refusal: a hint of where to resume. */
  readonly matchIndex: number;
  /** The `sentAt` of the Append this answers. */
  readonly echo: number;
  /**
   * The follower's datastore replica position, as in PreVote: so that a new leader knows, from its
   * first heartbeat round, whether another voter holds a fresher replica than its own.
   */
  readonly replicaEpoch?: number;
  readonly replicaRev?: number;
}

/** TimeoutNow (thesis §3.10): the leader tells an up-to-date voter to campaign at once. */
export interface TimeoutNow {
  readonly type: 'timeoutNow';
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: number;
}

export type Message = PreVote | PreVoteResp | Vote | VoteResp | Append | AppendResp | TimeoutNow;
export type MessageType = Message['type'];

export const MESSAGE_TYPES: readonly MessageType[] = [
  'preVote',
  'preVoteResp',
  'vote',
  'voteResp',
  'append',
  'appendResp',
  'timeoutNow',
];

/** describeMessage renders a message on one line, for scenario goldens and debug logs. */
export function describeMessage(m: Message): string {
  const head = `${m.from}->${m.to} ${m.type} term=${m.term}`;
  switch (m.type) {
    case 'preVote':
    case 'vote':
      return `${head} last=${m.lastIndex}/${m.lastTerm}${m.replicaEpoch || m.replicaRev ? ` replica=e${m.replicaEpoch ?? 0}@${m.replicaRev ?? 0}` : ''}${m.type === 'vote' && m.transfer ? ' transfer' : ''}`;
    case 'preVoteResp':
    case 'voteResp':
      return `${head} ${m.granted ? 'granted' : 'rejected'}`;
    case 'append':
      return `${head} prev=${m.prevIndex}/${m.prevTerm} commit=${m.commit}${m.entries.length ? ` entries=[${m.entries.map((e) => `${e.term}:${e.kind}`).join(',')}]` : ''}`;
    case 'appendResp':
      return `${head} ${m.success ? 'ok' : 'reject'} match=${m.matchIndex}`;
    case 'timeoutNow':
      return head;
  }
}
