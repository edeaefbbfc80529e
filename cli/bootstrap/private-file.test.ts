/**
 * The bootstrap machine's secret files, attacked: a link pre-placed at the temp name the kubeconfig
 * merge used to write through, a link at the kubeconfig itself, an existing 0644 kubeconfig, and a
 * group- or world-readable sudo password file. The first part runs `edgectl site ready`'s own code
 * (runSiteReady, with robots that report a ready site); the rest the functions it uses.
 */
import assert from 'node:assert/strict';
import {
  chmodSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { stringify } from 'yaml';
import { EdgeError } from '../../agent/errors.ts';
import type { CommandRunner } from '../../agent/exec/runner.ts';
import { runSiteReady, type BootstrapDeps } from '../ops/bootstrap.ts';
import { readPrivateFile, writePrivateFile } from './private-file.ts';
import { testPrivateKey } from './testing/test-key.ts';

const dir = mkdtempSync(join(tmpdir(), 'edgectl-private-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const ADMIN_KUBECONFIG = stringify({
  apiVersion: 'v1',
  kind: 'Config',
  clusters: [
    { name: 'default', cluster: { server: 'https://127.0.0.1:6443', 'certificate-authority-data': 'Q0E=' } },
  ],
  users: [{ name: 'default', user: { 'client-certificate-data': 'Q0VSVA==', 'client-key-data': 'S0VZ' } }],
  contexts: [{ name: 'default', context: { cluster: 'default', user: 'default' } }],
  'current-context': 'default',
});

/** A robot of a formed site: r1 leads term 3 and serves, the others are its ready workers. */
function readyRobot(name: string): CommandRunner {
  const status =
    name === 'r1'
      ? { node: name, role: 'leader', term: 3, leader: 'r1', lifecycle: 'leading.serving' }
      : { node: name, role: 'follower', term: 3, leader: 'r1', lifecycle: 'following.ready' };
  return {
    target: name,
    run: async () => ({ code: 0, stdout: JSON.stringify(status), stderr: '' }),
    writeFile: async () => assert.fail('site ready writes nothing on robots'),
    upload: async () => assert.fail('site ready uploads nothing'),
    readFile: async () => Buffer.from(ADMIN_KUBECONFIG),
    close: async () => {},
  };
}

function inventory(sudo: 'nopasswd' | 'password' = 'nopasswd'): string {
  const base = mkdtempSync(join(dir, 'inv-'));
  writeFileSync(join(base, 'id'), testPrivateKey(), { mode: 0o600 });
  const elf = Buffer.alloc(64);
  elf.writeUInt32BE(0x7f454c46, 0);
  elf[5] = 1;
  elf.writeUInt16LE(0x3e, 18);
  writeFileSync(join(base, 'node'), elf);
  writeFileSync(join(base, 'agent.mjs'), 'export {};\n');
  writeFileSync(
    join(base, 'site.yaml'),
    stringify({
      site: { id: 'priv' },
      robots: ['r1', 'r2', 'r3'].map((n, i) => ({
        name: n,
        address: `10.77.31.${i + 1}`,
        ssh: { user: 'edgectl', keyFile: 'id' },
        sudo: n === 'r2' ? sudo : 'nopasswd',
        serverCapable: true,
      })),
      bundle: { agent: 'agent.mjs', node: 'node' },
      controlPlane: { runtime: 'lab', identityDir: '/var/lib/edgectl/lab/priv/identity' },
    }),
  );
  return join(base, 'site.yaml');
}

const deps = (kubeconfig: string): BootstrapDeps => ({
  connect: async (r) => readyRobot(r.name),
  env: { ...process.env, KUBECONFIG: kubeconfig },
  tty: null,
});

const quiet = { out: () => {}, err: () => {} };

describe('edgectl site ready writes its kubeconfigs as private files', () => {
  test('a link pre-placed at the old fixed temp name is not followed', async () => {
    const home = mkdtempSync(join(dir, 'kube-'));
    const victim = join(dir, 'victim-1');
    writeFileSync(victim, 'the victim\n');
    const merged = join(home, 'config');
    symlinkSync(victim, `${merged}.edgectl-tmp`);
    const file = inventory();
    await runSiteReady(
      {
        file,
        siteDir: join(home, 'site'),
        acceptNewHostKeys: false,
        timeoutMs: 10_000,
        mergeKubeconfig: true,
        output: 'json',
      },
      quiet,
      deps(merged),
    );
    assert.equal(readFileSync(victim, 'utf8'), 'the victim\n');
    assert.match(readFileSync(merged, 'utf8'), /edgectl-priv/);
    assert.equal(statSync(merged).mode & 0o777, 0o600);
    // Only the merged file, the untouched link and the site directory: no temp file is left.
    assert.deepEqual(readdirSync(home).sort(), ['config', 'config.edgectl-tmp', 'site']);
  });

  test('an existing 0644 kubeconfig (merged, and the site one) becomes 0600; other entries stay', async () => {
    const home = mkdtempSync(join(dir, 'kube-'));
    const merged = join(home, 'config');
    writeFileSync(
      merged,
      stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'prod', cluster: { server: 'https://prod' } }],
      }),
      { mode: 0o644 },
    );
    chmodSync(merged, 0o644);
    const site = join(home, 'site-kubeconfig');
    writeFileSync(site, 'old\n', { mode: 0o644 });
    chmodSync(site, 0o644);
    await runSiteReady(
      {
        file: inventory(),
        siteDir: join(home, 'site'),
        kubeconfig: site,
        acceptNewHostKeys: false,
        timeoutMs: 10_000,
        mergeKubeconfig: true,
        output: 'json',
      },
      quiet,
      deps(merged),
    );
    assert.equal(statSync(merged).mode & 0o777, 0o600);
    assert.equal(statSync(site).mode & 0o777, 0o600);
    assert.match(readFileSync(merged, 'utf8'), /name: prod/);
  });

  test('a group- or world-readable --sudo-password-file is refused before any robot is asked', async () => {
    const password = join(dir, 'sudo-password');
    writeFileSync(password, 'hunter2\n');
    for (const mode of [0o644, 0o640, 0o604]) {
      chmodSync(password, mode);
      let connects = 0;
      await assert.rejects(
        runSiteReady(
          {
            file: inventory('password'),
            acceptNewHostKeys: false,
            sudoPasswordFile: password,
            timeoutMs: 10_000,
            mergeKubeconfig: false,
            output: 'json',
          },
          quiet,
          { ...deps(join(dir, 'unused')), connect: async (r) => (connects++, readyRobot(r.name)) },
        ),
        (e: unknown) => {
          assert.ok(e instanceof EdgeError);
          assert.equal(e.code, 'EDGE_SECRET_FILE_MODE');
          assert.equal(e.exitCode, 2, 'a usage error, not a bug');
          assert.match(e.message, new RegExp(`mode 0${mode.toString(8)}`));
          assert.equal(e.hint, `chmod 600 ${password}`);
          return true;
        },
      );
      assert.equal(connects, 0);
    }
    chmodSync(password, 0o600);
    assert.equal(readPrivateFile(password, '--sudo-password-file'), 'hunter2\n');
  });
});

describe('writePrivateFile and readPrivateFile', () => {
  test('a link at the target is replaced by the file, not followed', () => {
    const victim = join(dir, 'victim-2');
    writeFileSync(victim, 'the victim\n');
    const target = join(dir, 'linked-kubeconfig');
    symlinkSync(victim, target);
    writePrivateFile(target, 'secret\n');
    assert.equal(readFileSync(victim, 'utf8'), 'the victim\n');
    assert.ok(lstatSync(target).isFile());
    assert.equal(statSync(target).mode & 0o777, 0o600);
  });

  test('a restrictive umask or a wide one, the file is 0600', () => {
    const target = join(dir, 'umask');
    const old = process.umask(0o000);
    try {
      writePrivateFile(target, 'x');
      assert.equal(statSync(target).mode & 0o777, 0o600);
    } finally {
      process.umask(old);
    }
  });

  test('a missing directory fails and leaves nothing; a password file that is no file is refused', () => {
    assert.throws(() => writePrivateFile(join(dir, 'no-such-dir', 'config'), 'x'), { code: 'ENOENT' });
    const sub = join(dir, 'a-directory');
    mkdirSync(sub, { mode: 0o700 });
    assert.throws(() => readPrivateFile(sub, '--sudo-password-file'), /is not a regular file/);
    assert.throws(() => readPrivateFile(join(dir, 'missing'), '--sudo-password-file'), {
      code: 'EDGE_SECRET_FILE',
    });
  });
});
