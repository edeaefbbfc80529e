/**
 * The k3s plans: what the runtime (agent/control-plane/k3s.ts) and the bootstrap do to a robot, as
 * data (agent/plan/plan.ts). Pure and golden-tested (plans.test.ts); deterministic (same inputs,
 * same steps) and idempotent (running a plan twice ends in the state running it once does; the
 * property test in plans.test.ts runs them through a model of the robot).
 *
 *   installPlan        the binary already on the robot, tool links, units, reap script, directories
 *   startServerPlan    become the leader's server for an epoch, on the datastore replica-plans.ts started
 *   stopServerPlan     demotion: stop k3s.service first, then fence it, then reap its containerd
 *   joinWorkerPlan     (re)join the leader of an epoch as a worker
 *   resetWorkerPlan    stop being a worker of anyone
 *   snapshotSavePlan   take a named etcd snapshot of the leader's datastore
 *   forgetNodesPlan    delete Nodes (and their node-password secrets) of robots that left the site
 *   uninstallPlan      remove k3s and everything the install, the identity and k3s itself put there
 *
 * Why each step is there is in docs/k3s.md.
 */
import type { Plan, PlanStep } from '../plan/plan.ts';
import {
  DATASTORE_UNIT,
  EDGECTL_ETCD_DIR,
  ETCD_BIN,
  ETCD_CLIENT_DIR,
  ETCD_ENV_DIR,
  ETCD_PEER_DIR,
  ETCDCTL_BIN,
  REPLICA_UNIT,
  AGENT_LOAD_BALANCER_FILES,
  AGENT_SERVER_BOUND_FILES,
  AGENT_UNIT,
  CONFIG_DIR,
  CONFIG_DROPIN_DIR,
  CONFIG_FILE,
  DATA_DIR,
  EDGECTL_K3S_STATE_DIR,
  K3S_BIN,
  K3S_TOOL_LINKS,
  KUBELET_DIR,
  LOCAL_SNAPSHOT_DIR,
  NODE_PASSWORD_FILE,
  REAP_SCRIPT,
  RECEIVED_SNAPSHOT_DIR,
  SECRETS_DIR,
  SERVED_EPOCH_FILE,
  SERVER_FENCE_FILE,
  SERVER_UNIT,
  SERVER_URL_DROPIN,
  SYSTEMD_DIR,
} from './paths.ts';
import { etcdctl } from './replica-plans.ts';
import { REVISION_BUMP_BIN } from './revision-bump.ts';
import {
  renderAgentConfig,
  renderAgentUnit,
  renderEtcdUnit,
  renderServerConfig,
  renderServerUnit,
  renderServerUrlDropin,
} from './render.ts';
import type { K3sNodeSpec } from './settings.ts';

/** Where the k3s binary comes from. Either way no robot downloads anything. */
export type K3sBinarySource =
  /** Already on the robot (baked into its image): copied into place if its checksum matches. */
  | { readonly kind: 'onRobot'; readonly path: string; readonly sha256: string }
  /** On the operator's machine: uploaded by the bootstrap's executor. */
  | { readonly kind: 'upload'; readonly localPath: string; readonly sha256: string };

/** A binary in the operator's offline bundle, uploaded and checked by its SHA-256. */
export interface BundledBinary {
  readonly localPath: string;
  readonly sha256: string;
}

/**
 * The etcd a server-capable robot runs as k3s's datastore (replica-plans.ts), from the bundle:
 * etcd, etcdctl and the revision-bump tool (revision-bump.ts).
 */
export interface EtcdBinaries {
  readonly etcd: BundledBinary;
  readonly etcdctl: BundledBinary;
  readonly revisionBump: BundledBinary;
}

export interface InstallOptions {
  readonly binary: K3sBinarySource;
  /** Server-capable robots: etcd's binaries. Absent: already on the robot (its image). */
  readonly etcd?: EtcdBinaries;
  /** templates/k3s/edgectl-k3s-reap.sh (templates.ts reads it). */
  readonly reapScript: string;
}

/** The content of the fence file; its presence, not its content, is what systemd checks. */
export const FENCE_CONTENT =
  '# k3s.service does not start while this file exists (edgectl demotion fence).\n';

const BINARY_CHECKSUM_FILE = `${EDGECTL_K3S_STATE_DIR}/k3s.sha256`;
const SOURCE_CHECKSUM_FILE = `${EDGECTL_K3S_STATE_DIR}/k3s-source.sha256`;

/**
 * installPlan puts k3s on a robot without any download, like install.sh with
 * INSTALL_K3S_SKIP_DOWNLOAD=true but without install.sh: install.sh would write its own units
 * (enabled at boot, with an environment file) that this design must not have. It enables nothing.
 * Re-running it on a serving leader changes nothing: the fence is only created where no server runs.
 */
export function installPlan(spec: K3sNodeSpec, opts: InstallOptions): Plan {
  const steps: PlanStep[] = [
    mkdir('dir-secrets', SECRETS_DIR, '0700'),
    mkdir('dir-config', CONFIG_DROPIN_DIR, '0755'),
    mkdir('dir-state', EDGECTL_K3S_STATE_DIR, '0700'),
    mkdir('dir-snapshots-local', LOCAL_SNAPSHOT_DIR, '0700'),
    mkdir('dir-snapshots-received', RECEIVED_SNAPSHOT_DIR, '0700'),
    mkdir('dir-libexec', '/usr/local/lib/edgectl', '0755'),
    ...binarySteps(opts.binary),
    ...K3S_TOOL_LINKS.map((tool): PlanStep => ({
      kind: 'run',
      id: `link-${tool}`,
      description: `link ${tool} to k3s, unless the robot already has a ${tool}`,
      argv: ['ln', '-s', 'k3s', `/usr/local/bin/${tool}`],
      unless: ['sh', '-c', `command -v ${tool} >/dev/null`],
    })),
    writeFile('unit-server', `${SYSTEMD_DIR}/${SERVER_UNIT}`, renderServerUnit(), 0o644, 'k3s.service'),
    writeFile('unit-agent', `${SYSTEMD_DIR}/${AGENT_UNIT}`, renderAgentUnit(), 0o644, 'k3s-agent.service'),
    writeFile('reap-script', REAP_SCRIPT, opts.reapScript, 0o755, 'the demotion reap script'),
    ...(spec.serverCapable ? etcdInstallSteps(opts.etcd) : []),
    {
      kind: 'run',
      id: 'fence',
      description: 'fence k3s.service until this robot is elected (skipped where a server runs)',
      argv: ['touch', SERVER_FENCE_FILE],
      unless: ['systemctl', 'is-active', '--quiet', SERVER_UNIT],
    },
    { kind: 'systemd', id: 'daemon-reload', description: 'load the k3s units', action: 'daemon-reload' },
  ];
  return { target: spec.nodeName, steps };
}

/**
 * etcdInstallPlan: what installPlan puts on a server-capable robot for edgectl's etcd, on its own,
 * for a robot whose k3s was installed by someone else: a voter needs its datastore either way.
 */
export function etcdInstallPlan(spec: K3sNodeSpec, etcd?: EtcdBinaries): Plan {
  return {
    target: spec.nodeName,
    steps: spec.serverCapable
      ? [
          ...etcdInstallSteps(etcd),
          {
            kind: 'systemd',
            id: 'daemon-reload',
            description: 'load the etcd units',
            action: 'daemon-reload',
          },
        ]
      : [],
  };
}

/**
 * The etcd units, their directories and (from the bundle) binaries: only on server-capable robots.
 * Nothing starts here; the agent starts the units for an epoch (replica-plans.ts).
 */
function etcdInstallSteps(bin: EtcdBinaries | undefined): PlanStep[] {
  const upload = (id: string, b: BundledBinary, path: string, what: string): PlanStep => ({
    kind: 'upload',
    id,
    description: `upload ${what}`,
    localPath: b.localPath,
    path,
    mode: 0o755,
    sha256: b.sha256,
  });
  return [
    mkdir('dir-etcd-data', EDGECTL_ETCD_DIR, '0700'),
    mkdir('dir-etcd-env', ETCD_ENV_DIR, '0700'),
    ...(bin
      ? [
          upload('etcd-binary', bin.etcd, ETCD_BIN, 'etcd'),
          upload('etcdctl-binary', bin.etcdctl, ETCDCTL_BIN, 'etcdctl'),
          upload('revision-bump-binary', bin.revisionBump, REVISION_BUMP_BIN, 'the etcd revision-bump tool'),
        ]
      : []),
    writeFile(
      'unit-etcd',
      `${SYSTEMD_DIR}/${DATASTORE_UNIT}`,
      renderEtcdUnit('datastore'),
      0o644,
      DATASTORE_UNIT,
    ),
    writeFile(
      'unit-etcd-replica',
      `${SYSTEMD_DIR}/${REPLICA_UNIT}`,
      renderEtcdUnit('replica'),
      0o644,
      REPLICA_UNIT,
    ),
  ];
}

function binarySteps(binary: K3sBinarySource): PlanStep[] {
  if (binary.kind === 'upload') {
    return [
      {
        kind: 'upload',
        id: 'binary',
        description: 'upload the k3s binary',
        localPath: binary.localPath,
        path: K3S_BIN,
        mode: 0o755,
        sha256: binary.sha256,
      },
    ];
  }
  const installed = ['sha256sum', '--check', '--status', BINARY_CHECKSUM_FILE];
  return [
    writeFile(
      'binary-checksum',
      BINARY_CHECKSUM_FILE,
      `${binary.sha256}  ${K3S_BIN}\n`,
      0o644,
      'the expected k3s checksum',
    ),
    writeFile(
      'source-checksum',
      SOURCE_CHECKSUM_FILE,
      `${binary.sha256}  ${binary.path}\n`,
      0o644,
      'the expected checksum of the binary on the robot',
    ),
    {
      kind: 'run',
      id: 'binary-verify-source',
      description: `check ${binary.path} is the expected k3s`,
      argv: ['sha256sum', '--check', '--status', SOURCE_CHECKSUM_FILE],
      unless: installed,
    },
    {
      kind: 'run',
      id: 'binary-install',
      description: `install ${binary.path} as ${K3S_BIN}`,
      argv: ['install', '-m', '0755', binary.path, K3S_BIN],
      unless: installed,
    },
    { kind: 'run', id: 'binary-verify', description: `check ${K3S_BIN}`, argv: installed },
  ];
}

/**
 * startServerPlan: this robot becomes the server of `epoch`, on the datastore of that epoch that
 * replica-plans.ts datastoreStartPlan started just before (restored from a replica or a snapshot
 * when needed). The worker role goes first (agent stopped, server URL removed), then the server
 * config. The fence goes last, just before start.
 */
export function startServerPlan(spec: K3sNodeSpec, epoch: number): Plan {
  const steps: PlanStep[] = [
    systemd('stop-agent', 'stop', AGENT_UNIT, 'stop the worker role'),
    remove('remove-server-url', SERVER_URL_DROPIN, 'forget the old leader: a server must not join anyone'),
    writeFile('config', CONFIG_FILE, renderServerConfig(spec), 0o600, 'the server config'),
    writeFile('served-epoch', SERVED_EPOCH_FILE, `${epoch}\n`, 0o644, 'the epoch this robot serves'),
    remove('unfence', SERVER_FENCE_FILE, 'lift the demotion fence'),
    systemd('start-server', 'start', SERVER_UNIT, `serve epoch ${epoch}`),
  ];
  return { target: spec.nodeName, steps };
}

/**
 * stopServerPlan (demotion): stop k3s.service before anything else, so it stops accepting agents at
 * once; then fence it, so neither Restart= nor a stray start brings it back; then stop the
 * containerd it left (edgectl-k3s-reap), keeping the pods; last, stop its datastore, so no write
 * of a demoted leader reaches it.
 */
export function stopServerPlan(spec: K3sNodeSpec, epoch: number): Plan {
  return {
    target: spec.nodeName,
    steps: [
      systemd('stop-server', 'stop', SERVER_UNIT, `stop the server (epoch ${epoch} or older)`),
      writeFile('fence', SERVER_FENCE_FILE, FENCE_CONTENT, 0o644, 'the demotion fence'),
      reap(),
      systemd(
        'stop-datastore',
        'stop',
        DATASTORE_UNIT,
        'stop serving the datastore (its data stays: a re-elected robot carries it on)',
      ),
    ],
  };
}

/**
 * joinWorkerPlan: (re)join the leader of `epoch`. It makes sure no server runs here, stops the old
 * agent, points the config at the new leader, removes what ties the agent to the old one (the cached
 * server list, which would otherwise take precedence over the new URL, and the certificates the old
 * server issued), and starts the agent. The node password is not touched: it is the robot's stable,
 * derived password (identity.ts nodePassword), which every server of the site already accepts.
 */
export function joinWorkerPlan(
  spec: K3sNodeSpec,
  leader: { readonly id: string; readonly host: string },
  epoch: number,
): Plan {
  return {
    target: spec.nodeName,
    steps: [
      systemd('stop-server', 'stop', SERVER_UNIT, 'a worker runs no server'),
      writeFile('fence', SERVER_FENCE_FILE, FENCE_CONTENT, 0o644, 'the demotion fence'),
      systemd('stop-agent', 'stop', AGENT_UNIT, 'stop the agent before changing its files'),
      reap(),
      writeFile('config', CONFIG_FILE, renderAgentConfig(spec), 0o600, 'the agent config'),
      writeFile(
        'server-url',
        SERVER_URL_DROPIN,
        renderServerUrlDropin(leader, epoch),
        0o600,
        `the URL of ${leader.id}`,
      ),
      ...AGENT_LOAD_BALANCER_FILES.map((f, i) =>
        remove(`remove-lb-${i + 1}`, f, 'forget the cached server list'),
      ),
      ...AGENT_SERVER_BOUND_FILES.map((f) =>
        remove(`remove-${basename(f)}`, f, 'forget what the old server issued'),
      ),
      systemd('start-agent', 'start', AGENT_UNIT, `join ${leader.id} (epoch ${epoch})`),
    ],
  };
}

/** resetWorkerPlan: stop being anyone's worker; the next join starts clean. */
export function resetWorkerPlan(spec: K3sNodeSpec): Plan {
  return {
    target: spec.nodeName,
    steps: [
      systemd('stop-agent', 'stop', AGENT_UNIT, 'stop the worker role'),
      remove('remove-server-url', SERVER_URL_DROPIN, 'forget the leader'),
      ...AGENT_LOAD_BALANCER_FILES.map((f, i) =>
        remove(`remove-lb-${i + 1}`, f, 'forget the cached server list'),
      ),
    ],
  };
}

/**
 * snapshotSavePlan: a snapshot of the leader's datastore into `file` (snapshots.ts names it
 * <name>-<node>-<unix seconds>, as k3s named its own), with etcdctl: k3s's etcd-snapshot does not
 * apply to an external datastore.
 */
export function snapshotSavePlan(spec: K3sNodeSpec, file: string): Plan {
  return {
    target: spec.nodeName,
    steps: [
      {
        kind: 'run',
        id: 'snapshot-save',
        description: `take etcd snapshot ${file.slice(file.lastIndexOf('/') + 1)}`,
        argv: etcdctl('snapshot', 'save', file),
        timeoutMs: 5 * 60_000,
      },
    ],
  };
}

/**
 * forgetNodesPlan: delete the Node and the node-password secret of robots that are no longer in the
 * site. A restored snapshot still names them (docs.k3s.io/cli/etcd-snapshot, "Restoring To New
 * Hosts": old nodes must be deleted). Both deletes tolerate absence, so re-running is harmless.
 */
export function forgetNodesPlan(spec: K3sNodeSpec, nodes: readonly string[]): Plan {
  const steps: PlanStep[] = [];
  for (const node of [...new Set(nodes)].sort()) {
    steps.push(
      {
        kind: 'run',
        id: `forget-node-${node}`,
        description: `delete Node ${node}, which left the site`,
        argv: [K3S_BIN, 'kubectl', 'delete', 'node', node, '--ignore-not-found'],
      },
      {
        kind: 'run',
        id: `forget-password-${node}`,
        description: `delete the node-password secret of ${node}`,
        argv: [
          K3S_BIN,
          'kubectl',
          '-n',
          'kube-system',
          'delete',
          'secret',
          `${node}.node-password.k3s`,
          '--ignore-not-found',
        ],
      },
    );
  }
  return { target: spec.nodeName, steps };
}

/**
 * KILLALL_SCRIPT ends what a stopped k3s leaves running, as k3s-killall.sh does: every process
 * whose executable k3s extracted under its data dir (containerd and the containerd-shims, so the
 * pods too), then every mount k3s and the kubelet made, deepest first. Uninstall runs it before it
 * removes the data dir, so nothing is removed through a live mount. Constant: no value in it.
 */
export const KILLALL_SCRIPT = `for d in /proc/[0-9]*; do case "$(readlink "$d/exe" 2>/dev/null)" in ${DATA_DIR}/data/*) kill -9 "\${d#/proc/}" 2>/dev/null || true;; esac; done; awk '$2 ~ "^(/run/k3s|${KUBELET_DIR}|${DATA_DIR})(/|$)" {print $2}' /proc/self/mounts | sort -r | while read -r m; do umount -l "$m" || exit 1; done`;

/**
 * uninstallPlan removes k3s from a robot: both units stopped, everything k3s runs ended and
 * unmounted (KILLALL_SCRIPT), then the units, the reap script, the tool links that point to k3s,
 * the binary, the config and identity (/etc/rancher), the node password, k3s's data and the
 * kubelet's (the cluster state this robot held: other voters keep the shipped snapshots), and
 * edgectl's k3s secrets, state and snapshots. Every step is idempotent: a second run, or a run on a
 * robot that never had k3s, changes nothing.
 */
export function uninstallPlan(spec: K3sNodeSpec): Plan {
  const steps: PlanStep[] = [
    systemd('stop-server', 'stop', SERVER_UNIT, 'stop the k3s server'),
    systemd('stop-agent', 'stop', AGENT_UNIT, 'stop the k3s agent'),
    systemd('stop-datastore', 'stop', DATASTORE_UNIT, "stop edgectl's etcd"),
    systemd('stop-replica', 'stop', REPLICA_UNIT, "stop edgectl's etcd replica"),
    {
      kind: 'run',
      id: 'killall',
      description:
        'end the containerd, shims and pods k3s left, and unmount what k3s and the kubelet mounted',
      argv: ['sh', '-c', KILLALL_SCRIPT],
    },
    remove('unit-server', `${SYSTEMD_DIR}/${SERVER_UNIT}`, 'the k3s server unit'),
    remove('unit-agent', `${SYSTEMD_DIR}/${AGENT_UNIT}`, 'the k3s agent unit'),
    remove('unit-etcd', `${SYSTEMD_DIR}/${DATASTORE_UNIT}`, "edgectl's etcd unit"),
    remove('unit-etcd-replica', `${SYSTEMD_DIR}/${REPLICA_UNIT}`, "edgectl's etcd replica unit"),
    { kind: 'systemd', id: 'daemon-reload', description: 'forget the k3s units', action: 'daemon-reload' },
    remove('libexec', parentDir(REAP_SCRIPT), 'the demotion reap script and its directory', true),
    ...K3S_TOOL_LINKS.map((tool): PlanStep => ({
      kind: 'run',
      id: `unlink-${tool}`,
      description: `remove /usr/local/bin/${tool} if it is the link to k3s the install made`,
      argv: ['rm', '-f', `/usr/local/bin/${tool}`],
      unless: ['sh', '-c', `test "$(readlink /usr/local/bin/${tool})" != k3s`],
    })),
    remove('binary', K3S_BIN, 'the k3s binary'),
    remove('etcd-binary', ETCD_BIN, 'the etcd binary'),
    remove('etcdctl-binary', ETCDCTL_BIN, 'the etcdctl binary'),
    remove('revision-bump-binary', REVISION_BUMP_BIN, 'the etcd revision-bump tool'),
    remove('config', CONFIG_DIR, 'the k3s config and the site identity (/etc/rancher/k3s)', true),
    remove('node-password', parentDir(NODE_PASSWORD_FILE), 'the node password', true),
    remove('data', DATA_DIR, "k3s's data: etcd, certificates, images", true),
    remove('kubelet', KUBELET_DIR, "the kubelet's pod directories", true),
    remove('secrets', SECRETS_DIR, "edgectl's k3s tokens", true),
    remove('state', EDGECTL_K3S_STATE_DIR, "edgectl's k3s state: fence, served epoch", true),
    remove('snapshots', parentDir(LOCAL_SNAPSHOT_DIR), 'the snapshots this robot took and received', true),
    remove('etcd-data', EDGECTL_ETCD_DIR, "edgectl's etcd: every epoch's datastore and replica", true),
    remove('etcd-env', ETCD_ENV_DIR, "the etcd units' flags", true),
    remove('etcd-peer', ETCD_PEER_DIR, 'the etcd peer certificate', true),
    remove('etcd-client', ETCD_CLIENT_DIR, 'the etcd client certificates', true),
  ];
  return { target: spec.nodeName, steps };
}

function parentDir(path: string): string {
  return path.slice(0, path.lastIndexOf('/'));
}

function reap(): PlanStep {
  return {
    kind: 'run',
    id: 'reap',
    description: 'stop the containerd the stopped k3s left, keeping its pods',
    argv: [REAP_SCRIPT],
  };
}

function mkdir(id: string, path: string, mode: string): PlanStep {
  return { kind: 'run', id, description: `directory ${path}`, argv: ['install', '-d', '-m', mode, path] };
}

function writeFile(id: string, path: string, content: string, mode: number, what: string): PlanStep {
  return { kind: 'writeFile', id, description: `write ${what}`, path, mode, owner: 'root:root', content };
}

function remove(id: string, path: string, why: string, recursive = false): PlanStep {
  return { kind: 'remove', id, description: why, path, ...(recursive ? { recursive } : {}) };
}

function systemd(
  id: string,
  action: 'start' | 'stop' | 'restart',
  unit: string,
  description: string,
): PlanStep {
  return { kind: 'systemd', id, description, action, unit };
}

function basename(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}
