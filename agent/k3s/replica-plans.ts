/**
 * The robot side of continuous replication (docs/k3s.md "Replication"), as plans: pure and
 * golden-tested (replica-plans.test.ts), run by the same executor as the k3s plans.
 *
 * On robots the datastore is an etcd that edgectl runs (the unit `edgectl-etcd.service`) and k3s
 * uses as its external datastore (render.ts renderServerConfig), not k3s's embedded etcd: k3s's
 * embedded etcd promotes every learner it finds once it has caught up (pkg/etcd manageLearners),
 * which would turn the standby into a voter the leader's writes wait for, the very thing
 * replication must not do. The lab runs the same etcd commands (lab/runtime/etcd-replica.ts).
 *
 * Both etcd units are static files (render.ts renderEtcdUnit, installed by installPlan on
 * server-capable robots); what changes per epoch (data dir, initial cluster) is the unit's
 * environment file, which etcd reads as its flags (ETCD_<FLAG>).
 *
 *   replicaStartPlan      a follower voter: discard other epochs' data, run a learner of the leader
 *   replicaStopPlan       stop the learner (SIGTERM: its bbolt file then holds every applied entry)
 *   standbyChangePlan     the leader: add or remove learner members (agent/control-plane/replica.ts)
 *   datastoreStartPlan    a new leader: its datastore for the epoch, from a replica, its own older
 *                         datastore, a snapshot or empty; the k3s server starts on it afterwards
 *   takeoverPlan          datastoreStartPlan with the revision bump after a restore (what runs)
 *   abandonReplicaPlan    a takeover whose replica did not restore: clear it, for the snapshot fallback
 *   chooseDatastoreSource which of those a new leader starts from
 */
import type { EtcdMember, MemberChange, ReplicaPosition } from '../control-plane/replica.ts';
import { compareReplica, etcdPeerUrl } from '../control-plane/replica.ts';
import type { Plan, PlanStep } from '../plan/plan.ts';
import {
  DATASTORE_ENV,
  DATASTORE_UNIT,
  EDGECTL_ETCD_DIR,
  ETCD_CLIENT_CA,
  ETCD_CLIENT_CERT,
  ETCD_CLIENT_KEY,
  ETCD_CLIENT_URL,
  ETCDCTL_BIN,
  REPLICA_ENV,
  REPLICA_UNIT,
} from './paths.ts';
import { renderEtcdEnv } from './render.ts';
import { withRevisionBump } from './revision-bump.ts';

export const datastoreDir = (epoch: number) => `${EDGECTL_ETCD_DIR}/epoch-${epoch}`;
export const replicaDir = (epoch: number) => `${EDGECTL_ETCD_DIR}/replica-epoch-${epoch}`;
/** The bbolt file of a stopped etcd: what a new leader restores from. */
export const etcdDb = (dataDir: string) => `${dataDir}/member/snap/db`;
export const replicaDb = (epoch: number) => etcdDb(replicaDir(epoch));
/** Present once a restored datastore's revision was moved forward: a restart never bumps twice. */
export const bumpedMarker = (epoch: number) => `${datastoreDir(epoch)}.bumped`;

/** etcdctl against this robot's own etcd, with the client certificate. */
export function etcdctl(...args: string[]): string[] {
  return [
    ETCDCTL_BIN,
    `--endpoints=${ETCD_CLIENT_URL}`,
    `--cacert=${ETCD_CLIENT_CA}`,
    `--cert=${ETCD_CLIENT_CERT}`,
    `--key=${ETCD_CLIENT_KEY}`,
    ...args,
  ];
}

export interface RobotEndpoint {
  readonly id: string;
  readonly host: string;
}

/** What one etcd unit runs as, for one epoch (render.ts renderEtcdEnv turns it into flags). */
export interface EtcdMemberConfig {
  readonly name: string;
  readonly dataDir: string;
  readonly peerUrl: string;
  /** `name=peerUrl,…` */
  readonly initialCluster: string;
  readonly state: 'new' | 'existing';
}

function stop(unit: string, id: string, what: string): PlanStep {
  return { kind: 'systemd', id, description: what, action: 'stop', unit };
}

function envFile(path: string, m: EtcdMemberConfig, what: string): PlanStep {
  return {
    kind: 'writeFile',
    id: 'etcd-env',
    description: what,
    path,
    mode: 0o600,
    owner: 'root:root',
    content: renderEtcdEnv(m),
  };
}

function etcdDirStep(): PlanStep {
  return {
    kind: 'run',
    id: 'dir-etcd',
    description: `directory ${EDGECTL_ETCD_DIR}`,
    argv: ['install', '-d', '-m', '0700', EDGECTL_ETCD_DIR],
  };
}

/**
 * discardOthers: remove every datastore and replica directory but `keep`: an old leader's
 * unreplicated writes (its epoch-<n>) and older replicas never come back.
 */
export function discardOthers(keep: readonly string[]): PlanStep {
  return {
    kind: 'run',
    id: 'discard-other-epochs',
    description: 'discard every other epoch’s datastore and replica (one history: the leader’s)',
    argv: [
      'find',
      EDGECTL_ETCD_DIR,
      '-mindepth',
      '1',
      '-maxdepth',
      '1',
      ...keep.flatMap((k) => ['!', '-name', k.slice(EDGECTL_ETCD_DIR.length + 1)]),
      '-exec',
      'rm',
      '-rf',
      '{}',
      '+',
    ],
  };
}

/**
 * replicaStartPlan: this voter follows `leader` in `epoch` and keeps a learner of its etcd. Until
 * the leader adds this member (standbyChangePlan), etcd exits at once and systemd retries it.
 * `held`: the epoch of the replica this robot held before, kept (stopped) until the new one has
 * joined, since the new leader may hand leadership to this robot to take over from it.
 */
export function replicaStartPlan(
  self: RobotEndpoint,
  leader: RobotEndpoint,
  epoch: number,
  held?: number,
): Plan {
  const dir = replicaDir(epoch);
  const selfPeer = etcdPeerUrl(self.host);
  return {
    target: self.id,
    steps: [
      stop(REPLICA_UNIT, 'stop-replica', 'stop a replica of another epoch (SIGTERM: its data is flushed)'),
      stop(DATASTORE_UNIT, 'stop-datastore', 'a follower serves no datastore'),
      etcdDirStep(),
      discardOthers(held === undefined ? [dir] : [dir, replicaDir(held)]),
      envFile(
        REPLICA_ENV,
        {
          name: self.id,
          dataDir: dir,
          peerUrl: selfPeer,
          initialCluster: `${leader.id}=${etcdPeerUrl(leader.host)},${self.id}=${selfPeer}`,
          state: 'existing',
        },
        `the learner's flags: ${leader.id}'s etcd of epoch ${epoch}`,
      ),
      {
        kind: 'systemd',
        id: 'start-replica',
        description: `replicate ${leader.id}'s etcd of epoch ${epoch} (a learner)`,
        action: 'start',
        unit: REPLICA_UNIT,
      },
    ],
  };
}

/** replicaStopPlan: SIGTERM, so etcd commits its backend before it exits. */
export function replicaStopPlan(self: string): Plan {
  return { target: self, steps: [stop(REPLICA_UNIT, 'stop-replica', 'stop the replica')] };
}

/** discardPlan: keep only `keep` of the datastores and replicas (a held replica no longer needed). */
export function discardPlan(self: string, keep: readonly string[]): Plan {
  return { target: self, steps: [discardOthers(keep)] };
}

/** standbyChangePlan: the leader's member changes, as etcdctl calls on its loopback client port. */
export function standbyChangePlan(self: string, changes: readonly MemberChange[]): Plan {
  return {
    target: self,
    steps: changes.map((c, i): PlanStep =>
      c.kind === 'addLearner'
        ? {
            kind: 'run',
            id: `member-add-${i + 1}`,
            description: `add ${c.node} as a replica (learner)`,
            argv: etcdctl('member', 'add', c.node, '--learner', `--peer-urls=${c.peerUrl}`),
          }
        : {
            kind: 'run',
            id: `member-remove-${i + 1}`,
            description: `remove etcd member ${c.id}: ${c.reason}`,
            // Member ids are kept in decimal; etcdctl takes them in hex.
            argv: etcdctl('member', 'remove', BigInt(c.id).toString(16)),
          },
    ),
  };
}

/** Where a new leader's datastore comes from (chooseDatastoreSource). */
export type DatastoreSource =
  /** The replica this robot held of a leader of `epoch`. */
  | { readonly kind: 'replica'; readonly epoch: number }
  /** This robot's own datastore of an earlier epoch it served: nobody has anything newer. */
  | { readonly kind: 'datastore'; readonly epoch: number }
  | { readonly kind: 'snapshot'; readonly path: string; readonly sha256: string }
  | { readonly kind: 'empty' };

/**
 * datastoreStartPlan: this robot's etcd for `epoch`, a single voting member, restored first from
 * its stopped replica or its own older datastore (their bbolt files: no snapshot hash to check)
 * or from a snapshot whose checksum the site log recorded. etcd 3.4 panics on
 * --force-new-cluster over a learner's data dir ("removed all voters"), and a restore also drops
 * every other member, so takeover is always a restore. The restore is skipped when the epoch's
 * data dir exists: a restart of the same epoch keeps its data. takeoverPlan adds the revision bump.
 */
export function datastoreStartPlan(self: RobotEndpoint, epoch: number, source: DatastoreSource): Plan {
  const dir = datastoreDir(epoch);
  const peer = etcdPeerUrl(self.host);
  const steps: PlanStep[] = [
    stop(REPLICA_UNIT, 'stop-replica', 'stop the replica (SIGTERM: its data is flushed)'),
    stop(DATASTORE_UNIT, 'stop-datastore', 'stop a datastore of an earlier epoch (its data is flushed)'),
    etcdDirStep(),
  ];
  const from =
    source.kind === 'replica'
      ? replicaDb(source.epoch)
      : source.kind === 'datastore'
        ? etcdDb(datastoreDir(source.epoch))
        : source.kind === 'snapshot'
          ? source.path
          : null;
  if (source.kind === 'snapshot')
    steps.push(
      {
        kind: 'writeFile',
        id: 'restore-checksum',
        description: 'write the snapshot checksum from the site log',
        path: `${EDGECTL_ETCD_DIR}/restore.sha256`,
        mode: 0o600,
        owner: 'root:root',
        content: `${source.sha256}  ${source.path}\n`,
      },
      {
        kind: 'run',
        id: 'restore-verify',
        description: 'check the snapshot is the one the site log recorded',
        argv: ['sha256sum', '--check', '--status', `${EDGECTL_ETCD_DIR}/restore.sha256`],
        unless: ['test', '-d', dir],
      },
    );
  if (from)
    steps.push({
      kind: 'run',
      id: 'restore',
      description:
        source.kind === 'replica'
          ? `take over from the replica of epoch ${source.epoch}`
          : source.kind === 'datastore'
            ? `carry this robot's own datastore of epoch ${source.epoch} into epoch ${epoch}`
            : 'restore the snapshot',
      argv: [
        ETCDCTL_BIN,
        'snapshot',
        'restore',
        from,
        ...(source.kind === 'snapshot' ? [] : ['--skip-hash-check']),
        `--data-dir=${dir}`,
        `--name=${self.id}`,
        `--initial-cluster=${self.id}=${peer}`,
        `--initial-advertise-peer-urls=${peer}`,
      ],
      unless: ['test', '-d', dir],
      timeoutMs: 15 * 60_000,
    });
  steps.push(
    envFile(
      DATASTORE_ENV,
      { name: self.id, dataDir: dir, peerUrl: peer, initialCluster: `${self.id}=${peer}`, state: 'new' },
      `the datastore's flags: epoch ${epoch}, one voting member`,
    ),
    {
      kind: 'systemd',
      id: 'start-edgectl-etcd',
      description: `serve the datastore of epoch ${epoch}`,
      action: 'start',
      unit: DATASTORE_UNIT,
    },
    discardOthers([dir, bumpedMarker(epoch)]),
  );
  return { target: self.id, steps };
}

/**
 * takeoverPlan: datastoreStartPlan, with the revision moved forward right after a restore from a
 * replica or a snapshot (revision-bump.ts withRevisionBump), so resourceVersions never go back.
 * Not after carrying this robot's own datastore on: that history is already the newest it issued.
 * The bump and a marker of it are skipped once the marker exists, so a restart of the epoch,
 * whose restore is skipped, does not bump the data etcd has written since.
 */
export function takeoverPlan(self: RobotEndpoint, epoch: number, source: DatastoreSource): Plan {
  const plan = datastoreStartPlan(self, epoch, source);
  if (source.kind !== 'replica' && source.kind !== 'snapshot') return plan;
  const unless = ['test', '-e', bumpedMarker(epoch)];
  const steps = withRevisionBump(plan, datastoreDir(epoch)).steps.flatMap((st): PlanStep[] =>
    st.id === 'revision-bump' && st.kind === 'run'
      ? [
          { ...st, unless },
          {
            kind: 'run',
            id: 'revision-bumped',
            description: 'remember the bump',
            argv: ['touch', bumpedMarker(epoch)],
            unless,
          },
        ]
      : [st],
  );
  return { ...plan, steps };
}

/**
 * abandonReplicaPlan: a takeover from the replica of `replicaEpoch` failed (its bbolt file does not
 * restore: a corrupt replica). Stop whatever started, remove the half-made datastore of `epoch` and
 * that replica, so the next choice falls back to a snapshot and a restart never resumes from it.
 */
export function abandonReplicaPlan(self: string, epoch: number, replicaEpoch: number): Plan {
  return {
    target: self,
    steps: [
      stop(DATASTORE_UNIT, 'stop-datastore', 'stop the datastore the failed takeover may have started'),
      {
        kind: 'run',
        id: 'remove-failed-takeover',
        description: `remove the datastore of epoch ${epoch} made from it, and the replica of epoch ${replicaEpoch}`,
        argv: ['rm', '-rf', datastoreDir(epoch), bumpedMarker(epoch), replicaDir(replicaEpoch)],
      },
    ],
  };
}

/** What a new leader finds on its robot and in the site log, for chooseDatastoreSource. */
export interface DatastoreFacts {
  /** The epoch being started. */
  readonly epoch: number;
  /** Epochs this robot has a datastore directory for (epochs it served). */
  readonly datastores: readonly number[];
  /** The replicas this robot holds, with the revision they applied (0: unknown, not used). */
  readonly replicas: readonly ReplicaPosition[];
  /** The newest committed snapshot this robot holds, verified (agent/k3s/snapshots.ts newestVerified). */
  readonly snapshot: { readonly epoch: number; readonly path: string; readonly sha256: string } | null;
}

/**
 * chooseDatastoreSource: the newest history this robot can start from. Epochs only grow and one
 * server serves an epoch, so a newer epoch holds everything committed in older ones. Within one
 * epoch, the leader's own datastore is the source the replica and the snapshots copy, so it wins;
 * a replica wins over a snapshot of its epoch (it kept applying after the snapshot was taken, as
 * agent/control-plane/replica.ts takeoverSource says). A datastore of the same epoch resumes.
 */
export function chooseDatastoreSource(f: DatastoreFacts): { source: DatastoreSource; reason: string } {
  if (f.datastores.includes(f.epoch))
    return {
      source: { kind: 'datastore', epoch: f.epoch },
      reason: `resume the datastore of epoch ${f.epoch}`,
    };
  const own = Math.max(0, ...f.datastores.filter((e) => e < f.epoch));
  // A replica that has applied nothing known is no starting point (takeoverSource's rule too).
  const replica =
    f.replicas
      .filter((r) => r.revision > 0)
      .sort(compareReplica)
      .at(-1) ?? null;
  const snap = f.snapshot;
  if (own > 0 && (!replica || own >= replica.epoch) && (!snap || own >= snap.epoch))
    return {
      source: { kind: 'datastore', epoch: own },
      reason: `this robot's own datastore of epoch ${own} is the newest history it knows`,
    };
  if (replica && (!snap || replica.epoch >= snap.epoch))
    return {
      source: { kind: 'replica', epoch: replica.epoch },
      reason: `the replica of epoch ${replica.epoch} at revision ${replica.revision}`,
    };
  if (snap)
    return {
      source: { kind: 'snapshot', path: snap.path, sha256: snap.sha256 },
      reason: `the snapshot of epoch ${snap.epoch} (${snap.path}); no newer replica or datastore`,
    };
  return { source: { kind: 'empty' }, reason: 'no datastore, replica or snapshot: a new cluster' };
}

/** parseEtcdDirs reads `ls -1 /var/lib/edgectl/etcd` into datastore and replica epochs. */
export function parseEtcdDirs(listing: string): { datastores: number[]; replicas: number[] } {
  const datastores: number[] = [];
  const replicas: number[] = [];
  for (const l of listing.split('\n').map((s) => s.trim())) {
    const d = /^epoch-(\d+)$/.exec(l);
    const r = /^replica-epoch-(\d+)$/.exec(l);
    if (d) datastores.push(Number(d[1]));
    if (r) replicas.push(Number(r[1]));
  }
  return { datastores, replicas };
}

/** parseEndpointRevision reads `etcdctl endpoint status -w json`: the revision applied, or null. */
export function parseEndpointRevision(stdout: string): number | null {
  try {
    const rows = JSON.parse(stdout) as { Status?: { header?: { revision?: number } } }[];
    const rev = rows[0]?.Status?.header?.revision;
    return typeof rev === 'number' && Number.isSafeInteger(rev) && rev > 0 ? rev : null;
  } catch {
    return null;
  }
}

/**
 * parseMemberList reads `etcdctl member list -w json --hex` (hex ids: a uint64 does not survive
 * JSON.parse as a number) into members with decimal ids.
 */
export function parseMemberList(stdout: string): EtcdMember[] | null {
  try {
    const doc = JSON.parse(stdout) as {
      members?: { ID?: string; name?: string; peerURLs?: string[]; isLearner?: boolean }[];
    };
    if (!Array.isArray(doc.members)) return null;
    return doc.members.flatMap((m) =>
      typeof m.ID === 'string' && /^[0-9a-f]+$/i.test(m.ID)
        ? [
            {
              id: BigInt(`0x${m.ID}`).toString(),
              name: m.name ?? '',
              peerUrls: m.peerURLs ?? [],
              learner: m.isLearner === true,
            },
          ]
        : [],
    );
  } catch {
    return null;
  }
}
