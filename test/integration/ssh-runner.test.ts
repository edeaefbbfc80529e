/**
 * SshCommandRunner against a real OpenSSH sshd in a network namespace, as a real non-root user
 * with sudo: the shared CommandRunner contract, then what only SSH has (host keys, sudo passwords,
 * credentials, unreachable robots). Needs root (namespaces, useradd), as CI runs it.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { stringify } from 'yaml';
import { InMemoryKnownHosts, KnownHostsFile, knownHostsLine } from '../../cli/bootstrap/known-hosts.ts';
import { describeRunnerContract } from '../../agent/exec/runner.contract.ts';
import { SshCommandRunner, type SshOptions, type SshTarget } from '../../cli/bootstrap/ssh.ts';
import {
  createTestUsers,
  removeTestUsers,
  startSshd,
  wirePublicKey,
  type SshdFixture,
  type TestUser,
} from '../../cli/bootstrap/testing/sshd.ts';
import { parseRobotKeyFile } from '../../agent/site-key.ts';
import type { ApplyReport } from '../../cli/bootstrap/apply.ts';
import { runBootstrapSite, runUninstallSite, type ApplyCliOptions } from '../../cli/ops/bootstrap.ts';
import { createSite, destroySite, requireRoot } from '../../lab/netns.ts';

const PREFIX = 'ebs-';
const SUDO_PASSWORD = `pw-${randomBytes(12).toString('hex')}`;
const users: TestUser[] = [
  { name: 'edgectl-test', sudo: 'password', password: SUDO_PASSWORD },
  { name: 'edgectl-test-np', sudo: 'nopasswd', password: `np-${randomBytes(12).toString('hex')}` },
];

let sshd: SshdFixture;
/** A second robot, for bootstrapping a two-robot site over SSH. */
let sshd2: SshdFixture;
let scratch: string;
const local = mkdtempSync(join(tmpdir(), 'edgectl-ssh-test-'));
const ready = (async () => {
  requireRoot('the SSH runner test (real sshd in a network namespace, useradd)');
  const site = createSite(PREFIX, '10.77.30', ['ssh1', 'ssh2']);
  createTestUsers(users);
  sshd2 = await startSshd({
    netns: site.robots[1]!.netns,
    address: site.robots[1]!.address,
    users: users.map((u) => u.name),
  });
  sshd = await startSshd({
    netns: site.robots[0]!.netns,
    address: site.robots[0]!.address,
    users: users.map((u) => u.name),
  });
  // The namespace shares this machine's file system: a root-only directory the runner writes into.
  scratch = mkdtempSync('/run/ebs-ssh-scratch-');
  chmodSync(scratch, 0o755);
})();
ready.catch(() => {});

before(async () => {
  await ready;
});
after(async () => {
  await sshd?.stop();
  await sshd2?.stop();
  removeTestUsers(users);
  destroySite(PREFIX);
  if (scratch) rmSync(scratch, { recursive: true, force: true });
  rmSync(local, { recursive: true, force: true });
});

function target(over: Partial<SshTarget> = {}): SshTarget {
  return {
    name: 'ssh1',
    host: sshd.address,
    port: sshd.port,
    user: 'edgectl-test',
    keyFile: sshd.clientKeyFile,
    hostKey: sshd.hostKeyFingerprint,
    hostKeyField: 'robots[0].ssh.hostKey',
    ...over,
  };
}
function options(over: Partial<SshOptions> = {}): SshOptions {
  return {
    knownHosts: new InMemoryKnownHosts(),
    acceptNewHostKeys: false,
    sudo: 'password',
    sudoPassword: SUDO_PASSWORD,
    connectTimeoutMs: 5000,
    ...over,
  };
}

describeRunnerContract('ssh (OpenSSH sshd, non-root user, sudo with a password)', async () => {
  await ready;
  return { runner: await SshCommandRunner.connect(target(), options()), scratch };
});

describe('host keys', () => {
  test('a wrong pinned host key is refused, naming the robot, both fingerprints and the fix', async () => {
    const wrong = `SHA256:${'A'.repeat(43)}`;
    await assert.rejects(
      SshCommandRunner.connect(target({ hostKey: wrong }), options()),
      (e: Error & { code: string; hint: string }) => {
        assert.equal(e.code, 'EDGE_HOST_KEY_MISMATCH');
        assert.match(e.message, /ssh1 \(10\.77\.30\.1\)/);
        assert.ok(e.message.includes(wrong) && e.message.includes(sshd.hostKeyFingerprint), e.message);
        assert.match(e.hint, /robots\[0\]\.ssh\.hostKey/);
        return true;
      },
    );
  });

  test('an unknown host is refused without --accept-new-host-keys, and nothing is recorded', async () => {
    const path = join(local, 'refused', 'known_hosts');
    await assert.rejects(
      SshCommandRunner.connect(
        target({ hostKey: undefined }),
        options({ knownHosts: new KnownHostsFile(path) }),
      ),
      (e: Error & { code: string; hint: string }) => {
        assert.equal(e.code, 'EDGE_HOST_KEY_UNKNOWN');
        assert.ok(e.message.includes(sshd.hostKeyFingerprint));
        assert.match(e.hint, /--accept-new-host-keys/);
        return true;
      },
    );
    assert.equal(existsSync(path), false);
  });

  test('trust on first use writes known_hosts only with accept-new; the next connection trusts it', async () => {
    const path = join(local, 'tofu', 'known_hosts');
    const kh = new KnownHostsFile(path);
    const r1 = await SshCommandRunner.connect(
      target({ hostKey: undefined }),
      options({ knownHosts: kh, acceptNewHostKeys: true }),
    );
    await r1.close();
    assert.equal(readFileSync(path, 'utf8'), `${knownHostsLine(sshd.address, 22, sshd.hostKey)}\n`);
    assert.equal(statSync(path).mode & 0o777, 0o600);
    const r2 = await SshCommandRunner.connect(target({ hostKey: undefined }), options({ knownHosts: kh }));
    assert.equal(r2.hostKeyFingerprint, sshd.hostKeyFingerprint);
    await r2.close();
    assert.equal(readFileSync(path, 'utf8').split('\n').filter(Boolean).length, 1);
  });

  test('a changed host key is refused even with accept-new, naming the known_hosts line', async () => {
    const other = wirePublicKey(join(sshd.dir, 'client_ed25519.pub'));
    const kh = new InMemoryKnownHosts(`# site\n${knownHostsLine(sshd.address, 22, other)}\n`);
    await assert.rejects(
      SshCommandRunner.connect(
        target({ hostKey: undefined }),
        options({ knownHosts: kh, acceptNewHostKeys: true }),
      ),
      (e: Error & { code: string; hint: string }) => {
        assert.equal(e.code, 'EDGE_HOST_KEY_MISMATCH');
        assert.match(e.message, /line 2/);
        assert.ok(e.message.includes(sshd.hostKeyFingerprint));
        assert.match(e.hint, /ssh-keygen -R/);
        return true;
      },
    );
    assert.equal(kh.text.split('\n').filter(Boolean).length, 2);
  });
});

describe('sudo', () => {
  test('the sudo password never appears in an argv, a log line, the output or sshd’s log', async () => {
    const log: string[] = [];
    const lines: string[] = [];
    const r = await SshCommandRunner.connect(target(), options({ log: (l) => log.push(l) }));
    try {
      const results = [
        await r.run(['id', '-u'], { sudo: true, onLine: (s, l) => lines.push(l) }),
        await r.run(['cat'], { sudo: true, stdin: 'payload', onLine: (s, l) => lines.push(l) }),
        await r.run(['sh', '-c', 'echo oops >&2; exit 4'], { sudo: true, onLine: (s, l) => lines.push(l) }),
      ];
      await r.writeFile(`${scratch}/pw-check`, 'content', { mode: 0o600, sudo: true });
      assert.deepEqual(
        results.map((x) => [x.code, x.stdout, x.stderr]),
        [
          [0, '0\n', ''],
          [0, 'payload', ''],
          [4, '', 'oops\n'],
        ],
      );
      assert.ok(
        log.some((l) => l.includes('sudo -S -k')),
        'the command lines are logged',
      );
      const everything = [...log, ...lines, readFileSync(sshd.logFile, 'utf8')].join('\n');
      assert.match(readFileSync(sshd.logFile, 'utf8'), /Starting session: command for edgectl-test/);
      assert.ok(!everything.includes(SUDO_PASSWORD), 'the sudo password leaked');
    } finally {
      await r.close();
    }
  });

  test('a wrong sudo password is refused with EDGE_SUDO_FAILED, and the command does not run', async () => {
    const r = await SshCommandRunner.connect(target(), options({ sudoPassword: 'wrong' }));
    try {
      await assert.rejects(
        r.run(['touch', `${scratch}/should-not-exist`], { sudo: true }),
        (e: Error & { code: string }) => {
          assert.equal(e.code, 'EDGE_SUDO_FAILED');
          assert.match(e.message, /wrong password/);
          return true;
        },
      );
      assert.equal(existsSync(`${scratch}/should-not-exist`), false);
    } finally {
      await r.close();
    }
  });

  test('with a NOPASSWD rule, password mode never writes the password into the command', async () => {
    const r = await SshCommandRunner.connect(target({ user: 'edgectl-test-np' }), options());
    try {
      const out = await r.run(['cat'], { sudo: true, stdin: 'only this' });
      assert.equal(out.stdout, 'only this');
    } finally {
      await r.close();
    }
  });

  test('nopasswd mode runs as root without any password', async () => {
    const r = await SshCommandRunner.connect(
      target({ user: 'edgectl-test-np' }),
      options({ sudo: 'nopasswd', sudoPassword: undefined }),
    );
    try {
      assert.equal((await r.run(['id', '-u'], { sudo: true })).stdout, '0\n');
    } finally {
      await r.close();
    }
  });

  test('nopasswd mode for a user who needs a password fails with a hint, not a hang', async () => {
    const r = await SshCommandRunner.connect(
      target(),
      options({ sudo: 'nopasswd', sudoPassword: undefined }),
    );
    try {
      await assert.rejects(
        r.run(['id', '-u'], { sudo: true }),
        (e: Error & { code: string; hint: string }) => {
          assert.equal(e.code, 'EDGE_SUDO_FAILED');
          assert.match(e.hint, /sudo: password/);
          return true;
        },
      );
    } finally {
      await r.close();
    }
  });
});

describe('connections', () => {
  test('a key the robot does not accept fails with EDGE_SSH_AUTH_FAILED and the fix', async () => {
    const keyFile = join(sshd.dir, 'host_ed25519');
    await assert.rejects(
      SshCommandRunner.connect(target({ keyFile }), options()),
      (e: Error & { code: string; hint: string }) => {
        assert.equal(e.code, 'EDGE_SSH_AUTH_FAILED');
        assert.match(e.hint, /ssh-copy-id/);
        return true;
      },
    );
  });

  test('a port nothing listens on fails with EDGE_SSH_UNREACHABLE', async () => {
    await assert.rejects(SshCommandRunner.connect(target({ port: 2222 }), options()), {
      code: 'EDGE_SSH_UNREACHABLE',
    });
  });

  test('root logs in without sudo', async () => {
    const r = await SshCommandRunner.connect(
      target({ user: 'root' }),
      options({ sudo: 'none', sudoPassword: undefined }),
    );
    try {
      assert.equal((await r.run(['id', '-u'], { sudo: true })).stdout, '0\n');
    } finally {
      await r.close();
    }
  });
});

describe('bootstrap site over SSH: two robots, lab layout, non-root users with sudo', () => {
  const siteDir = join(local, 'site-dir');
  const passwordFile = join(local, 'sudo-password');
  let inventoryPath: string;
  const root = () => `${scratch}/boot`;
  const capture = () => {
    const lines: string[] = [];
    return { lines, io: { out: (t: string) => lines.push(t), err: (t: string) => lines.push(t) } };
  };
  const opts = (over: Partial<ApplyCliOptions> = {}): ApplyCliOptions => ({
    file: inventoryPath,
    dryRun: false,
    acceptNewHostKeys: false,
    parallel: 2,
    siteDir,
    sudoPasswordFile: passwordFile,
    recheck: false,
    output: 'table',
    ...over,
  });
  const writeInventory = (hostKey2?: string) => {
    const elf = Buffer.alloc(64);
    elf.writeUInt32BE(0x7f454c46, 0);
    elf[5] = 1;
    elf.writeUInt16LE(0x3e, 18);
    writeFileSync(join(local, 'node'), elf);
    writeFileSync(join(local, 'agent.mjs'), 'export {};\n');
    inventoryPath = join(local, 'site.yaml');
    writeFileSync(
      inventoryPath,
      stringify({
        site: { id: 'ssh-lab' },
        robots: [
          {
            name: 'ssh1',
            address: sshd.address,
            ssh: { user: 'edgectl-test', keyFile: sshd.clientKeyFile },
            sudo: 'password',
            serverCapable: true,
            wifiInterface: 'eth0',
          },
          {
            name: 'ssh2',
            address: sshd2.address,
            ssh: {
              user: 'edgectl-test-np',
              keyFile: sshd2.clientKeyFile,
              ...(hostKey2 ? { hostKey: hostKey2 } : {}),
            },
            sudo: 'nopasswd',
            serverCapable: true,
            wifiInterface: 'eth0',
          },
        ],
        profile: 'lab',
        // Two voters: this test is about SSH, sudo and host keys, not failover.
        allowNoFailover: true,
        controlPlane: { runtime: 'lab', identityDir: '/var/lib/edgectl/lab/ssh-lab/identity' },
        install: { root: `${root()}/{robot}`, service: 'none' },
        bundle: { agent: 'agent.mjs', node: 'node' },
      }),
    );
  };

  test('the first run records host keys and installs; a second run, even rechecked, changes nothing', async () => {
    writeFileSync(passwordFile, `${SUDO_PASSWORD}\n`, { mode: 0o600 });
    writeInventory();
    const c = capture();
    await assert.rejects(runBootstrapSite(opts(), c.io, { tty: null }), {
      code: 'EDGE_BOOTSTRAP_INCOMPLETE',
    });
    assert.match(c.lines.join('\n'), /EDGE_HOST_KEY_UNKNOWN/);

    const first = (await runBootstrapSite(opts({ acceptNewHostKeys: true }), c.io, {
      tty: null,
    })) as ApplyReport;
    assert.ok(
      first.robots.every((r) => r.ok),
      c.lines.join('\n'),
    );
    assert.equal(readFileSync(join(siteDir, 'known_hosts'), 'utf8').split('\n').filter(Boolean).length, 2);
    const master = readFileSync(join(siteDir, 'site.key'), 'utf8').trim();
    for (const robot of ['ssh1', 'ssh2']) {
      const base = `${root()}/${robot}`;
      const st = statSync(`${base}/etc/edgectl/site-keys.json`);
      assert.equal(st.mode & 0o777, 0o600);
      assert.equal(st.uid, 0);
      // The robot's own keys; the master secret stays in the site directory.
      const keys = readFileSync(`${base}/etc/edgectl/site-keys.json`, 'utf8');
      assert.equal(parseRobotKeyFile(keys, robot).node, robot);
      assert.ok(!keys.includes(master));
      assert.equal(statSync(`${base}/etc/edgectl`).mode & 0o777, 0o700);
      assert.equal(statSync(`${base}/opt/edgectl/node/bin/node`).mode & 0o777, 0o755);
      assert.match(readFileSync(`${base}/etc/edgectl/agent.yaml`, 'utf8'), new RegExp(`id: ${robot}`));
    }

    const second = (await runBootstrapSite(opts(), c.io, { tty: null })) as ApplyReport;
    assert.ok(second.robots.every((r) => r.ok && r.outcomes.changed === 0 && r.outcomes['done-before'] > 0));
    const rechecked = (await runBootstrapSite(opts({ recheck: true }), c.io, { tty: null })) as ApplyReport;
    assert.ok(
      rechecked.robots.every((r) => r.ok && r.outcomes.changed === 0 && r.outcomes['done-before'] === 0),
      JSON.stringify(rechecked.robots),
    );
    const everything =
      c.lines.join('\n') + readFileSync(sshd.logFile, 'utf8') + readFileSync(sshd2.logFile, 'utf8');
    assert.ok(!everything.includes(SUDO_PASSWORD), 'the sudo password leaked');
    assert.ok(!everything.includes(master), 'the site master secret leaked');
  });

  test('a robot whose host key does not match the pinned one fails alone, with the fix', async () => {
    writeInventory(`SHA256:${'B'.repeat(43)}`);
    const c = capture();
    await assert.rejects(runBootstrapSite(opts({ recheck: true }), c.io, { tty: null }), {
      code: 'EDGE_BOOTSTRAP_INCOMPLETE',
    });
    const out = c.lines.join('\n');
    assert.match(out, /ssh2 failed at connect/);
    assert.match(
      out,
      /EDGE_HOST_KEY_MISMATCH: host key of ssh2 \(10\.77\.30\.2\) does not match the pinned key/,
    );
    assert.match(out, /robots\[1\]\.ssh\.hostKey in/);
    assert.match(out, /ssh1 +ok/);
  });

  test('uninstall removes everything bootstrap installed', async () => {
    writeInventory();
    const c = capture();
    await runUninstallSite({ ...opts(), yes: true }, c.io, { tty: null });
    for (const robot of ['ssh1', 'ssh2'])
      assert.deepEqual(readdirSync(`${root()}/${robot}`, { recursive: true }).sort(), [
        'etc',
        'opt',
        'var',
        'var/lib',
      ]);
  });
});
