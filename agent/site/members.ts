/**
 * The site's membership in the replicated site log: the robots the site names that do not vote
 * (its workers, the leader's learners). Voters and witnesses are fixed by every robot's config;
 * membership changes with `edgectl robot add|remove` on a running site, without a restart.
 *
 * One version is a document of spec-log.ts (`edgectl-members`), canonical JSON
 * `{"workers":["a","b"]}` with the ids sorted and unique. The newest committed version is the
 * membership; while the log commits none, each robot's config (`workers`, as bootstrap wrote it)
 * stands in. Pure: no I/O.
 */
import type { LogEntry, NodeId } from '../../statecharts/messages.ts';
import { isNodeId } from '../transport/codec.ts';
import { newestCommittedSpec, specDigest } from './spec-log.ts';

/** A committed membership version. */
export interface MembersVersion {
  readonly version: number;
  readonly term: number;
  readonly index: number;
  readonly digest: string;
  readonly at: string;
  readonly workers: readonly NodeId[];
}

/** membersText: the canonical text of a membership (sorted, unique ids). */
export function membersText(workers: readonly NodeId[]): string {
  return JSON.stringify({ workers: [...new Set(workers)].sort() });
}

/** membersDigest: the digest an operator signs and the leader compares. */
export function membersDigest(workers: readonly NodeId[]): string {
  return specDigest(membersText(workers));
}

/**
 * parseMembersText reads a membership's text, or returns null for anything but the canonical
 * form: a committed entry the agent cannot read is no membership, never a partial one.
 */
export function parseMembersText(text: string): NodeId[] | null {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return null;
  }
  const w = (raw as { workers?: unknown } | null)?.workers;
  if (!Array.isArray(w) || !w.every((x): x is string => typeof x === 'string' && isNodeId(x))) return null;
  return membersText(w) === text ? w : null;
}

/** newestCommittedMembers: the site's membership as its log committed it last, or null. */
export function newestCommittedMembers(log: readonly LogEntry[], commitIndex: number): MembersVersion | null {
  const v = newestCommittedSpec(log, commitIndex, 'members');
  const workers = v ? parseMembersText(v.text) : null;
  if (!v || !workers) return null;
  return { version: v.version, term: v.term, index: v.index, digest: v.digest, at: v.at, workers };
}
