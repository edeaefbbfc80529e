/**
 * The snapshot record: what a leader announces with every snapshot it ships and appends to the
 * replicated site log (entry kind `snapshot`). Every record that comes from outside this process
 * (a push, a site-log entry, a record file in the store) is checked here before anything uses it:
 * its name becomes a file name, its epoch orders restores and its digest vouches for the bytes.
 *
 * Checked by hand rather than with a zod schema: the receiver and the site-log reader run in the
 * agent's own process, which keeps zod out of its memory (agent/config-subprocess.ts).
 */
import type { LogEntry, NodeId } from '../../statecharts/messages.ts';
import { EdgeError } from '../errors.ts';
import type { SnapshotRecord } from './runtime.ts';

/**
 * A snapshot's name is a single file name: no separator, no leading dot, nothing that reads as one
 * of the store's own files (records end in .json, partial files in .tmp or .part).
 */
const SNAPSHOT_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$/;
const RESERVED_SUFFIX = /\.(json|tmp|part)$/;
/** The node-id rule of agent/config.ts. */
const NODE_ID = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const SHA256_HEX = /^[0-9a-f]{64}$/;
/** What toISOString writes. */
const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
/** No etcd snapshot of a robot site comes near this; the receiver's own limit is lower. */
export const SNAPSHOT_SIZE_LIMIT = 64 * 1024 ** 3;
const RECORD_KEYS = ['name', 'epoch', 'from', 'sha256', 'size', 'createdAt'] as const;

export type Checked<T> =
  { readonly ok: true; readonly value: T } | { readonly ok: false; readonly problem: string };

export function isSnapshotName(name: unknown): name is string {
  return typeof name === 'string' && SNAPSHOT_NAME.test(name) && !RESERVED_SUFFIX.test(name);
}

export function isNodeId(id: unknown): id is NodeId {
  return typeof id === 'string' && NODE_ID.test(id);
}

/** A safe integer from 0 to `max`. */
export function isCount(n: unknown, max = Number.MAX_SAFE_INTEGER): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0 && n <= max;
}

/**
 * checkSnapshotRecord accepts exactly the six fields of a SnapshotRecord (and the names in `extra`,
 * which it drops), each within its bounds; it returns a fresh object, never the input.
 */
export function checkSnapshotRecord(x: unknown, extra: readonly string[] = []): Checked<SnapshotRecord> {
  const bad = (problem: string): Checked<SnapshotRecord> => ({ ok: false, problem });
  if (typeof x !== 'object' || x === null || Array.isArray(x)) return bad('the record is not an object');
  const o = x as Record<string, unknown>;
  const unknown = Object.keys(o).filter(
    (k) => !(RECORD_KEYS as readonly string[]).includes(k) && !extra.includes(k),
  );
  if (unknown.length > 0) return bad(`unknown field ${JSON.stringify(unknown[0]!.slice(0, 40))}`);
  if (!isSnapshotName(o['name']))
    return bad('name must be a plain file name of letters, digits, ".", "_", "-"');
  if (!isCount(o['epoch'])) return bad('epoch must be a safe integer ≥ 0');
  if (!isNodeId(o['from'])) return bad('from must be a node id');
  if (typeof o['sha256'] !== 'string' || !SHA256_HEX.test(o['sha256']))
    return bad('sha256 must be 64 lower-case hex digits');
  if (!isCount(o['size'], SNAPSHOT_SIZE_LIMIT))
    return bad(`size must be an integer from 0 to ${SNAPSHOT_SIZE_LIMIT}`);
  if (
    typeof o['createdAt'] !== 'string' ||
    !ISO_TIME.test(o['createdAt']) ||
    Number.isNaN(Date.parse(o['createdAt']))
  )
    return bad('createdAt must be an ISO time like 2026-01-01T00:00:00.000Z');
  return {
    ok: true,
    value: {
      name: o['name'],
      epoch: o['epoch'],
      from: o['from'],
      sha256: o['sha256'],
      size: o['size'],
      createdAt: o['createdAt'],
    },
  };
}

/** compareRecords orders older before newer: by epoch, then creation time, then name. */
export function compareRecords(a: SnapshotRecord, b: SnapshotRecord): number {
  return (
    a.epoch - b.epoch ||
    (a.createdAt < b.createdAt ? -1 : a.createdAt > b.createdAt ? 1 : 0) ||
    (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)
  );
}

/** sameSnapshot: two records of the same bytes under the same name. */
export function sameSnapshot(a: SnapshotRecord, b: SnapshotRecord): boolean {
  return a.name === b.name && a.sha256 === b.sha256 && a.size === b.size;
}

/**
 * encodeLogRecord: the `data` of a site-log entry of kind `snapshot`, the record alone: the largest
 * valid record fits one entry (maxEntryBytes), which a list of the voters holding it would not.
 */
export function encodeLogRecord(record: SnapshotRecord): string {
  const r = checkSnapshotRecord(record);
  if (!r.ok) throw new EdgeError('SNAPSHOT_RECORD_INVALID', `snapshot record ${record.name}: ${r.problem}`);
  return JSON.stringify(r.value);
}

/**
 * decodeLogRecord reads a `snapshot` entry's data; null if it is not a valid record. Entries of
 * earlier versions also list the voters that kept a copy (keptBy): ignored.
 */
export function decodeLogRecord(data: string): SnapshotRecord | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(data);
  } catch {
    return null;
  }
  const r = checkSnapshotRecord(parsed, ['keptBy']);
  return r.ok ? r.value : null;
}

/**
 * CommittedSnapshots reads the snapshot records of a site log's committed prefix. Committed entries
 * never change, so each call reads only the entries committed since the last one.
 */
export class CommittedSnapshots {
  private scanned = 0;
  private records: SnapshotRecord[] = [];

  /** The valid snapshot records among `log[0 .. commitIndex)`, in log order. */
  read(log: readonly LogEntry[], commitIndex: number): readonly SnapshotRecord[] {
    const upTo = Math.min(commitIndex, log.length);
    if (upTo < this.scanned) {
      // A new log (a restarted election core): read it again from the start.
      this.scanned = 0;
      this.records = [];
    }
    for (; this.scanned < upTo; this.scanned++) {
      const e = log[this.scanned]!;
      if (e.kind !== 'snapshot') continue;
      const r = decodeLogRecord(e.data);
      if (r) this.records.push(r);
    }
    return this.records;
  }
}
