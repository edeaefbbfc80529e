/**
 * The robot side of continuous replication (docs/k3s.md "Replication"), as plans: pure and
 * golden-tested (replica-plans.test.ts), run by the same executor as the k3s plans.
 *
 * On robots the datastore is an etcd that edgectl runs (a transient unit `edgectl-etcd`) and k3s
 * uses as its external datastore, not k3s's embedded etcd: k3s's embedded etcd promotes every
 * learner it finds once it has caught up (pkg/etcd manageLearners), which would turn the standby
 * into a voter the leader's writes wait for, the very thing replication must not do. The lab runs
 * the same etcd commands (lab/runtime/etcd-replica.ts, lab/kube-apiserver/apiserver.ts).
 *
 *   replicaStartPlan    a follower voter: discard other epochs' data, run a learner of the leader
 *   replicaStopPlan     stop the learner (SIGTERM: its bbolt file then holds every applied entry)
 *   standbyChangePlan   the leader: add or remove learner members (agent/control-plane/replica.ts)
 *   datastoreStartPlan  a new leader: its datastore for the epoch, from its replica, a snapshot or empty
 */
import type { MemberChange } from '../control-plane/replica.ts';
import { etcdPeerUrl } from '../control-plane/replica.ts';
import type { Plan, PlanStep } from '../plan/plan.ts';

export const ETCD_BIN = '/usr/local/bin/etcd';
export const ETCDCTL_BIN = '/usr/local/bin/etcdctl';
/** Every epoch's datastore and replica; nothing else lives here. */
export const EDGECTL_ETCD_DIR = '/var/lib/edgectl/etcd';
/** The voter's peer certificate of the site's etcd peer CA: bootstrap writes it to voters only. */
export const ETCD_PEER_DIR = '/etc/edgectl/etcd-peer';
export const DATASTORE_UNIT = 'edgectl-etcd';
export const REPLICA_UNIT = 'edgectl-etcd-replica';
/** Loopback only: k3s (datastore-endpoint) and the agent are the only clients. */
export const ETCD_CLIENT_URL = 'http://127.0.0.1:2379';

export const datastoreDir = (epoch: number) => `${EDGECTL_ETCD_DIR}/epoch-${epoch}`;
export const replicaDir = (epoch: number) => `${EDGECTL_ETCD_DIR}/replica-epoch-${epoch}`;
/** The bbolt file of a stopped replica: what a new leader restores from. */
export const replicaDb = (epoch: number) => `${replicaDir(epoch)}/member/snap/db`;

const PEER_TLS = [
  `--peer-cert-file=${ETCD_PEER_DIR}/peer.crt`,
  `--peer-key-file=${ETCD_PEER_DIR}/peer.key`,
  `--peer-trusted-ca-file=${ETCD_PEER_DIR}/peer-ca.crt`,
  '--peer-client-cert-auth=true',
];

export interface RobotEndpoint {
  readonly id: string;
  readonly host: string;
}

function transientUnit(unit: string, argv: readonly string[], what: string): PlanStep {
  return {
    kind: 'run',
    id: `start-${unit}`,
    description: what,
    // A transient unit: no unit file, nothing enabled at boot (a robot that boots is a follower
    // until elected), restarted on a crash with its data.
    argv: [
      'systemd-run',
      `--unit=${unit}`,
      '--collect',
      '--property=Restart=on-failure',
      '--property=RestartSec=3',
      ...argv,
    ],
    unless: ['systemctl', 'is-active', '--quiet', unit],
  };
}

/**
 * discardOthers: remove every datastore and replica directory but `keep`: an old leader's
 * unreplicated writes (its epoch-<n>) and older replicas never come back.
 */
function discardOthers(keep: readonly string[]): PlanStep {
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
      {
        kind: 'systemd',
        id: 'stop-replica',
        description: 'stop a replica of another epoch',
        action: 'stop',
        unit: REPLICA_UNIT,
      },
      {
        kind: 'systemd',
        id: 'stop-datastore',
        description: 'a follower serves no datastore',
        action: 'stop',
        unit: DATASTORE_UNIT,
      },
      {
        kind: 'run',
        id: 'dir-etcd',
        description: `directory ${EDGECTL_ETCD_DIR}`,
        argv: ['install', '-d', '-m', '0700', EDGECTL_ETCD_DIR],
      },
      discardOthers(held === undefined ? [dir] : [dir, replicaDir(held)]),
      transientUnit(
        REPLICA_UNIT,
        [
          ETCD_BIN,
          `--name=${self.id}`,
          `--data-dir=${dir}`,
          '--listen-client-urls=http://127.0.0.1:2379',
          '--advertise-client-urls=http://127.0.0.1:2379',
          `--listen-peer-urls=${selfPeer}`,
          `--initial-advertise-peer-urls=${selfPeer}`,
          `--initial-cluster=${leader.id}=${etcdPeerUrl(leader.host)},${self.id}=${selfPeer}`,
          '--initial-cluster-state=existing',
          ...PEER_TLS,
        ],
        `replicate ${leader.id}'s etcd of epoch ${epoch} (a learner)`,
      ),
    ],
  };
}

/** replicaStopPlan: SIGTERM, so etcd commits its backend before it exits. */
export function replicaStopPlan(self: string): Plan {
  return {
    target: self,
    steps: [
      {
        kind: 'systemd',
        id: 'stop-replica',
        description: 'stop the replica',
        action: 'stop',
        unit: REPLICA_UNIT,
      },
    ],
  };
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
            argv: [
              ETCDCTL_BIN,
              `--endpoints=${ETCD_CLIENT_URL}`,
              'member',
              'add',
              c.node,
              '--learner',
              `--peer-urls=${c.peerUrl}`,
            ],
          }
        : {
            kind: 'run',
            id: `member-remove-${i + 1}`,
            description: `remove etcd member ${c.id}: ${c.reason}`,
            // The gateway lists ids in decimal; etcdctl takes them in hex.
            argv: [
              ETCDCTL_BIN,
              `--endpoints=${ETCD_CLIENT_URL}`,
              'member',
              'remove',
              BigInt(c.id).toString(16),
            ],
          },
    ),
  };
}

/** Where a new leader's datastore comes from (agent/control-plane/replica.ts takeoverSource). */
export type DatastoreSource =
  | { readonly kind: 'replica'; readonly epoch: number }
  | { readonly kind: 'snapshot'; readonly path: string; readonly sha256: string }
  | { readonly kind: 'empty' };

/**
 * datastoreStartPlan: this robot's etcd for `epoch`, a single voting member, restored first from
 * its stopped replica (its bbolt file: no snapshot hash to check) or from a snapshot whose
 * checksum the site log recorded. etcd 3.4 panics on --force-new-cluster over a learner's data
 * dir ("removed all voters"), and a restore also drops every other member, so takeover is always
 * a restore. Skipped when the epoch's data dir exists: a restart of the same epoch keeps its data.
 */
export function datastoreStartPlan(self: RobotEndpoint, epoch: number, source: DatastoreSource): Plan {
  const dir = datastoreDir(epoch);
  const peer = etcdPeerUrl(self.host);
  const steps: PlanStep[] = [
    {
      kind: 'systemd',
      id: 'stop-replica',
      description: 'stop the replica (its data is flushed on SIGTERM)',
      action: 'stop',
      unit: REPLICA_UNIT,
    },
  ];
  const from =
    source.kind === 'replica' ? replicaDb(source.epoch) : source.kind === 'snapshot' ? source.path : null;
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
          : 'restore the snapshot',
      argv: [
        ETCDCTL_BIN,
        'snapshot',
        'restore',
        from,
        ...(source.kind === 'replica' ? ['--skip-hash-check'] : []),
        `--data-dir=${dir}`,
        `--name=${self.id}`,
        `--initial-cluster=${self.id}=${peer}`,
        `--initial-advertise-peer-urls=${peer}`,
      ],
      unless: ['test', '-d', dir],
    });
  steps.push(
    transientUnit(
      DATASTORE_UNIT,
      [
        ETCD_BIN,
        `--name=${self.id}`,
        `--data-dir=${dir}`,
        `--listen-client-urls=${ETCD_CLIENT_URL}`,
        `--advertise-client-urls=${ETCD_CLIENT_URL}`,
        `--listen-peer-urls=${peer}`,
        `--initial-advertise-peer-urls=${peer}`,
        `--initial-cluster=${self.id}=${peer}`,
        '--initial-cluster-state=new',
        ...PEER_TLS,
      ],
      `serve the datastore of epoch ${epoch}`,
    ),
  );
  return { target: self.id, steps };
}
