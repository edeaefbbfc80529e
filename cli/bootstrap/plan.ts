/**
 * The bootstrap plans, as data (agent/plan/plan.ts): what `edgectl bootstrap site` does to each
 * robot, and what `edgectl reset robot` / `edgectl uninstall site` do to undo it. Pure: the
 * inventory, the bundle's checksums, the site identity and the unit template are inputs; no I/O,
 * no clock. Golden-tested (plan.test.ts, testdata/). The executor (apply.ts) runs them.
 *
 * A bootstrap plan, per robot, in order (docs/bootstrap.md, "The plan"):
 *   preflight   read-only checks; each failure says what to fix
 *   dirs        edgectl's directories, with their modes
 *   bundle      the offline bundle: the agent (its chunks, then its entry file), its Node runtime
 *               (with checksums)
 *   config      /etc/edgectl/agent.yaml, rendered from the inventory
 *   secret      the robot's own keys, derived from the site master secret (0600 root, shown in plans
 *               as a digest only): a voter's pair keys, or a worker's one key
 *   runtime     the control-plane runtime's own steps (RuntimeInstaller: lab, k3s)
 *   service     the systemd unit; daemon-reload and restart only when something changed; enable
 *   prune       the agent chunks no longer imported (older builds'), once the agent runs the new ones
 */
import {
  etcdMemberPlacement,
  identityPlacement,
  identityPlan,
  type SiteIdentityMaterial,
} from './identity.ts';
import { NODE_PASSWORD_FILE as K3S_NODE_PASSWORD_FILE } from '../../agent/k3s/paths.ts';
import { etcdInstallPlan, installPlan, uninstallPlan, type K3sBinarySource } from '../../agent/k3s/plans.ts';
import { ETCD_BIN, ETCDCTL_BIN } from '../../agent/k3s/paths.ts';
import { REVISION_BUMP_BIN } from '../../agent/k3s/revision-bump.ts';
import { K3sSettingsSchema, type K3sNodeSpec } from '../../agent/k3s/settings.ts';
import { formatRobotKeyFile, renderRobotKeyFile } from '../../agent/site-key.ts';
import { createHash } from 'node:crypto';
import { stringify } from 'yaml';
import { InternalError } from '../../agent/errors.ts';
import type { PlanStep } from '../../agent/plan/plan.ts';
import {
  installPath,
  renderAgentConfig,
  robotIp,
  SITE_SPEC_PATH,
  TEMPLATES_DIR,
  type Inventory,
  type Robot,
} from './inventory.ts';

export type Phase = 'preflight' | 'dirs' | 'bundle' | 'config' | 'secret' | 'runtime' | 'service' | 'remove';

/**
 * BootstrapStep is a plan step with what the bootstrap executor needs on top: the phase (for
 * progress), whether it only reads (preflight), and which earlier steps it depends on having
 * changed something (a restart runs only when a file it reads changed, in this run or in an
 * interrupted earlier one).
 */
export type BootstrapStep = PlanStep & {
  readonly phase: Phase;
  /** A read-only check: it never counts as a change. */
  readonly check?: boolean;
  /** Run only when one of these steps changed something; otherwise the step is not needed. */
  readonly onlyIfChanged?: readonly string[];
  /** What to do when the step fails, for the failure report. */
  readonly hint?: string;
};

export interface RobotPlan {
  /** The robot's name (Plan.target). */
  readonly target: string;
  /** SSH address, for the recovery commands of a failure report. */
  readonly address: string;
  /** The IPv4 address a host-name `address` resolved to when the plan was made. */
  readonly ip?: string;
  readonly steps: readonly BootstrapStep[];
}

export type PlanKind = 'bootstrap' | 'reset' | 'uninstall' | 'keys';

export interface BootstrapPlan {
  readonly kind: PlanKind;
  readonly site: string;
  readonly robots: readonly RobotPlan[];
}

/** A bundle file: where it is on the operator's machine, its checksum and size. */
export interface BundleFile {
  readonly localPath: string;
  readonly sha256: string;
  readonly bytes: number;
}

/**
 * The agent: its entry file and the chunks it imports (npm run build:agent splits the code only
 * `import()` reaches, such as the lab and k3s runtimes, into `edgectl-agent-<hash>.mjs` files beside
 * it; bundle.ts agentChunks). Robots get the chunks beside the entry, in /opt/edgectl.
 */
export interface AgentBundle extends BundleFile {
  readonly chunks: readonly BundleFile[];
}

export interface BundleInfo {
  readonly agent: AgentBundle;
  /** The Node runtime, and the `uname -m` it runs on (read from its ELF header). */
  readonly node: BundleFile & { readonly arch: string };
  readonly k3s?: BundleFile;
  readonly airgapImages?: BundleFile;
  /** The etcd the voters run as k3s's datastore, with etcdctl and the revision-bump tool. */
  readonly etcd?: {
    readonly etcd: BundleFile;
    readonly etcdctl: BundleFile;
    readonly revisionBump: BundleFile;
  };
}

/** Which key generations robots hold (site-dir.ts keyUse): what their key files are rendered with. */
export interface SiteKeyUse {
  readonly send: number;
  readonly accept: readonly number[];
  /** Removed robots the voters refuse. */
  readonly refused: readonly string[];
}

/** The site's secrets, from the local site directory (site-dir.ts). */
export interface SiteIdentity {
  /**
   * The site master secret, 32 random bytes, hex. It never leaves the bootstrap machine: each
   * robot gets only the keys derived from it that it needs (agent/site-key.ts).
   */
  readonly siteKeyHex: string;
  /** The key generations in use (keys.json); default generation 1, nothing refused. */
  readonly keys?: SiteKeyUse;
  /**
   * The k3s site identity (cli/bootstrap/identity.ts): custom CAs, the server and agent tokens, the
   * node-password key. Made once in the site directory for the k3s runtime; absent in a dry run
   * before the first apply.
   */
  readonly k3s?: SiteIdentityMaterial;
}

export interface RuntimeContext {
  readonly inventory: Inventory;
  readonly identity: SiteIdentity;
  readonly bundle: BundleInfo;
}

/**
 * RuntimeInstaller: the control-plane runtime's own steps for one robot (installed after the
 * agent's config, before the service starts), and what reset/uninstall removes of them.
 */
export interface RuntimeInstaller {
  install(robot: Robot, ctx: RuntimeContext): BootstrapStep[];
  uninstall(robot: Robot, ctx: Omit<RuntimeContext, 'identity'>): BootstrapStep[];
}

/** The lab runtime needs nothing beyond `controlPlane.runtime: lab` in the agent's config. */
export const labRuntimeInstaller: RuntimeInstaller = {
  install: () => [],
  uninstall: () => [],
};

/** Where the k3s air-gap images go: k3s imports every archive in this directory at start. */
export const AIRGAP_IMAGES_DIR = '/var/lib/rancher/k3s/agent/images';
export const K3S_BINARY_PATH = '/usr/local/bin/k3s';

/**
 * bundleOnlyK3sInstaller puts the k3s binary and air-gap images of the bundle in place, and
 * nothing else. It stands in until the k3s installer (agent/k3s/plans.ts installPlan, with the
 * site's k3s identity) is wired in: pass that one as `runtimes.k3s`.
 */
export const bundleOnlyK3sInstaller: RuntimeInstaller = {
  install: (_robot, { bundle }) => {
    const steps: BootstrapStep[] = [];
    if (bundle.k3s)
      steps.push({
        kind: 'upload',
        id: 'k3s.binary',
        phase: 'runtime',
        description: `upload the k3s binary to ${K3S_BINARY_PATH}`,
        localPath: bundle.k3s.localPath,
        path: K3S_BINARY_PATH,
        mode: 0o755,
        sha256: bundle.k3s.sha256,
      });
    if (bundle.airgapImages) {
      steps.push(installDir('k3s.images-dir', [AIRGAP_IMAGES_DIR], '0755', 'runtime'));
      steps.push({
        kind: 'upload',
        id: 'k3s.airgap-images',
        phase: 'runtime',
        description: 'upload the k3s air-gap images',
        localPath: bundle.airgapImages.localPath,
        path: `${AIRGAP_IMAGES_DIR}/${basename(bundle.airgapImages.localPath)}`,
        mode: 0o644,
        sha256: bundle.airgapImages.sha256,
      });
    }
    return steps;
  },
  uninstall: (_robot, { bundle }) => {
    const steps: BootstrapStep[] = [];
    if (bundle.airgapImages)
      steps.push(
        remove(
          'k3s.airgap-images',
          `${AIRGAP_IMAGES_DIR}/${basename(bundle.airgapImages.localPath)}`,
          'the k3s air-gap images',
        ),
      );
    if (bundle.k3s) steps.push(remove('k3s.binary', K3S_BINARY_PATH, 'the k3s binary'));
    return steps;
  },
};

/**
 * k3sInstaller: the robot's share of the site identity (server-capable robots get the CAs and the
 * server token; workers only the agent token: identityPlacement), the k3s binary (uploaded from
 * the bundle, or already on the robot), the units, the demotion reap script, the fence, and the
 * air-gap images. The k3s plans come from agent/k3s/ (golden-tested there); this only frames them.
 */
export function k3sInstaller(reapScript: string): RuntimeInstaller {
  return {
    install: (robot, ctx) => {
      const spec = k3sNodeSpec(ctx.inventory, robot);
      const binary: K3sBinarySource | null = ctx.bundle.k3s
        ? { kind: 'upload', localPath: ctx.bundle.k3s.localPath, sha256: ctx.bundle.k3s.sha256 }
        : null;
      const steps: BootstrapStep[] = [];
      if (ctx.identity.k3s) {
        const identity = identityPlan(
          robot.serverCapable ? 'server' : 'worker',
          robot.name,
          ctx.identity.k3s,
        );
        // k3s makes these directories itself on first start; the identity must be there before.
        const dirs = [
          ...new Set(
            identity.flatMap((st) => ('path' in st ? [st.path.slice(0, st.path.lastIndexOf('/'))] : [])),
          ),
        ].sort();
        steps.push(
          installDir('k3s.identity-dirs', dirs, '0700', 'secret'),
          ...identity.map((st): BootstrapStep => ({
            ...st,
            id: `k3s.${st.id.replace(/[^a-z0-9.-]+/gi, '-')}`,
            phase: 'secret',
          })),
        );
      }
      // Server-capable robots run etcd as k3s's datastore: from the bundle, or already on the robot.
      const etcd = robot.serverCapable ? ctx.bundle.etcd : undefined;
      if (robot.serverCapable && !etcd)
        steps.push({
          kind: 'run',
          id: 'k3s.etcd-present',
          phase: 'preflight',
          check: true,
          description: `etcd, etcdctl and the revision-bump tool are already on the robot (the inventory bundles none)`,
          argv: [
            'sh',
            '-c',
            `for b in ${ETCD_BIN} ${ETCDCTL_BIN} ${REVISION_BUMP_BIN}; do test -x "$b" || { echo "no $b on the robot: set bundle.etcd, bundle.etcdctl and bundle.etcdRevisionBump in the inventory" >&2; exit 1; }; done`,
          ],
        });
      if (binary)
        steps.push(
          ...installPlan(spec, { binary, reapScript, ...(etcd ? { etcd } : {}) }).steps.map(
            (st): BootstrapStep => ({
              ...st,
              id: `k3s.${st.id}`,
              phase: 'runtime',
              ...asRoot(st),
            }),
          ),
        );
      else
        steps.push({
          kind: 'run',
          id: 'k3s.binary-present',
          phase: 'preflight',
          check: true,
          description: 'k3s is already on the robot (the inventory bundles none)',
          argv: [
            'sh',
            '-c',
            'command -v k3s >/dev/null || { echo "no k3s on the robot: set bundle.k3s in the inventory" >&2; exit 1; }',
          ],
        });
      // A voter runs edgectl's etcd as k3s's datastore whoever installed k3s.
      if (!binary)
        steps.push(
          ...etcdInstallPlan(spec, etcd).steps.map((st): BootstrapStep => ({
            ...st,
            id: `k3s.${st.id}`,
            phase: 'runtime',
            ...asRoot(st),
          })),
        );
      return [
        ...steps,
        ...bundleOnlyK3sInstaller.install(robot, { ...ctx, bundle: { ...ctx.bundle, k3s: undefined } }),
      ];
    },
    // k3s first (stopped, its processes ended and mounts gone, its files removed), then the
    // air-gap images the bundle placed; the binary is in the k3s plan.
    uninstall: (robot, ctx) => [
      ...(ctx.bundle.k3s
        ? uninstallPlan(k3sNodeSpec(ctx.inventory, robot)).steps
        : preinstalledK3sUninstall(ctx.inventory, robot, ctx.bundle.etcd !== undefined)
      ).map((st): BootstrapStep => ({ ...st, id: `k3s.${st.id}`, phase: 'remove', ...asRoot(st) })),
      ...bundleOnlyK3sInstaller.uninstall(robot, { ...ctx, bundle: { ...ctx.bundle, k3s: undefined } }),
    ],
  };
}

function planIp(robot: Robot): { ip?: string } {
  return robot.ip !== undefined && robot.ip !== robot.address ? { ip: robot.ip } : {};
}

/**
 * The k3s plans are written for the agent, which runs as root; over SSH their commands go through
 * sudo like every other step of bootstrap (file steps always do).
 */
function asRoot(st: PlanStep): { sudo?: true } {
  return st.kind === 'run' ? { sudo: true } : {};
}

/**
 * preinstalledK3sUninstall: without bundle.k3s, the k3s on the robot was there before bootstrap,
 * and bootstrap installed only the site identity into it. Uninstall stops k3s (the agent ran its
 * control plane on it) and removes that identity and edgectl's own k3s files; k3s's binary, units,
 * tools and data stay, for whoever installed it to remove (k3s-uninstall.sh).
 */
function preinstalledK3sUninstall(inv: Inventory, robot: Robot, bundledEtcd: boolean): PlanStep[] {
  const identity = [
    ...identityPlacement(robot.serverCapable ? 'server' : 'worker').map((x) => x.to),
    K3S_NODE_PASSWORD_FILE,
    ...(robot.serverCapable ? etcdMemberPlacement(robot.name).map((x) => x.to) : []),
  ];
  return [
    ...uninstallPlan(k3sNodeSpec(inv, robot)).steps.filter(
      (st) =>
        ['stop-server', 'stop-agent', 'secrets', 'state', 'snapshots'].includes(st.id) ||
        // A voter's etcd is bootstrap's even on a k3s installed by someone else (its binaries only
        // when the bundle brought them).
        (robot.serverCapable &&
          [
            'stop-datastore',
            'stop-replica',
            'unit-etcd',
            'unit-etcd-replica',
            'etcd-data',
            'etcd-env',
            ...(bundledEtcd ? ['etcd-binary', 'etcdctl-binary', 'revision-bump-binary'] : []),
          ].includes(st.id)),
    ),
    ...identity.map((path, i): PlanStep => ({
      kind: 'remove',
      id: `identity-${i}`,
      description: `the site identity bootstrap wrote: ${path}`,
      path,
    })),
  ];
}

/** k3sNodeSpec: a robot's k3s settings from the inventory, as the agent's config carries them. */
export function k3sNodeSpec(inv: Inventory, robot: Robot): K3sNodeSpec {
  const settings = K3sSettingsSchema.safeParse({
    nodeIp: robotIp(robot),
    flannelIface: robot.wifiInterface,
    serverCapable: robot.serverCapable,
    labels: { ...robot.labels },
  });
  // Validation checks the same settings (inventory.ts): reaching here with bad ones is a bug.
  if (!settings.success)
    throw new InternalError(
      `k3s settings of ${robot.name}: ${settings.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
    );
  return { ...settings.data, site: inv.site.id, nodeName: robot.name };
}

export type Runtimes = Readonly<Record<Inventory['controlPlane']['runtime'], RuntimeInstaller>>;

export const DEFAULT_RUNTIMES: Runtimes = { lab: labRuntimeInstaller, k3s: bundleOnlyK3sInstaller };

export const AGENT_UNIT = 'edgectl-agent.service';
export const UNIT_PATH = `/etc/systemd/system/${AGENT_UNIT}`;

/** The robot paths edgectl installs, before install.root is applied. */
export const PATHS = {
  installDir: '/opt/edgectl',
  agentBundle: '/opt/edgectl/edgectl-agent.mjs',
  nodeDir: '/opt/edgectl/node/bin',
  node: '/opt/edgectl/node/bin/node',
  configDir: '/etc/edgectl',
  config: '/etc/edgectl/agent.yaml',
  siteKeys: '/etc/edgectl/site-keys.json',
  /** Where an older edgectl put the one site key every robot shared; bootstrap removes it. */
  legacySiteKey: '/etc/edgectl/site.key',
  stateDir: '/var/lib/edgectl',
} as const;

/** Free disk space the install needs beyond the bundle (the agent's state, logs, slack), KiB. */
const DISK_SLACK_KIB = 200 * 1024;

/**
 * Memory (MemTotal, KiB) a robot needs. k3s asks 2 GB for a server and 512 MB for an agent
 * (docs.k3s.io/installation/requirements); MemTotal reads a little under the installed size.
 */
export function minMemoryKiB(runtime: Inventory['controlPlane']['runtime'], serverCapable: boolean): number {
  if (runtime === 'lab') return 128 * 1024;
  return serverCapable ? 1_800 * 1024 : 450 * 1024;
}

function basename(p: string): string {
  return p.slice(p.lastIndexOf('/') + 1);
}

export function sha256Hex(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Exits 0 when every directory after $1 exists with mode:owner:group $1 (stat -c %a:%U:%G). */
export const DIRS_CHECK =
  'want=$1; shift; for d; do [ "$(stat -c %a:%U:%G -- "$d" 2>/dev/null)" = "$want" ] || exit 1; done';

function installDir(id: string, paths: readonly string[], mode: string, phase: Phase): BootstrapStep {
  return {
    kind: 'run',
    id,
    phase,
    description: `create ${paths.join(', ')} (mode ${mode})`,
    argv: ['install', '-d', '-m', mode, '-o', 'root', '-g', 'root', ...paths],
    // install -d sets the mode of a directory that exists too; the check keeps a re-run quiet.
    unless: [
      'sh',
      '-c',
      DIRS_CHECK,
      'edgectl-dirs-check',
      `${Number.parseInt(mode, 8).toString(8)}:root:root`,
      ...paths,
    ],
    sudo: true,
  };
}

/**
 * Exits 0 when the directory $2 holds no `edgectl-agent-*.mjs` other than those after $2; with
 * $1 = remove, removes those others. The chunks' names are content hashes, so an older build's
 * chunks have other names than the new one's.
 */
export const PRUNE_CHUNKS =
  'mode=$1 d=$2; shift 2; for f in "$d"/edgectl-agent-*.mjs; do [ -f "$f" ] || continue; ' +
  'n=${f##*/}; for k; do [ "$n" = "$k" ] && continue 2; done; ' +
  '[ "$mode" = remove ] || exit 1; rm -f -- "$f" || exit 1; done';

function remove(id: string, path: string, what: string, recursive = false): BootstrapStep {
  return {
    kind: 'remove',
    id,
    phase: 'remove',
    description: `remove ${what} (${path})`,
    path,
    ...(recursive ? { recursive } : {}),
  };
}

/** A preflight check: a constant sh script with its values as arguments, never interpolated. */
function check(
  id: string,
  description: string,
  script: string,
  args: readonly string[],
  hint: string,
): BootstrapStep {
  return {
    kind: 'run',
    id,
    phase: 'preflight',
    description,
    argv: ['sh', '-c', script, 'edgectl-preflight', ...args],
    sudo: true,
    check: true,
    hint,
  };
}

function preflight(inv: Inventory, robot: Robot, bundle: BundleInfo, root: string): BootstrapStep[] {
  const bundleKiB = Math.ceil(
    [
      bundle.agent,
      ...bundle.agent.chunks,
      bundle.node,
      bundle.k3s,
      bundle.airgapImages,
      ...(bundle.etcd && robot.serverCapable
        ? [bundle.etcd.etcd, bundle.etcd.etcdctl, bundle.etcd.revisionBump]
        : []),
    ].reduce((n, f) => n + (f?.bytes ?? 0), 0) / 1024,
  );
  const steps = [
    check(
      'preflight.sudo',
      'become root (sudo)',
      'true',
      [],
      robot.sudo === 'password'
        ? 'check the sudo password and that the user may use sudo'
        : `give ${robot.ssh.user} passwordless sudo (/etc/sudoers.d), or set sudo: password in the inventory`,
    ),
    check(
      'preflight.os',
      'the robot runs Linux',
      'os=$(uname -s); [ "$os" = Linux ] || { echo "the robot runs $os, not Linux" >&2; exit 1; }',
      [],
      'edgectl installs on Linux robots only',
    ),
    check(
      'preflight.arch',
      `the robot's CPU matches the bundled Node runtime (${bundle.node.arch})`,
      'a=$(uname -m); [ "$a" = "$1" ] || { echo "the robot is $a, the bundled Node runtime is for $1" >&2; exit 1; }',
      [bundle.node.arch],
      `set bundle.node in the inventory to a Node 24 linux binary for the robot's CPU (uname -m)`,
    ),
    check(
      'preflight.disk',
      `at least ${Math.ceil((bundleKiB + DISK_SLACK_KIB) / 1024)} MiB free for ${root}`,
      'p=$1; while [ ! -e "$p" ]; do p=$(dirname "$p"); done; ' +
        'free=$(df -Pk "$p" | awk \'NR==2 {print $4}\'); ' +
        '[ "$free" -ge "$2" ] || { echo "only $free KiB free on $p, need $2 KiB" >&2; exit 1; }',
      [root, String(bundleKiB + DISK_SLACK_KIB)],
      'free disk space on the robot (journalctl --vacuum-size, old images), or install elsewhere (install.root)',
    ),
    check(
      'preflight.memory',
      `at least ${Math.round(minMemoryKiB(inv.controlPlane.runtime, robot.serverCapable) / 1024)} MiB of memory`,
      "mem=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo); " +
        '[ "$mem" -ge "$1" ] || { echo "the robot has $mem KiB of memory, $1 KiB needed" >&2; exit 1; }',
      [String(minMemoryKiB(inv.controlPlane.runtime, robot.serverCapable))],
      robot.serverCapable
        ? 'a k3s server needs 2 GB: set serverCapable: false for this robot'
        : 'the robot is below k3s agent minimum (512 MB)',
    ),
    ...(robot.serverCapable
      ? [
          check(
            'preflight.storage',
            `the storage under ${root} syncs fast enough for etcd (a synced 8 KiB write under 50 ms)`,
            // etcd fsyncs every write; an SD card at 100+ ms per fsync makes a leader miss its own
            // heartbeats. Twenty synced writes measure the storage class, not the brand.
            'p=$1; while [ ! -e "$p" ]; do p=$(dirname "$p"); done; f="$p/.edgectl-fsync-probe"; ' +
              't0=$(date +%s%N); dd if=/dev/zero of="$f" bs=8k count=20 oflag=dsync 2>/dev/null; s=$?; ' +
              't1=$(date +%s%N); rm -f "$f"; [ "$s" = 0 ] || { echo "cannot write $f" >&2; exit 1; }; ' +
              'ms=$(( (t1 - t0) / 20000000 )); ' +
              '[ "$ms" -le "$2" ] || { echo "a synced 8 KiB write takes $ms ms on $p, over the $2 ms etcd can live with" >&2; exit 1; }',
            [root, '50'],
            'etcd needs eMMC or SSD storage: move install.root to faster storage, or set serverCapable: false for this robot',
          ),
        ]
      : []),
    check(
      'preflight.interface',
      `the Wi-Fi interface ${robot.wifiInterface} exists and can multicast (mDNS)`,
      'ip -o link show dev "$1" >/dev/null 2>&1 || { echo "no interface $1" >&2; exit 1; }; ' +
        'ip -o link show dev "$1" | grep -q MULTICAST || { echo "$1 cannot multicast: mDNS will not work" >&2; exit 1; }',
      [robot.wifiInterface],
      `set wifiInterface for ${robot.name} in the inventory (ip -br link on the robot lists them; for name@parent, the name is the part before @)`,
    ),
  ];
  if (inv.install.service === 'systemd') {
    steps.push(
      check(
        'preflight.systemd',
        'systemd runs the robot',
        '[ -d /run/systemd/system ] || { echo "systemd is not running" >&2; exit 1; }',
        [],
        'edgectl installs a systemd unit; on a robot without systemd set install.service: none and start the agent yourself',
      ),
      check(
        'preflight.time',
        'the clock is synchronized (certificates and the site log need it)',
        // A check that cannot run fails: without timedatectl nothing says the clock is right.
        'command -v timedatectl >/dev/null 2>&1 || { echo "cannot check the clock: timedatectl is missing" >&2; exit 1; }; ' +
          's=$(timedatectl show -p NTPSynchronized --value 2>/dev/null); ' +
          '[ "$s" = yes ] || { echo "the clock is not NTP-synchronized (timedatectl: ${s:-unknown})" >&2; exit 1; }',
        [],
        'enable time sync on the robot (timedatectl set-ntp true, or chrony) and give it a reachable NTP server',
      ),
    );
  }
  return steps;
}

/** renderAgentYaml is the agent.yaml a robot gets, with a header saying where it came from. */
export function renderAgentYaml(inv: Inventory, robot: string): string {
  return (
    `# Written by edgectl bootstrap site for ${robot} of site ${inv.site.id}; edit the inventory, not this file.\n` +
    stringify(renderAgentConfig(inv, robot), { lineWidth: 0 })
  );
}

/**
 * renderUnit is templates/edgectl-agent.service with its ExecStart pointed at the installed files
 * (they move with install.root).
 */
export function renderUnit(template: string, inv: Inventory, robot: string): string {
  const p = (x: string) => installPath(inv, robot, x);
  const lines = template.split('\n');
  const at = lines.findIndex((l) => l.startsWith('ExecStart='));
  if (at < 0) throw new InternalError('the unit template has no ExecStart= line');
  // The node flags: every word between the runtime and the bundle.
  const words = lines[at]!.split(' ');
  const bundleAt = words.findIndex((w) => w.endsWith('.mjs'));
  const flags = words.slice(1, bundleAt < 0 ? 1 : bundleAt).filter((w) => w.startsWith('--'));
  lines[at] = [
    'ExecStart=' + p(PATHS.node),
    ...flags,
    p(PATHS.agentBundle),
    '--config',
    p(PATHS.config),
  ].join(' ');
  return lines.join('\n');
}

export interface BootstrapInputs {
  readonly inventory: Inventory;
  readonly bundle: BundleInfo;
  readonly identity: SiteIdentity;
  /** templates/edgectl-agent.service. */
  readonly unitTemplate: string;
  /** The addon templates the leader applies (agent/site/addons.ts readAddonTemplates). */
  readonly addonTemplates?: readonly { readonly file: string; readonly text: string }[];
  readonly runtimes?: Runtimes;
  /** Only these robots (default: all), in inventory order. */
  readonly robots?: readonly string[];
}

function selected(inv: Inventory, names: readonly string[] | undefined): Robot[] {
  if (!names) return [...inv.robots];
  const unknown = names.filter((n) => !inv.robots.some((r) => r.name === n));
  if (unknown.length) throw new InternalError(`no robot named ${unknown.join(', ')} in the inventory`);
  return inv.robots.filter((r) => names.includes(r.name));
}

function assertUniqueIds(robot: string, steps: readonly BootstrapStep[]): void {
  const seen = new Set<string>();
  for (const s of steps) {
    if (seen.has(s.id)) throw new InternalError(`plan for ${robot} has two steps with id ${s.id}`);
    seen.add(s.id);
  }
}

/** renderBootstrapPlan: every robot's install, in inventory order. Pure. */
export function renderBootstrapPlan(input: BootstrapInputs): BootstrapPlan {
  const inv = input.inventory;
  const runtimes = input.runtimes ?? DEFAULT_RUNTIMES;
  const robots = selected(inv, input.robots).map((robot): RobotPlan => {
    const p = (x: string) => installPath(inv, robot.name, x);
    const root = p('/') === '/' ? '/' : p('/').replace(/\/$/, '');
    const b = input.bundle;
    const chunkNames = b.agent.chunks.map((c) => basename(c.localPath));
    const files: BootstrapStep[] = [
      // Every chunk before the entry file that imports them: the entry is the commit point. A run
      // that stops in between leaves the old entry running with its old chunks (new chunks have
      // new names), and the next run goes on. The ids are by position, not by name: a chunk
      // recorded as done by name would be skipped after `bundle.prune` removed it, were an older
      // build that has it bootstrapped again.
      ...b.agent.chunks.map((c, i): BootstrapStep => ({
        kind: 'upload',
        id: `bundle.agent-chunk-${i + 1}`,
        phase: 'bundle',
        description: `upload a chunk of the agent (${chunkNames[i]})`,
        localPath: c.localPath,
        path: p(`${PATHS.installDir}/${chunkNames[i]}`),
        mode: 0o644,
        sha256: c.sha256,
      })),
      {
        kind: 'upload',
        id: 'bundle.agent',
        phase: 'bundle',
        description: 'upload the edgectl agent (bundled, plain JS)',
        localPath: b.agent.localPath,
        path: p(PATHS.agentBundle),
        mode: 0o644,
        sha256: b.agent.sha256,
      },
      {
        kind: 'upload',
        id: 'bundle.node',
        phase: 'bundle',
        description: `upload the Node runtime (${b.node.arch})`,
        localPath: b.node.localPath,
        path: p(PATHS.node),
        mode: 0o755,
        sha256: b.node.sha256,
      },
      {
        kind: 'writeFile',
        id: 'config.agent',
        phase: 'config',
        description: 'write the agent config (from the inventory)',
        path: p(PATHS.config),
        mode: 0o600,
        owner: 'root:root',
        content: renderAgentYaml(inv, robot.name),
      },
      {
        kind: 'writeFile',
        id: 'config.site',
        phase: 'config',
        description: 'write the site spec the leader applies (namespace, isolation, networks)',
        path: p(SITE_SPEC_PATH),
        mode: 0o644,
        owner: 'root:root',
        content: `# Written by edgectl bootstrap site: the site spec (docs/site.md)\n${stringify(inv.site)}`,
      },
      ...(input.addonTemplates ?? []).map((t): BootstrapStep => ({
        kind: 'writeFile',
        id: `config.template.${t.file.replace(/[^a-z0-9]+/gi, '-')}`,
        phase: 'config',
        description: `write the addon template ${t.file}`,
        path: p(`${TEMPLATES_DIR}/${t.file}`),
        mode: 0o644,
        owner: 'root:root',
        content: t.text,
      })),
      keyFileStep(inv, robot, input.identity),
      {
        kind: 'remove',
        id: 'secret.legacy-site-key',
        phase: 'secret',
        description: 'remove the site key an older edgectl shared with every robot',
        path: p(PATHS.legacySiteKey),
      },
    ];
    // A witness runs the agent only: no k3s, no share of the k3s identity.
    const runtime = inv.witnesses.includes(robot.name)
      ? []
      : runtimes[inv.controlPlane.runtime].install(robot, {
          inventory: inv,
          identity: input.identity,
          bundle: b,
        });
    const service: BootstrapStep[] = [];
    if (inv.install.service === 'systemd') {
      const unitChanged = ['service.unit'];
      service.push(
        {
          kind: 'writeFile',
          id: 'service.unit',
          phase: 'service',
          description: `install the systemd unit ${AGENT_UNIT}`,
          path: UNIT_PATH,
          mode: 0o644,
          owner: 'root:root',
          content: renderUnit(input.unitTemplate, inv, robot.name),
        },
        {
          kind: 'systemd',
          id: 'service.daemon-reload',
          phase: 'service',
          description: 'reload systemd (the unit changed)',
          action: 'daemon-reload',
          onlyIfChanged: unitChanged,
        },
        {
          kind: 'systemd',
          id: 'service.restart',
          phase: 'service',
          description: `(re)start ${AGENT_UNIT} (a file it reads changed)`,
          action: 'restart',
          unit: AGENT_UNIT,
          onlyIfChanged: [...files, ...runtime].map((s) => s.id).concat('service.unit'),
          hint: `look at journalctl -u ${AGENT_UNIT} -n 100 on ${robot.name}`,
        },
        {
          kind: 'systemd',
          id: 'service.enable',
          phase: 'service',
          description: `enable ${AGENT_UNIT} at boot, and start it`,
          action: 'enable-now',
          unit: AGENT_UNIT,
          hint: `look at journalctl -u ${AGENT_UNIT} -n 100 on ${robot.name}`,
        },
      );
    }
    const steps: BootstrapStep[] = [
      ...preflight(inv, robot, b, root),
      installDir('dirs.install', [p(PATHS.installDir), p(PATHS.nodeDir)], '0755', 'dirs'),
      installDir('dirs.private', [p(PATHS.configDir), p(PATHS.stateDir)], '0700', 'dirs'),
      ...(input.addonTemplates?.length
        ? [
            installDir(
              'dirs.templates',
              [
                ...new Set([
                  p(TEMPLATES_DIR),
                  ...input.addonTemplates
                    .filter((t) => t.file.includes('/'))
                    .map((t) => p(`${TEMPLATES_DIR}/${t.file.slice(0, t.file.lastIndexOf('/'))}`)),
                ]),
              ],
              '0755',
              'dirs',
            ),
          ]
        : []),
      ...files,
      ...runtime,
      ...service,
      // Last, so that no running agent still imports a chunk it removes: under systemd the agent
      // was restarted on the new entry just before (a failed restart stops the plan first); with
      // install.service: none the caller starts the agents after the install (the lab).
      {
        kind: 'run',
        id: 'bundle.prune',
        phase: 'bundle',
        description: "remove the agent chunks the new agent does not import (an older build's)",
        argv: [
          'sh',
          '-c',
          PRUNE_CHUNKS,
          'edgectl-prune-chunks',
          'remove',
          p(PATHS.installDir),
          ...chunkNames,
        ],
        unless: [
          'sh',
          '-c',
          PRUNE_CHUNKS,
          'edgectl-prune-chunks',
          'check',
          p(PATHS.installDir),
          ...chunkNames,
        ],
        sudo: true,
      },
    ];
    assertUniqueIds(robot.name, steps);
    return { target: robot.name, address: robot.address, ...planIp(robot), steps };
  });
  return { kind: 'bootstrap', site: inv.site.id, robots };
}

const DEFAULT_KEY_USE: SiteKeyUse = { send: 1, accept: [1], refused: [] };

/**
 * keyFileStep writes a robot's own key file: a voter's pair keys, V and the operator key; a
 * worker's one key (agent/site-key.ts). The same step in bootstrap and key plans, so that either
 * records what the other installed.
 */
export function keyFileStep(inv: Inventory, robot: Robot, identity: SiteIdentity): BootstrapStep {
  const use = identity.keys ?? DEFAULT_KEY_USE;
  const file = renderRobotKeyFile({
    master: Buffer.from(identity.siteKeyHex, 'hex'),
    site: inv.site.id,
    node: robot.name,
    // Witnesses vote: they hold voter keys (pair keys), though they never lead.
    voters: [...inv.voters, ...inv.witnesses],
    send: use.send,
    accept: use.accept,
    refused: use.refused,
  });
  return {
    kind: 'writeFile',
    id: 'secret.site-keys',
    phase: 'secret',
    description: `write the robot's own keys (${file.role === 'voter' ? "a voter's pair keys" : "a worker's one key"}, generation ${use.accept.join(' and ')})`,
    path: installPath(inv, robot.name, PATHS.siteKeys),
    mode: 0o600,
    owner: 'root:root',
    content: formatRobotKeyFile(file),
    secret: true,
  };
}

/**
 * Exits 0 once the agent's /status (at $1) reports that it sends with generation $2, accepts
 * exactly the generations $3 (comma-separated, ascending) and refuses exactly the robots $4
 * (comma-separated, sorted); polls for up to 20 s. Run with the Node
 * runtime bootstrap installed (`node -e`), like site-ready's status query: no curl needed.
 */
export const KEYS_LOADED_SCRIPT =
  "const [l,s,a,f]=process.argv.slice(1);const end=Date.now()+20000;const go=()=>fetch('http://'+l+'/status',{signal:AbortSignal.timeout(3000)})" +
  ".then(r=>r.json()).then(j=>{const k=j.keys;if(k&&String(k.send)===s&&[...k.accepted].sort((x,y)=>x-y).join(',')===a&&[...k.refused].sort().join(',')===f)process.exit(0);" +
  "throw new Error(k?'it sends '+k.send+', accepts '+k.accepted.join(',')+' and refuses '+(k.refused.join(',')||'no one'):'its status shows no keys')})" +
  ".catch(e=>{if(Date.now()>end){process.stderr.write('the agent did not load its new keys: '+e.message+'\\n');process.exit(1)}setTimeout(go,200)});go()";

/**
 * renderKeyPlan pushes new key files to running robots (edgectl site rotate-keys, and the voters'
 * refusal list on edgectl robot remove) and makes each agent reload them: SIGHUP to the unit's
 * main process, only when the file changed, then waits until the agent's /status shows the new
 * generations, so that no phase of a rotation starts before every robot holds the last one. Nothing
 * restarts. With install.service: none, whoever started the agents sends the SIGHUP. Pure.
 */
export function renderKeyPlan(input: {
  readonly inventory: Inventory;
  readonly identity: SiteIdentity;
  readonly robots?: readonly string[];
}): BootstrapPlan {
  const inv = input.inventory;
  const robots = selected(inv, input.robots).map((robot): RobotPlan => {
    const steps: BootstrapStep[] = [keyFileStep(inv, robot, input.identity)];
    const use = input.identity.keys ?? DEFAULT_KEY_USE;
    // A worker refuses no one (agent/site-key.ts renderRobotKeyFile): it talks to voters only.
    const refused =
      inv.voters.includes(robot.name) || inv.witnesses.includes(robot.name)
        ? [...new Set(use.refused)].sort()
        : [];
    const hint = `look at journalctl -u ${AGENT_UNIT} -n 100 on ${robot.name}: the agent logs why it kept its keys`;
    if (inv.install.service === 'systemd')
      steps.push(
        {
          kind: 'run',
          id: 'service.reload-keys',
          phase: 'service',
          description: `make ${AGENT_UNIT} reload its keys (SIGHUP; no restart)`,
          argv: ['systemctl', 'kill', '--signal=HUP', '--kill-whom=main', AGENT_UNIT],
          sudo: true,
          onlyIfChanged: ['secret.site-keys'],
          hint,
        },
        {
          kind: 'run',
          id: 'service.keys-loaded',
          phase: 'service',
          description: `wait until the agent reports the new keys (sends generation ${use.send}, accepts ${use.accept.join(' and ')}${refused.length ? `, refuses ${refused.join(', ')}` : ''})`,
          argv: [
            installPath(inv, robot.name, PATHS.node),
            '-e',
            KEYS_LOADED_SCRIPT,
            renderAgentConfig(inv, robot.name).status?.listen ?? '127.0.0.1:7947',
            String(use.send),
            [...new Set(use.accept)].sort((a, b) => a - b).join(','),
            refused.join(','),
          ],
          onlyIfChanged: ['secret.site-keys'],
          timeoutMs: 30_000,
          hint,
        },
      );
    return { target: robot.name, address: robot.address, steps };
  });
  return { kind: 'keys', site: inv.site.id, robots };
}

export interface RemoveInputs {
  readonly inventory: Inventory;
  readonly bundle: BundleInfo;
  readonly runtimes?: Runtimes;
  readonly robots?: readonly string[];
}

/**
 * renderRemovePlan undoes a bootstrap: stop and disable the agent (it hands leadership over on
 * SIGTERM), remove its unit, the runtime's files, and edgectl's directories (config, keys,
 * state, bundle). `reset` is one robot; `uninstall` the whole site. Pure.
 */
export function renderRemovePlan(kind: 'reset' | 'uninstall', input: RemoveInputs): BootstrapPlan {
  const inv = input.inventory;
  const runtimes = input.runtimes ?? DEFAULT_RUNTIMES;
  const robots = selected(inv, input.robots).map((robot): RobotPlan => {
    const p = (x: string) => installPath(inv, robot.name, x);
    const steps: BootstrapStep[] = [];
    if (inv.install.service === 'systemd')
      steps.push(
        {
          kind: 'systemd',
          id: 'service.disable',
          phase: 'remove',
          description: `stop and disable ${AGENT_UNIT} (it hands leadership over first)`,
          action: 'disable-now',
          unit: AGENT_UNIT,
        },
        remove('service.unit', UNIT_PATH, `the unit ${AGENT_UNIT}`),
        {
          kind: 'systemd',
          id: 'service.daemon-reload',
          phase: 'remove',
          description: 'reload systemd (the unit is gone)',
          action: 'daemon-reload',
          onlyIfChanged: ['service.unit'],
        },
      );
    steps.push(
      ...(inv.witnesses.includes(robot.name)
        ? []
        : runtimes[inv.controlPlane.runtime].uninstall(robot, { inventory: inv, bundle: input.bundle })),
      remove('remove.config', p(PATHS.configDir), "the agent config and the robot's keys", true),
      remove('remove.state', p(PATHS.stateDir), "the agent's state (term, vote, site log)", true),
      remove('remove.bundle', p(PATHS.installDir), 'the agent bundle and its Node runtime', true),
    );
    assertUniqueIds(robot.name, steps);
    return { target: robot.name, address: robot.address, ...planIp(robot), steps };
  });
  return { kind, site: inv.site.id, robots };
}

/**
 * stepHash identifies a step's full content (for secrets too: a digest, never the secret): the
 * executor skips a step whose hash it recorded as done, and redoes one whose content changed.
 */
export function stepHash(step: BootstrapStep): string {
  return sha256Hex(JSON.stringify(step, Object.keys(step).sort()));
}
