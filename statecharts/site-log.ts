/**
 * Pure helpers over the replicated site log (docs/protocol.md §4). The log is an array whose element
 * i holds the entry at index i + 1; index 0 is the empty prefix with term 0.
 */
import type { LogEntry } from './messages.ts';

export function lastIndex(log: readonly LogEntry[]): number {
  return log.length;
}

/** termAt returns the term of the entry at `index`, 0 for index 0, and undefined past the end. */
export function termAt(log: readonly LogEntry[], index: number): number | undefined {
  if (index === 0) return 0;
  if (index < 0 || index > log.length) return undefined;
  return log[index - 1]!.term;
}

export function lastTerm(log: readonly LogEntry[]): number {
  return log.length === 0 ? 0 : log[log.length - 1]!.term;
}

/** isUpToDate is Raft's §5.4.1 check: is a candidate's log at least as up to date as ours? */
export function isUpToDate(log: readonly LogEntry[], candLastIndex: number, candLastTerm: number): boolean {
  const myTerm = lastTerm(log);
  return candLastTerm > myTerm || (candLastTerm === myTerm && candLastIndex >= log.length);
}

/** entryBytes is the size an entry's data takes on the wire (UTF-8). */
export function entryBytes(e: LogEntry): number {
  let n = 0;
  for (let i = 0; i < e.data.length; i++) {
    const c = e.data.charCodeAt(i);
    n += c < 0x80 ? 1 : c < 0x800 ? 2 : c >= 0xd800 && c < 0xdc00 ? 2 : 3; // a surrogate pair is 4 bytes, 2 + 2
  }
  return n;
}

/**
 * entriesFrom returns the entries from index `from` on that fit in `budget` bytes of data, always at
 * least one if any exist (a single entry is bounded by maxEntryBytes at proposal time).
 */
export function entriesFrom(log: readonly LogEntry[], from: number, budget: number): LogEntry[] {
  const out: LogEntry[] = [];
  let used = 0;
  for (let i = from; i <= log.length; i++) {
    const e = log[i - 1]!;
    const size = entryBytes(e) + 8; // term + kind overhead
    if (out.length > 0 && used + size > budget) break;
    out.push(e);
    used += size;
  }
  return out;
}

export interface MergeResult {
  readonly log: readonly LogEntry[];
  /** Lowest index whose content changed (to persist), or null when nothing changed. */
  readonly dirtyFrom: number | null;
  /** Index of the last entry known to match the leader after the merge. */
  readonly matchIndex: number;
  /** Set when the leader would overwrite an entry at or below `commitIndex`: a safety bug, refused. */
  readonly conflictWithCommitted: boolean;
}

/**
 * mergeEntries applies an Append's entries after `prevIndex` (which the caller checked matches). An
 * existing entry with the same index and term is kept (Raft's Log Matching property); the first one
 * that differs and everything after it are replaced.
 */
export function mergeEntries(
  log: readonly LogEntry[],
  prevIndex: number,
  entries: readonly LogEntry[],
  commitIndex: number,
): MergeResult {
  let i = 0;
  while (
    i < entries.length &&
    prevIndex + i + 1 <= log.length &&
    log[prevIndex + i]!.term === entries[i]!.term
  )
    i++;
  const matchIndex = prevIndex + entries.length;
  if (i === entries.length) return { log, dirtyFrom: null, matchIndex, conflictWithCommitted: false };
  const firstNew = prevIndex + i + 1;
  if (firstNew <= commitIndex)
    return { log, dirtyFrom: null, matchIndex: commitIndex, conflictWithCommitted: true };
  const next = log.slice(0, firstNew - 1).concat(entries.slice(i));
  return { log: next, dirtyFrom: firstNew, matchIndex, conflictWithCommitted: false };
}

/**
 * conflictHint tells a leader where to resume after a refused Append: the index before the first
 * entry of the conflicting term, so a divergent tail is skipped one term at a time, not one entry.
 */
export function conflictHint(log: readonly LogEntry[], prevIndex: number): number {
  if (prevIndex > log.length) return log.length;
  const badTerm = termAt(log, prevIndex);
  let i = prevIndex;
  while (i > 0 && termAt(log, i) === badTerm) i--;
  return i;
}

/** quorumMatch returns the highest index that a majority of `matches` (one per voter) has reached. */
export function quorumMatch(matches: readonly number[]): number {
  const sorted = [...matches].sort((a, b) => b - a);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}
