/**
 * Snapshots, the pure part (docs/k3s.md, "Snapshots"): the choice a new leader makes
 * between resuming its own etcd, restoring the newest verified snapshot it holds, or starting empty,
 * and the small parsers around `k3s etcd-snapshot save`.
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
  /** The snapshot file's name (k3s names it <name>-<node>-<unix seconds>). */
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

export interface ServerStartInput {
  readonly records: readonly SnapshotRecord[];
  readonly held: readonly HeldSnapshot[];
  /** The last epoch this robot served (SERVED_EPOCH_FILE), or null if never. */
  readonly lastServedEpoch: number | null;
  /** Whether this robot still has an etcd data directory. */
  readonly hasLocalDb: boolean;
}

export type ServerStart =
  /** Start on this robot's own etcd: it is at least as new as any snapshot held. */
  | { readonly kind: 'resume'; readonly reason: string }
  /** Restore this snapshot first. */
  | {
      readonly kind: 'restore';
      readonly record: SnapshotRecord;
      readonly file: HeldSnapshot;
      readonly reason: string;
    }
  /** Nothing to start from: a new, empty cluster (the site's first server). */
  | { readonly kind: 'fresh'; readonly reason: string };

/**
 * chooseServerStart decides how a new leader starts its server. Its own etcd ends where it stopped
 * serving; a snapshot taken in that same epoch or earlier is older than that, one of a later epoch
 * is newer. So: restore the newest verified snapshot if it comes from a later epoch than this robot
 * last served (or it never served, or lost its etcd); else resume; with neither, start fresh.
 */
export function chooseServerStart(input: ServerStartInput): ServerStart {
  const newest = newestVerified(input.records, input.held);
  const served = input.hasLocalDb ? input.lastServedEpoch : null;
  if (newest && (served === null || newest.record.epoch > served)) {
    return {
      kind: 'restore',
      record: newest.record,
      file: newest.file,
      reason:
        served === null
          ? `no local etcd; restoring ${newest.record.name} (epoch ${newest.record.epoch})`
          : `${newest.record.name} (epoch ${newest.record.epoch}) is newer than the local etcd (epoch ${served})`,
    };
  }
  if (served !== null) {
    return {
      kind: 'resume',
      reason: newest
        ? `the local etcd (epoch ${served}) is at least as new as ${newest.record.name} (epoch ${newest.record.epoch})`
        : `the local etcd (epoch ${served}); no verified snapshot held`,
    };
  }
  return { kind: 'fresh', reason: 'no local etcd and no verified snapshot: a new cluster' };
}

/**
 * snapshotName: the --name of a leader's shipped snapshot. It carries the site, epoch and term so a
 * file is recognisable on its own; k3s appends -<node>-<unix seconds>.
 */
export function snapshotName(site: string, epoch: number, term: number): string {
  return `edgectl-${site}-e${epoch}-t${term}`;
}

/**
 * savedSnapshotFile picks, from a listing of the snapshot directory, the file `k3s etcd-snapshot
 * save --name <name>` wrote on `node`: <name>-<node>-<unix seconds>[.zip], the latest if several.
 */
export function savedSnapshotFile(listing: readonly string[], name: string, node: string): string | null {
  const prefix = `${name}-${node}-`;
  const matches = listing
    .map((l) => l.trim())
    .filter((l) => l.startsWith(prefix) && /^\d+(\.zip)?$/.test(l.slice(prefix.length)))
    .sort((a, b) => parseInt(a.slice(prefix.length), 10) - parseInt(b.slice(prefix.length), 10));
  return matches[matches.length - 1] ?? null;
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
