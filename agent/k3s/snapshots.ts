/**
 * Snapshots, the pure part (docs/k3s.md, "Snapshots"): the newest verified snapshot a new leader
 * holds (replica-plans.ts chooseDatastoreSource weighs it against its replica and own datastore),
 * snapshot names, and the small parsers around them.
 *
 * Order of snapshots: by epoch, then term, then createdAt. Epochs only grow and at most one server
 * serves an epoch, so a snapshot of a later epoch holds everything committed in earlier ones; within
 * an epoch all snapshots come from one server, whose own clock orders them.
 */
import { RECEIVED_SNAPSHOT_DIR } from './paths.ts';

/**
 * SnapshotRecord: one snapshot as the restore choice sees it. It is made from a record committed in
 * the site log (agent/control-plane/snapshot-record.ts checks those) by fromRuntimeRecord, or from
 * a snapshot this robot took (K3sControlPlane.takeSnapshot).
 */
export interface SnapshotRecord {
  readonly v: 1;
  /** The snapshot file's name (<name>-<node>-<unix seconds>, as k3s named its own). */
  readonly name: string;
  /** The robot that took it (the leader of `epoch`). */
  readonly node: string;
  /** The server epoch it was taken in. */
  readonly epoch: number;
  /** The election term of the leader that took it. */
  readonly term: number;
  readonly sha256: string;
  /** Bytes. */
  readonly size: number;
  /** Unix ms, the leader's clock. */
  readonly createdAt: number;
}

/** compareSnapshots orders older before newer (see the module comment). */
export function compareSnapshots(a: SnapshotRecord, b: SnapshotRecord): number {
  return (
    a.epoch - b.epoch ||
    a.term - b.term ||
    a.createdAt - b.createdAt ||
    (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)
  );
}

/** A snapshot file on this robot, with the checksum computed here. */
export interface HeldSnapshot {
  readonly name: string;
  readonly path: string;
  readonly sha256: string;
  readonly size: number;
}

/** newestVerified: the newest record this robot holds a file for whose checksum and size match. */
export function newestVerified(
  records: readonly SnapshotRecord[],
  held: readonly HeldSnapshot[],
): { readonly record: SnapshotRecord; readonly file: HeldSnapshot } | null {
  let best: { record: SnapshotRecord; file: HeldSnapshot } | null = null;
  for (const record of records) {
    const file = held.find(
      (h) => h.name === record.name && h.sha256 === record.sha256 && h.size === record.size,
    );
    if (file && (!best || compareSnapshots(best.record, record) < 0)) best = { record, file };
  }
  return best;
}

/**
 * snapshotName: the --name of a leader's shipped snapshot. It carries the site, epoch and term so a
 * file is recognisable on its own; the file adds -<node>-<unix seconds>.
 */
export function snapshotName(site: string, epoch: number, term: number): string {
  return `edgectl-${site}-e${epoch}-t${term}`;
}

/** parseSha256sum reads `sha256sum FILE` output. */
export function parseSha256sum(stdout: string): string | null {
  const m = /^([0-9a-f]{64})\s/.exec(stdout);
  return m?.[1] ?? null;
}

/** receivedPath: where a snapshot shipped from another robot is kept on this one. */
export function receivedPath(name: string): string {
  return `${RECEIVED_SNAPSHOT_DIR}/${name}`;
}

/**
 * snapshotsToPrune: the held snapshot files to delete, keeping those of the `keep` newest records.
 * Files no record names (a partial transfer, a record that never committed) go too, so call it only
 * after the record of a snapshot just taken is committed.
 */
export function snapshotsToPrune(
  records: readonly SnapshotRecord[],
  held: readonly HeldSnapshot[],
  keep: number,
): HeldSnapshot[] {
  const kept = new Set(
    [...records]
      .sort(compareSnapshots)
      .slice(-Math.max(keep, 1))
      .map((r) => r.name),
  );
  return held
    .filter((h) => !kept.has(h.name))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
