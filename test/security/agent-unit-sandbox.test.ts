/**
 * The agent's systemd unit (templates/edgectl-agent.service, as bootstrap renders it) is hardened,
 * and the agent still does its job inside that sandbox.
 *
 * systemd is not PID 1 on this machine, so the unit cannot run as a service here. What runs instead:
 * - `systemd-analyze verify` (Debian's systemd) on the rendered unit: no unknown or malformed
 *   setting, and `systemd-analyze security --offline` reads every hardening setting as in force;
 * - the built agent (npm run build:agent) started by the unit's own ExecStart and Environment, in
 *   the sandbox the unit asks for, rebuilt from the unit's settings with a private mount namespace
 *   (unshare), read-only bind mounts and tmpfs, and setpriv for no_new_privs and the capability
 *   bounding set. The unit's paths are re-rooted under a scratch directory, the way install.root
 *   re-roots the agent's: it elects itself, persists its term, and after a restart in a fresh
 *   sandbox reads it back. A probe in the same sandbox shows the sandbox bites (read-only outside
 *   the writable paths, private /tmp, no /root).
 * Settings enforced by seccomp (RestrictAddressFamilies, RestrictSUIDSGID, RestrictRealtime,
 * LockPersonality, SystemCallArchitectures) have no tool here to apply them, so they are checked
 * only by systemd-analyze; any other setting this file does not know fails the test.
 * Needs root.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import {
  chmodSync,
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { formatRobotKeyFile, renderRobotKeyFile } from '../../agent/site-key.ts';
import { freePort } from '../../lab/kube-apiserver/apiserver.ts';
import { parseInventory } from '../../cli/bootstrap/inventory.ts';
import { PATHS, renderUnit } from '../../cli/bootstrap/plan.ts';
import { fetchStatus } from '../../cli/ops/status.ts';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const NODE = join(REPO, 'node_modules/node/bin/node');
const TEMPLATE = readFileSync(join(REPO, 'templates/edgectl-agent.service'), 'utf8');

/** The settings the sandbox below rebuilds, and those seccomp enforces (not rebuilt here). */
const EMULATED = new Set([
  'NoNewPrivileges',
  'ProtectSystem',
  'ReadWritePaths',
  'StateDirectory',
  'ConfigurationDirectory',
  'ProtectHome',
  'PrivateTmp',
  'PrivateDevices',
  'ProtectKernelTunables',
  'ProtectKernelModules',
  'ProtectKernelLogs',
  'ProtectHostname',
  'ProtectClock',
  'PrivateMounts',
  'UMask',
]);
const SECCOMP_ONLY = new Set([
  'RestrictAddressFamilies',
  'RestrictSUIDSGID',
  'RestrictRealtime',
  'LockPersonality',
  'SystemCallArchitectures',
]);
/** Settings that are no sandbox (or say "no sandbox here"). */
const NOT_SANDBOX = new Set([
  'Type',
  'Environment',
  'ExecStart',
  'KillSignal',
  'TimeoutStopSec',
  'Restart',
  'RestartSec',
  'StateDirectoryMode',
  'ConfigurationDirectoryMode',
  'LimitNOFILE',
  'MemoryMax',
  'ProtectControlGroups',
]);

/** The [Service] settings of a unit, each key with its values in order. */
function serviceSettings(unit: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let section = '';
  for (const raw of unit.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    if (line.startsWith('[')) {
      section = line;
      continue;
    }
    if (section !== '[Service]') continue;
    const eq = line.indexOf('=');
    const key = line.slice(0, eq);
    out.set(key, [...(out.get(key) ?? []), line.slice(eq + 1)]);
  }
  return out;
}

const one = (s: Map<string, string[]>, key: string) => s.get(key)?.at(-1);

/**
 * sandboxScript is a shell script that rebuilds the unit's sandbox in the mount namespace it runs
 * in (unshare --mount --uts), with every path of the unit under `root`, then execs `argv` with
 * no_new_privs and the capability bounding set the unit implies.
 */
function sandboxScript(
  unit: string,
  root: string,
  argv: readonly string[],
  env: Record<string, string>,
): string {
  const s = serviceSettings(unit);
  for (const key of s.keys())
    assert.ok(
      EMULATED.has(key) || SECCOMP_ONLY.has(key) || NOT_SANDBOX.has(key),
      `the unit sets ${key}, which this test neither rebuilds nor lists: add it`,
    );
  assert.equal(one(s, 'ProtectSystem'), 'strict');
  for (const key of [
    'NoNewPrivileges',
    'ProtectHome',
    'PrivateTmp',
    'PrivateDevices',
    'ProtectKernelTunables',
  ])
    assert.equal(one(s, key), 'yes', key);
  const writable = [
    ...(s.get('ReadWritePaths') ?? []).flatMap((v) => v.split(/\s+/)).map((p) => p.replace(/^-/, '')),
    ...(s.get('StateDirectory') ?? []).map((d) => `/var/lib/${d}`),
    ...(s.get('ConfigurationDirectory') ?? []).map((d) => `/etc/${d}`),
  ].map((p) => `${root}${p}`);
  const q = (x: string) => `'${x.replaceAll("'", `'\\''`)}'`;
  const lines = [
    'set -eu',
    'mount --make-rprivate /',
    // The node binary is bound into the bundle's place, as bootstrap would have copied it.
    `mount --bind ${q(NODE)} ${q(`${root}${PATHS.node}`)}`,
    // ReadWritePaths, StateDirectory, ConfigurationDirectory: each its own writable mount.
    ...writable.flatMap((p) => [`mkdir -p ${q(p)}`, `mount --bind ${q(p)} ${q(p)}`]),
    // ProtectSystem=strict: every other mount read-only, but /proc, /sys and /dev.
    `awk '$2 !~ "^/(proc|sys|dev)(/|$)" {print $2}' /proc/self/mounts | sort -u | while read -r m; do`,
    `  case "$m" in ${writable.map(q).join('|')}) mount -o remount,bind,rw "$m" ;; *) mount -o remount,bind,ro "$m" ;; esac`,
    'done',
    // ProtectKernelTunables: /proc/sys and /sys read-only.
    'mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys',
    'mount -o remount,bind,ro /sys',
    // PrivateTmp.
    'mount -t tmpfs -o mode=1777 tmpfs /tmp',
    'mount -t tmpfs -o mode=1777 tmpfs /var/tmp',
    // ProtectHome=yes: inaccessible.
    'for d in /home /root /run/user; do [ -d "$d" ] && mount -t tmpfs -o ro,mode=000 tmpfs "$d"; done',
    // PrivateDevices: a /dev with the pseudo devices only (which also hides /dev/kmsg: ProtectKernelLogs).
    'mount -t tmpfs -o mode=755 tmpfs /dev',
    'mknod -m 666 /dev/null c 1 3; mknod -m 666 /dev/zero c 1 5; mknod -m 666 /dev/full c 1 7',
    'mknod -m 666 /dev/random c 1 8; mknod -m 666 /dev/urandom c 1 9; mknod -m 666 /dev/tty c 5 0',
    'mkdir /dev/shm && mount -t tmpfs -o mode=1777 tmpfs /dev/shm',
    'ln -s /proc/self/fd /dev/fd; ln -s fd/0 /dev/stdin; ln -s fd/1 /dev/stdout; ln -s fd/2 /dev/stderr',
    // The mounts as the agent will see them, for the test to check.
    `echo "SANDBOX-RW $(awk '$2 !~ "^/(proc|sys|dev)(/|$)" && $4 ~ /^rw/ {print $2}' /proc/self/mounts | sort | tr '\\n' ' ')"`,
    `umask ${one(s, 'UMask') ?? '0022'}`,
    // NoNewPrivileges; the bounding set without what ProtectKernelModules, ProtectKernelLogs,
    // ProtectClock and PrivateDevices take away.
    [
      'exec setpriv --no-new-privs',
      '--bounding-set -sys_module,-syslog,-sys_time,-wake_alarm,-mknod,-sys_rawio',
      '-- env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin',
      ...Object.entries(env).map(([k, v]) => q(`${k}=${v}`)),
      ...argv.map(q),
    ].join(' '),
  ];
  return lines.join('\n');
}

const root = mkdtempSync('/srv/edgectl-unit-sandbox-');
let unit: string;
let statusAddr: string;
let started: ChildProcess | undefined;

function execStart(u: string): string[] {
  const line = serviceSettings(u).get('ExecStart')![0]!;
  return line.split(' ');
}

function environment(u: string): Record<string, string> {
  return Object.fromEntries(
    (serviceSettings(u).get('Environment') ?? []).map((e) => [
      e.slice(0, e.indexOf('=')),
      e.slice(e.indexOf('=') + 1),
    ]),
  );
}

/** runSandboxed starts `argv` in the unit's sandbox, its output in `log`. */
function runSandboxed(argv: readonly string[], log: string): ChildProcess {
  const fd = openSync(log, 'a');
  const child = spawn(
    'unshare',
    [
      '--mount',
      '--uts',
      '--propagation',
      'private',
      'sh',
      '-c',
      sandboxScript(unit, root, argv, environment(unit)),
    ],
    { stdio: ['ignore', fd, fd] },
  );
  closeSync(fd);
  return child;
}

async function waitFor<T>(
  what: string,
  probe: () => Promise<T | null>,
  child: ChildProcess,
  log: string,
): Promise<T> {
  for (let i = 0; ; i++) {
    if (child.exitCode !== null || child.signalCode !== null)
      assert.fail(
        `the sandboxed agent exited (${child.exitCode ?? child.signalCode}) before ${what}:\n${readFileSync(log, 'utf8')}`,
      );
    const v = await probe();
    if (v) return v;
    assert.ok(i < 300, `no ${what} after many tries:\n${readFileSync(log, 'utf8')}`);
    await sleep(100);
  }
}

const exited = (c: ChildProcess) =>
  c.exitCode !== null || c.signalCode !== null
    ? Promise.resolve(c.exitCode)
    : new Promise<number | null>((r) => c.once('exit', (code) => r(code)));

before(async () => {
  assert.equal(process.getuid?.(), 0, 'the sandbox test needs root (mount namespaces, setpriv)');
  // The offline bundle as bootstrap installs it, under `root` (install.root): the tests' entry,
  // which is the robot's agent with the in-memory control plane registered (agent/testing/main.ts).
  execFileSync(
    process.execPath,
    [join(REPO, 'agent/build.ts'), '--entry', 'agent/testing/main.ts', `${root}${PATHS.installDir}`],
    { cwd: REPO, stdio: 'ignore' },
  );
  mkdirSync(`${root}${PATHS.nodeDir}`, { recursive: true });
  // A placeholder the real binary is bound onto inside the sandbox (systemd-analyze wants it executable).
  writeFileSync(`${root}${PATHS.node}`, '');
  chmodSync(`${root}${PATHS.node}`, 0o755);
  mkdirSync(`${root}${PATHS.configDir}`, { recursive: true, mode: 0o700 });
  writeFileSync(
    `${root}${PATHS.siteKeys}`,
    formatRobotKeyFile(
      renderRobotKeyFile({
        master: Buffer.alloc(32, 0x5a),
        site: 'sandbox',
        node: 'r1',
        voters: ['r1'],
        send: 1,
        accept: [1],
      }),
    ),
    { mode: 0o600 },
  );
  const status = await freePort();
  statusAddr = `127.0.0.1:${status}`;
  writeFileSync(
    `${root}${PATHS.config}`,
    stringify({
      site: { id: 'sandbox' },
      node: { id: 'r1', serverCapable: true },
      voters: ['r1'],
      profile: 'test',
      network: { interfaces: [], bindAddress: '127.0.0.1', port: await freePort(), mdns: false, seeds: [] },
      stateDir: `${root}${PATHS.stateDir}`,
      siteKeyFile: `${root}${PATHS.siteKeys}`,
      status: { listen: statusAddr },
      controlPlane: { runtime: 'memory' },
      log: { level: 'info' },
    }),
  );
  const inv = parseInventory({
    site: { id: 'sandbox' },
    robots: [
      {
        name: 'r1',
        address: '10.77.99.1', // only renders the unit: never connected to
        ssh: { user: 'root', keyFile: 'id' },
        sudo: 'none',
        serverCapable: true,
      },
    ],
    install: { root, service: 'none' },
  });
  unit = renderUnit(TEMPLATE, inv, 'r1');
  writeFileSync(join(root, 'edgectl-agent.service'), unit);
});

after(async () => {
  if (started && started.exitCode === null && started.signalCode === null) {
    started.kill('SIGKILL');
    await exited(started);
  }
  rmSync(root, { recursive: true, force: true });
});

describe('the agent unit', () => {
  test('systemd-analyze verify accepts the rendered unit without a word', () => {
    const r = spawnSync('systemd-analyze', ['verify', join(root, 'edgectl-agent.service')], {
      encoding: 'utf8',
    });
    assert.equal(r.error, undefined, 'systemd-analyze must be installed (Debian: systemd)');
    assert.equal(r.status, 0, r.stderr);
    assert.equal(`${r.stdout}${r.stderr}`, '', 'no unknown or malformed setting');
  });

  test('systemd-analyze security reads each hardening setting as in force', (t) => {
    const r = spawnSync(
      'systemd-analyze',
      ['security', '--offline=true', join(root, 'edgectl-agent.service')],
      {
        encoding: 'utf8',
      },
    );
    assert.equal(r.status, 0, r.stderr);
    const passed = (name: string) => r.stdout.split('\n').some((l) => l.startsWith(`✓ ${name}`));
    for (const name of [
      'NoNewPrivileges=',
      'ProtectSystem=',
      'ProtectHome=',
      'PrivateTmp=',
      'PrivateDevices=',
      'ProtectKernelTunables=',
      'ProtectKernelModules=',
      'ProtectKernelLogs=',
      'ProtectHostname=',
      'ProtectClock=',
      'PrivateMounts=',
      'RestrictAddressFamilies=~AF_PACKET',
      'RestrictSUIDSGID=',
      'RestrictRealtime=',
      'LockPersonality=',
      'SystemCallArchitectures=',
      'UMask=',
    ])
      assert.ok(passed(name), `${name} is not in force:\n${r.stdout}`);
    t.diagnostic(r.stdout.split('\n').find((l) => l.includes('Overall exposure level')) ?? '');
  });

  test('in its sandbox the agent runs, persists its state, and reads it back after a restart', async () => {
    const log = join(root, 'agent.log');
    const first = runSandboxed(execStart(unit), log);
    started = first;
    const leading = await waitFor(
      'a serving leader',
      async () => {
        const s = await fetchStatus(statusAddr, 1000).catch(() => null);
        return s && s.role === 'leader' && s.lifecycle === 'leading.serving' ? s : null;
      },
      first,
      log,
    );
    // no_new_privs and the bounding set are those of the process that runs the agent.
    const proc = readFileSync(`/proc/${first.pid}/status`, 'utf8');
    assert.match(proc, /^NoNewPrivs:\s+1$/m);
    const bounding = BigInt(`0x${/^CapBnd:\s+([0-9a-f]+)$/m.exec(proc)![1]}`);
    for (const [cap, bit] of [
      ['CAP_SYS_MODULE', 16n],
      ['CAP_SYS_RAWIO', 17n],
      ['CAP_SYS_TIME', 25n],
      ['CAP_MKNOD', 27n],
      ['CAP_SYSLOG', 34n],
      ['CAP_WAKE_ALARM', 35n],
    ] as const)
      assert.equal(bounding & (1n << bit), 0n, `${cap} is gone`);
    assert.notEqual(bounding & (1n << 5n), 0n, 'CAP_KILL stays: the reap script signals containerd');
    assert.match(readFileSync(log, 'utf8'), /^SANDBOX-RW /m);
    const rw = /^SANDBOX-RW (.*)$/m.exec(readFileSync(log, 'utf8'))![1]!.trim().split(' ').sort();
    assert.deepEqual(
      rw.filter((m) => !['/tmp', '/var/tmp'].includes(m)),
      [
        `${root}/etc/edgectl`,
        `${root}/etc/rancher/k3s`,
        `${root}/var/lib/edgectl`,
        `${root}/var/lib/rancher/k3s`,
      ].sort(),
      'only the unit’s writable paths (and the private /tmp) are writable',
    );
    first.kill('SIGTERM');
    assert.equal(await exited(first), 0, readFileSync(log, 'utf8'));
    assert.ok(readdirSync(`${root}${PATHS.stateDir}`).length > 0, 'the agent wrote its state');

    const second = runSandboxed(execStart(unit), log);
    started = second;
    const again = await waitFor(
      'a serving leader after the restart',
      async () => {
        const s = await fetchStatus(statusAddr, 1000).catch(() => null);
        return s && s.role === 'leader' && s.lifecycle === 'leading.serving' ? s : null;
      },
      second,
      log,
    );
    // A single voter starts a new term on every start: a term past the first run's means it read
    // the persisted one back.
    assert.ok(again.term > leading.term, `term ${again.term} after ${leading.term}`);
    second.kill('SIGTERM');
    assert.equal(await exited(second), 0, readFileSync(log, 'utf8'));
  });

  test('the sandbox bites: read-only outside the writable paths, private /tmp, no /root', async () => {
    const marker = join('/tmp', `edgectl-sandbox-marker-${process.pid}`);
    writeFileSync(marker, 'host');
    try {
      const log = join(root, 'probe.log');
      const probe = [
        `touch ${root}${PATHS.installDir}/probe 2>/dev/null && echo bundle-writable || echo bundle-read-only`,
        `touch /usr/edgectl-probe 2>/dev/null && echo usr-writable || echo usr-read-only`,
        `touch ${root}${PATHS.stateDir}/probe && echo state-writable`,
        `test -e ${marker} && echo tmp-shared || echo tmp-private`,
        // Root passes permission checks, so ProtectHome hides the homes behind an empty, read-only mount.
        `[ -z "$(ls -A /root)" ] && echo root-empty || echo root-visible`,
        `touch /root/probe 2>/dev/null && echo root-writable || echo root-read-only`,
        `test -e /dev/kmsg && echo kmsg || echo no-kmsg`,
        // kernel.domainname belongs to the sandbox's own UTS namespace: writing it back is harmless.
        `(cat /proc/sys/kernel/domainname > /proc/sys/kernel/domainname) 2>/dev/null && echo sysctl-writable || echo sysctl-read-only`,
      ].join('; ');
      const c = runSandboxed(['sh', '-c', probe], log);
      assert.equal(await exited(c), 0, readFileSync(log, 'utf8'));
      const out = readFileSync(log, 'utf8');
      assert.ok(
        readdirSync('/root').length > 0,
        "the host's /root must have entries, or hiding it shows nothing",
      );
      for (const want of [
        'bundle-read-only',
        'usr-read-only',
        'state-writable',
        'tmp-private',
        'root-empty',
        'root-read-only',
        'no-kmsg',
        'sysctl-read-only',
      ])
        assert.match(out, new RegExp(`^${want}$`, 'm'), out);
      assert.equal(existsSync('/usr/edgectl-probe'), false);
    } finally {
      rmSync(marker, { force: true });
    }
  });
});
