/**
 * The lab: a whole robot site on one Linux machine (docs/lab.md). `up` makes a bridge (the site's
 * Wi-Fi) and one network namespace per robot, and starts in each the real `edgectl agent` (lab
 * control-plane runtime: a real kube-apiserver + etcd when it leads, a lab kubelet when it follows)
 * and an OpenSSH sshd. Faults are real: SIGKILL/SIGSTOP of a robot's process group, link down, and
 * nftables loss and partitions on the bridge. Everything carries the lab's prefix; `down` removes
 * exactly that, also after a crash, from the state file written before anything is made.
 */
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  openSync,
  closeSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { get as httpGet } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import type { AgentStatus } from '../agent/agent.ts';
import { EdgeError, UsageError } from '../agent/errors.ts';
import { formatRobotKeyFile, renderRobotKeyFile } from '../agent/site-key.ts';
import { formatFault, type Fault } from './faults.ts';
import {
  createApiServerIdentity,
  etcdBinary,
  kubeApiserverBinary,
  loadApiServerIdentity,
} from './kube-apiserver/apiserver.ts';
import { issueEtcdPeerCerts } from './kube-apiserver/etcd-peer.ts';
import { createSite, destroySite, listOwned, requireRoot } from './netns.ts';
import type { AddonImages } from '../agent/site/spec.ts';
import { cgroupHierarchies, powerOffRealNode, removeCgroupsSync } from './node/node-power.ts';
import {
  applyNetFault,
  EMPTY_NET,
  lossPercent,
  nftTableName,
  renderNftRuleset,
  type LabNetState,
} from './nft.ts';
import { KubeHttp } from './runtime/kube-http.ts';
import { LAB_API_PORT } from './runtime/lab-control-plane.ts';
import { observeWorkload, type WorkloadObservation } from './workload.ts';

/** The lab's agent entry: the robot's agent with the lab runtime registered (lab/agent-main.ts). */
const LAB_AGENT = fileURLToPath(new URL('./agent-main.ts', import.meta.url));
/** The same, bundled (npm run build:lab-agent), which `edgectl bootstrap site` installs on lab robots. */
export const LAB_AGENT_BUNDLE = fileURLToPath(new URL('./bundle/edgectl-agent.mjs', import.meta.url));
// yaml only where lab up writes configs: `lab status` and `lab fault` never load it.
const yaml = () => createRequire(import.meta.url)('yaml') as typeof import('yaml');
export const LAB_ROOT = process.env['EDGECTL_LAB_ROOT'] ?? '/var/lib/edgectl/lab';

export interface LabOptions {
  readonly site: string;
  readonly robots: number;
  readonly voters: number;
  /** Witnesses w1..wN beside the robots, each in its own namespace: they vote, never lead. */
  readonly witnesses?: number;
  /** Accept two voters without a witness (a site that cannot fail over). */
  readonly allowNoFailover?: boolean;
  readonly runtime: 'apiserver' | 'k3s';
  /**
   * What runs on each robot: `real` is containerd + kubelet joined to the leader's server, with
   * kube-controller-manager + kube-scheduler beside it (lab/node, docs/real-node.md); `lite` is the
   * lab kubelet, which keeps a Node and its Lease and runs no pod (big sites, fast tests).
   */
  readonly node: LabNodeKind;
  /**
   * Real nodes: kube-controller-manager's node-monitor grace period; default the lost-after time,
   * `kubernetes` its own default (for comparisons with stock Kubernetes timings).
   */
  readonly nodeMonitorGrace?: 'lost-after' | 'kubernetes';
  readonly seed: number;
  /** Name prefix of every namespace, link and nft table (default `el-<site>-`). */
  readonly prefix?: string;
  /** First three octets of the site subnet (default 10.77.1). */
  readonly subnet?: string;
  readonly sshd?: boolean;
  /** Membership timings for the agents (dead-after and lost-after drive node cleanup). */
  readonly deadAfterMs?: number;
  readonly lostAfterMs?: number;
  /** How often the leader snapshots its control plane (lab default 5 s: the RPO). */
  readonly snapshotIntervalMs?: number;
  /** Voters replicate the leader's etcd (docs/k3s.md "Replication"); false: snapshots only. */
  readonly replication?: boolean;
  /** The agents' timing profile (statecharts/timing.ts): lab by default, fleet as on robots. */
  readonly profile?: 'fleet' | 'lab' | 'test';
  /**
   * Start the agents (default). false: bare robots with only sshd, for `edgectl bootstrap site`
   * to install (labInventory, startInstalledAgent).
   */
  readonly agents?: boolean;
}

export type LabNodeKind = 'real' | 'lite';

export interface LabRobot {
  readonly name: string;
  readonly netns: string;
  readonly address: string;
  readonly veth: string;
  readonly voter: boolean;
  /** A witness: votes, runs no control plane and has no Node. */
  readonly witness?: boolean;
  agentPid: number | null;
  sshdPid: number | null;
  powered: boolean;
  paused: boolean;
  wifi: boolean;
  /** The agent was installed by `edgectl bootstrap site` (startInstalledAgent), not by `lab up`. */
  installed?: boolean;
}

export interface LabState {
  readonly version: 1;
  readonly site: string;
  readonly prefix: string;
  readonly subnet: string;
  readonly bridge: string;
  readonly hostAddress: string;
  readonly dir: string;
  readonly runtime: 'apiserver' | 'k3s';
  /** Absent in a state file written before real nodes: lite. */
  readonly node?: LabNodeKind;
  /** Real nodes: the bundle file lab/node/build.sh printed (the demo image's name is in it). */
  readonly nodeBundle?: string;
  /**
   * Real nodes: a process `lab up` leaves in the host's mount namespace, through which the agents
   * (whose `ip netns exec` hides the cgroup tree) start their nodes; PID 1 is not readable here.
   */
  hostMountPid?: number | null;
  readonly seed: number;
  readonly createdAt: string;
  robots: LabRobot[];
  net: LabNetState;
}

const SITE_RE = /^[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?$/;

export function labDir(site: string): string {
  return join(LAB_ROOT, site);
}

export function defaultPrefix(site: string): string {
  return `el-${site.slice(0, 6)}-`;
}

function validate(o: LabOptions): void {
  const problems: string[] = [];
  if (!SITE_RE.test(o.site)) problems.push(`--site "${o.site}": use 1-12 lower-case letters, digits, dashes`);
  if (!Number.isInteger(o.robots) || o.robots < 1 || o.robots > 20)
    problems.push(`--robots ${o.robots}: use 1 to 20`);
  if (!Number.isInteger(o.voters) || o.voters < 1 || o.voters > Math.min(7, o.robots))
    problems.push(`--voters ${o.voters}: use 1 to ${Math.min(7, o.robots)} (at most 7, at most --robots)`);
  const witnesses = o.witnesses ?? 0;
  if (!Number.isInteger(witnesses) || witnesses < 0 || o.voters + witnesses > 7)
    problems.push(`--witnesses ${witnesses}: voters and witnesses together are at most 7`);
  else if (o.voters === 2 && witnesses === 0 && !o.allowNoFailover)
    problems.push(
      '--voters 2: two voters survive no voter loss (losing either leaves a site that never elects): add --witnesses 1, or pass --allow-no-failover',
    );
  if (o.subnet && !/^\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(o.subnet))
    problems.push(`--subnet "${o.subnet}": write three octets, like 10.77.1`);
  const prefix = o.prefix ?? defaultPrefix(o.site);
  if (prefix.length > 10 || prefix.length < 3)
    problems.push(`--prefix "${prefix}": use 3 to 10 characters (interface names are at most 15)`);
  if (problems.length)
    throw new UsageError('LAB_OPTIONS', `lab options are invalid:\n  - ${problems.join('\n  - ')}`, {
      hint: 'see edgectl lab up --help',
    });
}

function tool(name: string, pkg: string): void {
  try {
    execFileSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' });
  } catch {
    throw new EdgeError('LAB_TOOL_MISSING', `${name} is not installed`, {
      hint: `install ${pkg}: bash lab/kube-apiserver/install-deps.sh`,
    });
  }
}

export function readLabState(site: string): LabState | null {
  const f = join(labDir(site), 'lab.json');
  if (!existsSync(f)) return null;
  return JSON.parse(readFileSync(f, 'utf8')) as LabState;
}

export function writeLabState(state: LabState): void {
  const f = join(state.dir, 'lab.json');
  writeFileSync(`${f}.tmp`, JSON.stringify(state, null, 2));
  execFileSync('mv', [`${f}.tmp`, f]);
}

/** recordEvent appends to the lab's event log (faults, up, down), with the wall-clock time. */
export function recordEvent(state: LabState, event: Record<string, unknown>): void {
  appendFileSync(join(state.dir, 'events.ndjson'), `${JSON.stringify({ t: Date.now(), ...event })}\n`);
}

function robotDir(state: LabState, name: string): string {
  return join(state.dir, 'robots', name);
}

/** A robot's real node: containerd, kubelet, CNI (short: unix socket paths are limited). */
export function robotNodeDir(state: Pick<LabState, 'dir'>, name: string): string {
  return join(state.dir, 'robots', name, 'node');
}

/** Every real node of a lab has its cgroup root under this prefix (`/<prefix><robot>`). */
export function labCgroupPrefix(prefix: string): string {
  return `edgectl-${prefix}`;
}

/** labUp builds the site and starts every robot. It refuses to build over a running lab. */
export async function labUp(o: LabOptions): Promise<LabState> {
  validate(o);
  requireRoot('edgectl lab up');
  for (const [t, p] of [
    ['ip', 'iproute2'],
    ['nft', 'nftables'],
    ['openssl', 'openssl'],
  ] as const)
    tool(t, p);
  if (o.sshd !== false) tool('sshd', 'openssh-server');
  if (o.runtime === 'k3s') {
    tool('k3s', 'k3s (a k3s binary on PATH)');
    throw new EdgeError('LAB_K3S_UNSUPPORTED', 'the k3s lab runtime is not built yet', {
      hint: 'use --runtime apiserver (a real kube-apiserver + etcd); docs/lab.md',
    });
  }
  etcdBinary();
  kubeApiserverBinary();
  // Real nodes need the built bundle: fail now, naming the build, rather than build for minutes
  // behind the user's back or fall back to the lab kubelet without saying so.
  const realNode = o.node === 'real' ? await import('./node/real-node.ts') : null;
  const bundle = realNode ? realNode.realNodeBundle({ build: false }) : null;
  const existing = readLabState(o.site);
  if (existing)
    throw new UsageError('LAB_EXISTS', `lab "${o.site}" is already up (${existing.dir})`, {
      hint: `run edgectl lab down --site ${o.site} first`,
    });
  const prefix = o.prefix ?? defaultPrefix(o.site);
  const subnet = o.subnet ?? '10.77.1';
  const dir = labDir(o.site);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const witnessNames = Array.from({ length: o.witnesses ?? 0 }, (_, i) => `w${i + 1}`);
  const names = [...Array.from({ length: o.robots }, (_, i) => `r${i + 1}`), ...witnessNames];
  const state: LabState = {
    version: 1,
    site: o.site,
    prefix,
    subnet,
    bridge: `${prefix}br`,
    hostAddress: `${subnet}.254`,
    dir,
    runtime: o.runtime,
    node: o.node,
    ...(bundle ? { nodeBundle: bundle.envFile } : {}),
    seed: o.seed,
    createdAt: new Date().toISOString(),
    robots: names.map((name, i) => ({
      name,
      netns: `${prefix}${name}`,
      address: `${subnet}.${i + 1}`,
      veth: `${prefix}v${i}`,
      voter: i < o.voters,
      ...(witnessNames.includes(name) ? { witness: true } : {}),
      agentPid: null,
      sshdPid: null,
      powered: false,
      paused: false,
      wifi: true,
    })),
    net: EMPTY_NET,
  };
  // Written before anything is made, so `lab down` can clean up a half-built lab.
  writeLabState(state);
  try {
    createSite(prefix, subnet, names);
    applyNet(state);
    await createApiServerIdentity(join(dir, 'identity'), {
      sans: state.robots.map((r) => r.address),
      nodes: names.filter((n) => !witnessNames.includes(n)),
      // Real nodes run the site's addon DaemonSets, whose pods act as their service accounts.
      podServiceAccounts: state.node === 'real',
    });
    // etcd peer certificates for the voters only: they replicate the leader's etcd (docs/k3s.md).
    await issueEtcdPeerCerts(
      join(dir, 'identity'),
      state.robots.filter((r) => r.voter && !r.witness),
      (name) => join(robotDir(state, name), 'etcd-peer'),
    );
    // Each robot gets its own keys, derived from a master secret that stays in the lab directory,
    // as bootstrap does it (agent/site-key.ts).
    const master = randomBytes(32);
    writeFileSync(join(dir, 'site.key'), `${master.toString('hex')}\n`, { mode: 0o600 });
    // Witnesses vote: they hold voter keys (pair keys), though they never lead.
    const voters = state.robots.filter((x) => x.voter || x.witness).map((x) => x.name);
    for (const r of state.robots) {
      mkdirSync(robotDir(state, r.name), { recursive: true, mode: 0o700 });
      const keys = renderRobotKeyFile({
        master,
        site: state.site,
        node: r.name,
        voters,
        send: 1,
        accept: [1],
      });
      writeFileSync(join(robotDir(state, r.name), 'site-keys.json'), formatRobotKeyFile(keys), {
        mode: 0o600,
      });
    }
    writeFileSync(
      join(dir, 'site.yaml'),
      renderLabSiteSpec(state, realNode && bundle ? realNode.labAddonImages(bundle) : undefined),
    );
    if (bundle) state.hostMountPid = startHostMountAnchor(state);
    if (o.sshd !== false) prepareSsh(state);
    for (const r of state.robots) {
      mkdirSync(join(robotDir(state, r.name), 'state'), { recursive: true, mode: 0o700 });
      writeFileSync(
        join(robotDir(state, r.name), 'agent.yaml'),
        renderLabAgentConfig(state, r, { ...o, nodeBundle: bundle?.envFile }),
      );
      if (o.sshd !== false) startSshd(state, r);
      if (o.agents !== false) startAgent(state, r);
    }
    writeLabState(state);
    recordEvent(state, {
      kind: 'up',
      robots: names,
      voters: names.slice(0, o.voters),
      ...(witnessNames.length ? { witnesses: witnessNames } : {}),
    });
    return state;
  } catch (e) {
    labDown(o.site, { keepLogs: true });
    throw e;
  }
}

/** renderLabAgentConfig is a robot's agent.yaml: lab profile, mDNS on the bridge, lab runtime. */
export function renderLabAgentConfig(
  state: LabState,
  r: LabRobot,
  o: {
    deadAfterMs?: number;
    lostAfterMs?: number;
    snapshotIntervalMs?: number;
    profile?: string;
    /** With a real node: the bundle file lab/node/build.sh printed. */
    nodeBundle?: string;
    nodeMonitorGrace?: 'lost-after' | 'kubernetes';
    replication?: boolean;
  } = {},
): string {
  const lostAfterMs = o.lostAfterMs ?? 15_000;
  const index = state.robots.indexOf(r);
  const witnesses = state.robots.filter((x) => x.witness).map((x) => x.name);
  const config = {
    site: { id: state.site, name: `lab ${state.site}` },
    node: { id: r.name, serverCapable: r.voter, labels: { 'robot.edgectl.io/lab': state.site } },
    voters: state.robots.filter((x) => x.voter).map((x) => x.name),
    ...(witnesses.length ? { witnesses } : {}),
    workers: state.robots.filter((x) => !x.voter && !x.witness).map((x) => x.name),
    profile: o.profile ?? 'lab',
    network: { interfaces: ['eth0'], bindAddress: r.address, mdns: true, seeds: [] },
    stateDir: join(robotDir(state, r.name), 'state'),
    siteKeyFile: join(robotDir(state, r.name), 'site-keys.json'),
    status: { listen: `${r.address}:7947` },
    controlPlane: r.witness
      ? { runtime: 'none' }
      : {
          runtime: 'lab',
          identityDir: join(state.dir, 'identity'),
          address: r.address,
          kubeletRenewMs: 2000,
          siteSpecFile: join(state.dir, 'site.yaml'),
          ...(state.node === 'real' && o.nodeBundle
            ? {
                node: {
                  kind: 'real',
                  netns: r.netns,
                  bundle: o.nodeBundle,
                  podCidr: `10.244.${index + 1}.0/24`,
                  dir: robotNodeDir(state, r.name),
                  cgroupPrefix: labCgroupPrefix(state.prefix),
                  hostMountPid: state.hostMountPid,
                  // A silent node turns NotReady when the agents call it lost, so the out-of-service
                  // taint they add moves its pods at once.
                  ...(o.nodeMonitorGrace === 'kubernetes'
                    ? {}
                    : { nodeMonitorGraceSeconds: Math.ceil(lostAfterMs / 1000) }),
                },
              }
            : {}),
          ...(r.voter && o.replication !== false
            ? { etcdPeerDir: join(robotDir(state, r.name), 'etcd-peer') }
            : {}),
        },
    membership: {
      suspectAfterMs: 1500,
      deadAfterMs: o.deadAfterMs ?? 5_000,
      lostAfterMs,
    },
    snapshots: { intervalMs: o.snapshotIntervalMs ?? 5_000 },
    log: { level: 'info' },
  };
  return `# Written by edgectl lab up for ${r.name}; see docs/lab.md\n${yaml().stringify(config)}`;
}

/** The agent unit's Environment= (templates/edgectl-agent.service), which lab agents run with too. */
const UNIT_ENVIRONMENT = {
  MALLOC_ARENA_MAX: '1',
  MALLOC_MMAP_THRESHOLD_: '32768',
  MALLOC_TRIM_THRESHOLD_: '65536',
};

/**
 * renderLabSiteSpec is the lab site's spec: its namespace with the default isolation, and one
 * macvlan network on the robots' "Wi-Fi" with a Whereabouts pool of its own. Robots use ipvlan L2;
 * this machine's kernel has no ipvlan (docs/real-node.md), and Whereabouts behaves the same under
 * either. With real nodes, the addons run the images the nodes import (labAddonImages), as robots
 * run the pinned ones from their air-gap bundle.
 */

export function renderLabSiteSpec(
  state: Pick<LabState, 'site' | 'subnet'>,
  addonImages?: AddonImages,
): string {
  const third = state.subnet.split('.')[2];
  const spec = {
    id: state.site,
    name: `lab ${state.site}`,
    networks: [
      {
        name: 'fleet',
        type: 'macvlan',
        master: 'eth0',
        // A lab robot has one link, its "Wi-Fi", so the site network shares it (docs/site.md).
        sharesManagementLan: true,
        range: `10.78.${third}.0/24`,
        rangeStart: `10.78.${third}.20`,
        rangeEnd: `10.78.${third}.250`,
        gateway: `10.78.${third}.1`,
      },
    ],
    ...(addonImages ? { addons: { images: addonImages } } : {}),
  };
  return `# Written by edgectl lab up: the site the leader applies (docs/site.md)\n${yaml().stringify(spec)}`;
}

function prepareSsh(state: LabState): void {
  const ssh = join(state.dir, 'ssh');
  mkdirSync(ssh, { recursive: true, mode: 0o700 });
  execFileSync('ssh-keygen', [
    '-q',
    '-t',
    'ed25519',
    '-N',
    '',
    '-C',
    `edgectl-lab-${state.site}`,
    '-f',
    join(ssh, 'id_ed25519'),
  ]);
  writeFileSync(join(ssh, 'authorized_keys'), readFileSync(join(ssh, 'id_ed25519.pub')), { mode: 0o600 });
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
}

function startSshd(state: LabState, r: LabRobot): void {
  const d = robotDir(state, r.name);
  mkdirSync(d, { recursive: true });
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(d, 'ssh_host_ed25519_key')]);
  writeFileSync(
    join(d, 'sshd_config'),
    [
      `ListenAddress ${r.address}`,
      'Port 22',
      `HostKey ${join(d, 'ssh_host_ed25519_key')}`,
      `PidFile ${join(d, 'sshd.pid')}`,
      `AuthorizedKeysFile .ssh/authorized_keys ${join(state.dir, 'ssh', 'authorized_keys')}`,
      'PermitRootLogin prohibit-password',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'StrictModes no',
      'Subsystem sftp internal-sftp',
      '',
    ].join('\n'),
  );
  const log = openSync(join(d, 'sshd.log'), 'a');
  const child = spawn(
    'ip',
    ['netns', 'exec', r.netns, '/usr/sbin/sshd', '-D', '-e', '-f', join(d, 'sshd_config')],
    {
      stdio: ['ignore', log, log],
      detached: true,
    },
  );
  closeSync(log);
  child.unref();
  r.sshdPid = child.pid ?? null;
}

/**
 * startHostMountAnchor leaves one tiny process in the host's mount namespace for the lab's life
 * (`tail -f` of a file in the lab directory, so `lab down` and its leak check find it by name).
 */
function startHostMountAnchor(state: LabState): number {
  const f = join(state.dir, 'host-mount-anchor');
  writeFileSync(f, '');
  const child = spawn('tail', ['-f', f], { stdio: 'ignore', detached: true });
  child.unref();
  if (!child.pid)
    throw new EdgeError('LAB_ANCHOR_FAILED', 'could not start the host mount namespace anchor (tail)', {
      hint: 'check that coreutils is installed',
    });
  return child.pid;
}

function startAgent(state: LabState, r: LabRobot): void {
  const d = robotDir(state, r.name);
  const log = openSync(join(d, 'agent.log'), 'a');
  const child = spawn(
    'ip',
    ['netns', 'exec', r.netns, process.execPath, LAB_AGENT, '--config', join(d, 'agent.yaml')],
    { stdio: ['ignore', log, log], detached: true, env: { ...process.env, ...UNIT_ENVIRONMENT } },
  );
  closeSync(log);
  child.unref();
  r.agentPid = child.pid ?? null;
  r.powered = true;
  r.paused = false;
}

/**
 * labInventory is the inventory of a lab whose robots are bare (`agents: false`): `edgectl
 * bootstrap site` installs them over SSH, each into its own tree (the robots share this machine's
 * filesystem), with the lab runtime and no systemd, which does not run in a namespace.
 */
export function labInventory(state: LabState): Record<string, unknown> {
  const spec = yaml().parse(readFileSync(join(state.dir, 'site.yaml'), 'utf8')) as Record<string, unknown>;
  return {
    site: spec,
    robots: state.robots.map((r) => ({
      name: r.name,
      address: r.address,
      ssh: { user: 'root', keyFile: join(state.dir, 'ssh', 'id_ed25519') },
      sudo: 'none',
      wifiInterface: 'eth0',
      serverCapable: r.voter,
      labels: { 'robot.edgectl.io/lab': state.site },
    })),
    voters: state.robots.filter((r) => r.voter).map((r) => r.name),
    ...(state.robots.some((r) => r.witness)
      ? { witnesses: state.robots.filter((r) => r.witness).map((r) => r.name) }
      : {}),
    // The lab was made with these voters; `lab up` already refused or accepted them.
    allowNoFailover: true,
    profile: 'lab',
    discovery: { mdns: true, seeds: 'none' },
    controlPlane: { runtime: 'lab', identityDir: join(state.dir, 'identity') },
    install: { root: join(state.dir, 'robots', '{robot}', 'root'), service: 'none' },
    // The lab's agent (npm run build:lab-agent): the robot's, with the lab runtime registered.
    bundle: { agent: LAB_AGENT_BUNDLE },
  };
}

/**
 * startInstalledAgent starts the agent `edgectl bootstrap site` installed on a lab robot, the way
 * its systemd unit would (systemd does not run inside a network namespace).
 */
export function startInstalledAgent(state: LabState, name: string): void {
  const r = robot(state, name);
  const root = join(state.dir, 'robots', name, 'root');
  const log = openSync(join(state.dir, 'robots', name, 'agent.log'), 'a');
  const child = spawn(
    'ip',
    [
      'netns',
      'exec',
      r.netns,
      join(root, 'opt/edgectl/node/bin/node'),
      '--max-semi-space-size=1',
      '--max-opt=2',
      '--expose-gc',
      join(root, 'opt/edgectl/edgectl-agent.mjs'),
      '--config',
      join(root, 'etc/edgectl/agent.yaml'),
    ],
    { stdio: ['ignore', log, log], detached: true, env: { ...process.env, ...UNIT_ENVIRONMENT } },
  );
  closeSync(log);
  child.unref();
  r.agentPid = child.pid ?? null;
  r.powered = true;
  r.paused = false;
  r.installed = true;
  writeLabState(state);
}

function alive(pid: number | null): boolean {
  if (pid === null) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function signalGroup(pid: number | null, sig: NodeJS.Signals): void {
  if (pid === null) return;
  try {
    process.kill(-pid, sig);
  } catch {
    // already gone
  }
}

async function waitGone(pid: number | null, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (pid !== null && Date.now() < end) {
    try {
      process.kill(-pid, 0);
    } catch {
      return;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** How the lab signals and waits for a robot's process group (real by default; a twin in tests). */
export interface ProcessControl {
  signal(pid: number | null, sig: NodeJS.Signals): void;
  gone(pid: number | null): Promise<void>;
}

const PROCESSES: ProcessControl = { signal: signalGroup, gone: (pid) => waitGone(pid) };

/**
 * powerOff is one power loss for every robot in `robots`: each process group gets SIGKILL in one
 * step, before any is waited for, so no survivor can hold an election in between. Only then does
 * it wait for the kernel to reap them.
 */
export async function powerOff<R extends Pick<LabRobot, 'agentPid' | 'powered' | 'paused'>>(
  robots: readonly R[],
  ctl: ProcessControl = PROCESSES,
  /** The robot's real node goes in the same step (its daemons are not in the agent's group). */
  nodeOff: (r: R) => void = () => undefined,
): Promise<void> {
  for (const r of robots) {
    ctl.signal(r.agentPid, 'SIGKILL');
    nodeOff(r);
    // Off from this instant (observations must not wait for the kernel to reap the group).
    r.powered = false;
    r.paused = false;
  }
  await Promise.all(robots.map((r) => ctl.gone(r.agentPid)));
}

function applyNet(state: LabState): void {
  const veth = Object.fromEntries(state.robots.map((r) => [r.name, r.veth]));
  execFileSync('nft', ['-f', '-'], { input: renderNftRuleset(nftTableName(state.prefix), state.net, veth) });
}

function setLink(state: LabState, r: LabRobot, up: boolean): void {
  execFileSync('ip', ['-n', r.netns, 'link', 'set', 'eth0', up ? 'up' : 'down']);
  if (up) {
    // Link down drops the routes through it; put back the multicast (mDNS) and default routes.
    for (const route of [
      ['224.0.0.0/4', 'dev', 'eth0'],
      ['default', 'via', state.hostAddress],
    ])
      execFileSync('ip', ['-n', r.netns, 'route', 'replace', ...route]);
  }
  r.wifi = up;
}

function robot(state: LabState, name: string): LabRobot {
  const r = state.robots.find((x) => x.name === name);
  if (!r)
    throw new UsageError('NO_SUCH_ROBOT', `lab "${state.site}" has no robot "${name}"`, {
      hint: `robots: ${state.robots.map((x) => x.name).join(', ')}`,
    });
  return r;
}

/** resolveTargets turns `leader` and `all` into robot names, from the latest observation. */
function resolve(state: LabState, t: string, leader: string | null): string[] {
  if (t === 'all') return state.robots.map((r) => r.name);
  if (t === 'leader') {
    if (!leader)
      throw new EdgeError('NO_LEADER', 'the fault names the leader, but no robot leads now', {
        hint: 'wait for an election (edgectl lab status), or name a robot',
      });
    return [leader];
  }
  return [robot(state, t).name];
}

/**
 * applyLabFault injects one fault of the shared vocabulary (lab/faults.ts) into the lab, records
 * it in the event log and returns what it did. `leader` is resolved by asking the agents.
 */
export async function applyLabFault(
  state: LabState,
  fault: Fault,
  opts: { leader?: string | null } = {},
): Promise<{ fault: string; robots: string[] }> {
  // Returns the fault as applied (targets resolved) and the robots it took away from the site.
  const needsLeader = JSON.stringify(fault).includes('"leader"');
  const leader = needsLeader ? (opts.leader ?? (await observeLab(state)).leader) : null;
  // The fault is logged when it is done, stamped with when it began: a kill takes as long as the
  // kernel takes to reap the robot, and the site starts reacting at the first signal.
  const startedAt = Date.now();
  const one = (t: string) => resolve(state, t, leader);
  // `others` in a partition is every robot no other group names.
  const partitionGroups = (groups: readonly (readonly string[])[]): string[][] => {
    const named = groups.map((g) => g.filter((t) => t !== 'others').flatMap(one));
    const rest = state.robots.map((r) => r.name).filter((n) => !named.flat().includes(n));
    // As in the simulator, robots no group names form one more group.
    if (groups.some((g) => g.includes('others')))
      return groups.map((g, i) => (g.includes('others') ? [...named[i]!, ...rest] : named[i]!));
    return rest.length ? [...named, rest] : named;
  };
  let robots: string[] = [];
  /** The fault with its targets resolved, as recorded. */
  let applied: Fault = fault;
  switch (fault.kind) {
    case 'kill':
      robots = one(fault.node);
      await powerOff(
        robots.map((n) => robot(state, n)),
        PROCESSES,
        state.node === 'real' ? (r) => powerOffRealNode(robotNodeDir(state, r.name)) : undefined,
      );
      break;
    case 'restart':
      robots = one(fault.node);
      for (const n of robots) {
        const r = robot(state, n);
        if (r.powered && alive(r.agentPid)) continue;
        if (r.installed) startInstalledAgent(state, r.name);
        else startAgent(state, r);
      }
      break;
    case 'pause':
    case 'resume':
      robots = one(fault.node);
      for (const n of robots) {
        const r = robot(state, n);
        signalGroup(r.agentPid, fault.kind === 'pause' ? 'SIGSTOP' : 'SIGCONT');
        r.paused = fault.kind === 'pause';
      }
      break;
    case 'isolate':
      robots = one(fault.node);
      for (const n of robots) setLink(state, robot(state, n), false);
      break;
    case 'heal':
      robots = state.robots.map((r) => r.name);
      for (const r of state.robots) if (!r.wifi) setLink(state, r, true);
      state.net = EMPTY_NET;
      applyNet(state);
      break;
    case 'drop':
    case 'cut':
    case 'partition': {
      if (fault.kind === 'drop' && fault.rate > 0 && lossPercent(fault.rate) === 0)
        throw new UsageError(
          'LAB_LOSS_TOO_SMALL',
          `a loss of ${fault.rate * 100}% is below the lab's 1% step`,
          {
            hint: 'the lab applies loss in whole percents: use 1% or more, or edgectl sim for finer rates',
          },
        );
      const named = (t: string) => (t === 'all' ? 'all' : one(t)[0]!);
      const concrete: Fault =
        fault.kind === 'drop'
          ? { ...fault, from: named(fault.from), to: named(fault.to) }
          : fault.kind === 'cut'
            ? { ...fault, a: named(fault.a), b: named(fault.b) }
            : { ...fault, groups: partitionGroups(fault.groups) };
      state.net = applyNetFault(state.net, concrete);
      applyNet(state);
      applied = concrete;
      // A partition affects the robots cut off from a majority; a drop or cut, the robots it names.
      robots =
        concrete.kind === 'partition'
          ? concrete.groups.filter((g) => g.length <= state.robots.length / 2).flat()
          : [...new Set(JSON.stringify(concrete).match(/r\d+/g) ?? [])];
      break;
    }
    case 'burst': {
      state.net = { ...state.net, blackout: true };
      applyNet(state);
      recordEvent(state, { kind: 'fault', fault: formatFault(fault), robots: [] });
      await new Promise((r) => setTimeout(r, fault.durationMs));
      state.net = { ...state.net, blackout: false };
      applyNet(state);
      writeLabState(state);
      return { fault: formatFault(fault), robots: [] };
    }
    case 'transfer':
      throw new UsageError('LAB_FAULT_UNSUPPORTED', 'transfer is not a lab fault', {
        hint: 'stop the leader cleanly instead (its agent hands over on SIGTERM), or use edgectl sim',
      });
  }
  writeLabState(state);
  if (
    fault.kind === 'kill' ||
    fault.kind === 'restart' ||
    fault.kind === 'pause' ||
    fault.kind === 'resume' ||
    fault.kind === 'isolate'
  )
    applied = { ...fault, node: robots.join(',') };
  recordEvent(state, { t: startedAt, kind: 'fault', fault: formatFault(applied), robots });
  return { fault: formatFault(applied), robots };
}

/** wifiOn brings one robot's link back (the lab's `wifi-on <robot>`), leaving other faults. */
export function wifiOn(state: LabState, name: string): void {
  setLink(state, robot(state, name), true);
  writeLabState(state);
  recordEvent(state, { kind: 'fault', fault: `wifi-on:${name}`, robots: [name] });
}

export interface RobotObservation {
  readonly name: string;
  readonly address: string;
  /** A witness has no Node and serves nothing: readiness does not count it. */
  readonly witness?: boolean;
  readonly powered: boolean;
  readonly paused: boolean;
  readonly wifi: boolean;
  readonly status: AgentStatus | null;
}

export interface NodeObservation {
  readonly name: string;
  readonly ready: boolean;
  readonly leaseAgeMs: number | null;
}

export interface LabObservation {
  /** Wall clock (ms since the epoch) of the observation. */
  readonly t: number;
  readonly robots: readonly RobotObservation[];
  /** The robot that leads with the highest term, by its own word. */
  readonly leader: string | null;
  readonly term: number;
  /** Nodes on the leader's serving API server (null when none serves). */
  readonly nodes: readonly NodeObservation[] | null;
  /** Real nodes: the site namespace's pods and the Whereabouts allocations, from the leader's server. */
  readonly workload?: WorkloadObservation | null;
}

/** observeLab asks every agent for /status and the leader's API server for its Nodes. */
/**
 * getAgentStatus reads a lab robot's /status with node:http: `fetch` would load undici and its
 * WebAssembly parser first, a third of a second that made every `lab status` slow.
 */
function getAgentStatus(address: string, timeoutMs: number): Promise<AgentStatus> {
  return new Promise((resolve, reject) => {
    const req = httpGet({ host: address, port: 7947, path: '/status', timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        try {
          if (res.statusCode !== 200) throw new Error(`HTTP ${res.statusCode}`);
          resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')) as AgentStatus);
        } catch (e) {
          reject(e as Error);
        }
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer in ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}

export async function observeLab(state: LabState, timeoutMs = 800): Promise<LabObservation> {
  const t = Date.now();
  const robots = await Promise.all(
    state.robots.map(async (r) => ({
      name: r.name,
      address: r.address,
      ...(r.witness ? { witness: true } : {}),
      powered: r.powered,
      paused: r.paused,
      wifi: r.wifi,
      status:
        r.powered && !r.paused && r.wifi
          ? await getAgentStatus(r.address, timeoutMs).catch(() => null)
          : null,
    })),
  );
  const leaders = robots
    .filter((r) => r.status?.role === 'leader')
    .sort((a, b) => b.status!.term - a.status!.term);
  const lead = leaders[0] ?? null;
  let nodes: NodeObservation[] | null = null;
  let workload: WorkloadObservation | null = null;
  if (lead?.status?.controlPlane.server?.state === 'serving') {
    [nodes, workload] = await Promise.all([
      listNodes(state, lead.address, timeoutMs).catch(() => null),
      state.node === 'real'
        ? observeWorkload(adminApi(state, lead.address, timeoutMs), state.site).catch(() => null)
        : null,
    ]);
  }
  return {
    t,
    robots,
    leader: lead?.name ?? null,
    term: Math.max(0, ...robots.map((r) => r.status?.term ?? 0)),
    nodes,
    ...(state.node === 'real' ? { workload } : {}),
  };
}

/** A Node whose Lease is older than this is not Ready (the lab kubelet renews every 2 s). */
export const NODE_LEASE_STALE_MS = 8_000;

/** adminApi talks to a robot's API server as the site's admin. */
export function adminApi(state: LabState, address: string, timeoutMs = 800): KubeHttp {
  const identity = loadApiServerIdentity(join(state.dir, 'identity'));
  return new KubeHttp({
    server: `https://${address}:${LAB_API_PORT}`,
    caPem: readFileSync(identity.caCert, 'utf8'),
    token: identity.adminToken,
    timeoutMs,
  });
}

/** listNodes reads Nodes and their Leases from a robot's API server, as the site's admin. */
export async function listNodes(
  state: LabState,
  address: string,
  timeoutMs = 800,
): Promise<NodeObservation[]> {
  const identity = loadApiServerIdentity(join(state.dir, 'identity'));
  const api = new KubeHttp({
    server: `https://${address}:${LAB_API_PORT}`,
    caPem: readFileSync(identity.caCert, 'utf8'),
    token: identity.adminToken,
    timeoutMs,
  });
  const [nodes, leases] = (await Promise.all([
    api.ok('GET', '/api/v1/nodes'),
    api.ok('GET', '/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases'),
  ])) as [
    { items: { metadata: { name: string }; status?: { conditions?: { type: string; status: string }[] } }[] },
    { items: { metadata: { name: string }; spec?: { renewTime?: string } }[] },
  ];
  const now = Date.now();
  return nodes.items.map((n) => {
    const lease = leases.items.find((l) => l.metadata.name === n.metadata.name);
    const renew = lease?.spec?.renewTime ? Date.parse(lease.spec.renewTime) : NaN;
    const leaseAgeMs = Number.isFinite(renew) ? Math.max(0, now - renew) : null;
    // No node-lifecycle controller runs in the lab, so a Node restored from a snapshot still says
    // Ready: like that controller, trust Ready only while the kubelet's Lease is fresh.
    return {
      name: n.metadata.name,
      ready:
        (n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false) &&
        leaseAgeMs !== null &&
        leaseAgeMs < NODE_LEASE_STALE_MS,
      leaseAgeMs,
    };
  });
}

/** siteOnServer reads what the site spec put on a robot's API server: its namespace and NADs. */
export async function siteOnServer(
  state: LabState,
  address: string,
): Promise<{ namespace: boolean; epoch: string | null; networks: string[] }> {
  const identity = loadApiServerIdentity(join(state.dir, 'identity'));
  const api = new KubeHttp({
    server: `https://${address}:${LAB_API_PORT}`,
    caPem: readFileSync(identity.caCert, 'utf8'),
    token: identity.adminToken,
  });
  const ns = await api.call('GET', `/api/v1/namespaces/site-${state.site}`);
  const nads = await api.call(
    'GET',
    `/apis/k8s.cni.cncf.io/v1/namespaces/site-${state.site}/network-attachment-definitions`,
  );
  const labels = (ns.body as { metadata?: { labels?: Record<string, string> } } | null)?.metadata?.labels;
  return {
    namespace: ns.status === 200,
    epoch: labels?.['edgectl.io/epoch'] ?? null,
    networks:
      nads.status === 200
        ? (nads.body as { items: { metadata: { name: string } }[] }).items.map((i) => i.metadata.name)
        : [],
  };
}

/**
 * labDown stops everything the lab started and removes its namespaces, links and nft table. It
 * works from the state file, and from the prefix alone when there is none (a crashed `up`).
 */
export function labDown(
  site: string,
  opts: { prefix?: string; keepLogs?: boolean } = {},
): {
  removed: { netns: string[]; links: string[] };
} {
  requireRoot('edgectl lab down');
  const state = readLabState(site);
  const prefix = state?.prefix ?? opts.prefix ?? defaultPrefix(site);
  for (const r of state?.robots ?? []) {
    signalGroup(r.agentPid, 'SIGCONT');
    signalGroup(r.agentPid, 'SIGKILL');
    signalGroup(r.sshdPid, 'SIGKILL');
    if (state) powerOffRealNode(robotNodeDir(state, r.name));
  }
  if (state?.hostMountPid) signalGroup(state.hostMountPid, 'SIGKILL');
  // The real nodes' cgroups (pods first killed above, then whatever is left in them).
  for (const h of cgroupHierarchies())
    for (const e of readdirSync(h)) if (e.startsWith(labCgroupPrefix(prefix))) removeCgroupsSync(`/${e}`);
  const before = listOwned(prefix);
  destroySite(prefix);
  try {
    execFileSync('nft', ['delete', 'table', 'bridge', nftTableName(prefix)], { stdio: 'ignore' });
  } catch {
    // no table: nothing to remove
  }
  const dir = labDir(site);
  if (existsSync(dir)) {
    if (opts.keepLogs) rmSync(join(dir, 'lab.json'), { force: true });
    else rmSync(dir, { recursive: true, force: true });
  }
  return { removed: before };
}

/** leftovers lists what a lab with this prefix still has: the leak check of `lab down`. */
export function leftovers(
  site: string,
  prefix = defaultPrefix(site),
): { netns: string[]; links: string[]; nftTables: string[]; processes: number[]; cgroups: string[] } {
  const owned = listOwned(prefix);
  const table = nftTableName(prefix);
  const nftTables = execFileSync('nft', ['list', 'tables'], { encoding: 'utf8' })
    .split('\n')
    .filter((l) => l.trim().endsWith(` ${table}`));
  // Every process the lab starts names the lab directory on its command line (config, data dir).
  const marker = labDir(site);
  const processes: number[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (cmd.includes(`${marker}/`) && Number(pid) !== process.pid) processes.push(Number(pid));
    } catch {
      // exited meanwhile
    }
  }
  const cgroups = cgroupHierarchies().flatMap((h) =>
    readdirSync(h)
      .filter((e) => e.startsWith(labCgroupPrefix(prefix)))
      .map((e) => join(h, e)),
  );
  return { ...owned, nftTables, processes, cgroups };
}
