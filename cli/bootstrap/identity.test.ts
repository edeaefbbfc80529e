import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { ConfigError, EdgeError } from '../../agent/errors.ts';
import { generateSiteIdentity, readSiteIdentity } from './identity-files.ts';
import {
  caHashOfBundle,
  formatToken,
  identityPlacement,
  identityPlan,
  K3S_CA_FILES,
  nodePassword,
  parseToken,
  pemCertificates,
  sha256Hex,
  type SiteIdentityMaterial,
} from './identity.ts';

const execFileAsync = promisify(execFile);
const HASH = 'a'.repeat(64);

describe('token format', () => {
  test('formatToken builds K10<hash>::<user>:<password> and parseToken reads it back', () => {
    const t = formatToken(HASH, 'server', 's3cret');
    assert.equal(t, `K10${HASH}::server:s3cret`);
    assert.deepEqual(parseToken(`${t}\n`), { caHash: HASH, user: 'server', password: 's3cret' });
  });

  test('a password may contain colons: only the first colon separates the user', () => {
    assert.deepEqual(parseToken(`K10${HASH}::node:a:b`), { caHash: HASH, user: 'node', password: 'a:b' });
  });

  test('short tokens, bad hashes and empty passwords are not secure tokens', () => {
    for (const t of [
      'secret',
      `K10abc::server:x`,
      `K10${HASH}::server:`,
      `K10${HASH}::nouser`,
      `K10${HASH}:server:x`,
    ]) {
      assert.equal(parseToken(t), null, t);
    }
    assert.throws(() => formatToken('ABC', 'server', 'x'), /64 lowercase hex/);
    assert.throws(() => formatToken(HASH, 'node', ''), /must not be empty/);
  });
});

describe('node password', () => {
  test('is stable per robot and differs between robots and between sites', () => {
    assert.equal(nodePassword('k1', 'r1'), nodePassword('k1', 'r1'));
    assert.notEqual(nodePassword('k1', 'r1'), nodePassword('k1', 'r2'));
    assert.notEqual(nodePassword('k1', 'r1'), nodePassword('k2', 'r1'));
    assert.match(nodePassword('k1', 'r1'), /^[0-9a-f]{64}$/);
  });
});

describe('identity placement', () => {
  test('a worker gets only the agent token', () => {
    assert.deepEqual(identityPlacement('worker'), [
      { from: 'tokens/agent-token', to: '/etc/edgectl/k3s/agent-token', mode: 0o600 },
    ]);
  });

  test('a server-capable robot gets every CA file k3s requires and both tokens, all 0600', () => {
    const placed = identityPlacement('server');
    assert.deepEqual(
      placed.filter((p) => p.from.startsWith('tls/')).map((p) => p.to),
      K3S_CA_FILES.map((f) => `/var/lib/rancher/k3s/server/tls/${f}`),
    );
    assert.ok(placed.some((p) => p.to === '/etc/edgectl/k3s/server-token'));
    assert.ok(placed.some((p) => p.to === '/etc/edgectl/k3s/agent-token'));
    assert.ok(placed.every((p) => p.mode === 0o600));
  });

  test('no robot ever gets the root or intermediate CA, nor the node-password key', () => {
    for (const role of ['server', 'worker'] as const) {
      for (const p of identityPlacement(role)) {
        assert.ok(!p.from.startsWith('offline/'), p.from);
        assert.notEqual(p.from, 'node-password.key');
      }
    }
  });

  test('identityPlan writes secrets only as secret writeFile steps, and the derived node password', () => {
    const files = new Map([['tokens/agent-token', 'TOKEN\n']]);
    const material = { manifest: {} as SiteIdentityMaterial['manifest'], files, nodePasswordKey: 'k' };
    const steps = identityPlan('worker', 'r7', material);
    assert.deepEqual(
      steps.map((s) => (s.kind === 'writeFile' ? [s.path, s.mode, s.secret, s.owner] : s.kind)),
      [
        ['/etc/edgectl/k3s/agent-token', 0o600, true, 'root:root'],
        ['/etc/rancher/node/password', 0o600, true, 'root:root'],
      ],
    );
    const pw = steps[1];
    assert.equal(pw?.kind === 'writeFile' ? pw.content : '', `${nodePassword('k', 'r7')}\n`);
  });
});

describe('site identity generation (openssl)', () => {
  let root = '';
  let dir = '';
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'edgectl-identity-'));
    dir = join(root, 'harbor');
    await generateSiteIdentity(dir, { site: 'harbor', now: 1_700_000_000_000 });
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  test('writes every CA file k3s requires, and each leaf .crt is the chain leaf, intermediate, root', async () => {
    const rootPem = await readFile(join(dir, 'offline/root-ca.pem'), 'utf8');
    const interPem = await readFile(join(dir, 'offline/intermediate-ca.pem'), 'utf8');
    for (const f of K3S_CA_FILES) await stat(join(dir, 'tls', f));
    for (const type of ['client', 'server', 'request-header', 'etcd/peer', 'etcd/server']) {
      const chain = pemCertificates(await readFile(join(dir, 'tls', `${type}-ca.crt`), 'utf8'));
      assert.equal(chain.length, 3, type);
      const [leaf, inter, rootCert] = chain.map((c) => new X509Certificate(c));
      assert.ok(leaf && inter && rootCert);
      assert.ok(leaf.ca && inter.ca && rootCert.ca, `${type}: all three are CAs`);
      assert.ok(leaf.verify(inter.publicKey), `${type}: leaf signed by the intermediate`);
      assert.ok(inter.verify(rootCert.publicKey), `${type}: intermediate signed by the root`);
      assert.equal(inter.fingerprint256, new X509Certificate(interPem).fingerprint256);
      assert.equal(rootCert.fingerprint256, new X509Certificate(rootPem).fingerprint256);
    }
  });

  test('openssl itself verifies every leaf CA against the root and intermediate', async () => {
    const { stdout } = await execFileAsync('openssl', [
      'verify',
      '-CAfile',
      join(dir, 'offline/root-ca.pem'),
      '-untrusted',
      join(dir, 'offline/intermediate-ca.pem'),
      ...['client', 'server', 'request-header', 'etcd/peer', 'etcd/server'].map((t) =>
        join(dir, 'tls', `${t}-ca.crt`),
      ),
    ]);
    assert.equal(stdout.match(/: OK/g)?.length, 5);
  });

  test('the token CA hash is the root certificate fingerprint, as openssl prints it', async () => {
    const { stdout } = await execFileAsync('openssl', [
      'x509',
      '-noout',
      '-fingerprint',
      '-sha256',
      '-in',
      join(dir, 'offline/root-ca.pem'),
    ]);
    const fingerprint = stdout.trim().split('=')[1]?.replaceAll(':', '').toLowerCase();
    const bundle = await readFile(join(dir, 'tls/server-ca.crt'), 'utf8');
    assert.equal(caHashOfBundle(bundle), fingerprint);
    const server = parseToken(await readFile(join(dir, 'tokens/server-token'), 'utf8'));
    const agent = parseToken(await readFile(join(dir, 'tokens/agent-token'), 'utf8'));
    assert.equal(server?.caHash, fingerprint);
    assert.equal(server?.user, 'server');
    assert.equal(agent?.caHash, fingerprint);
    assert.equal(agent?.user, 'node');
    assert.notEqual(server?.password, agent?.password);
  });

  test('a single-certificate bundle hashes as its bytes (k3s legacy hash)', async () => {
    const rootPem = await readFile(join(dir, 'offline/root-ca.pem'), 'utf8');
    assert.equal(caHashOfBundle(rootPem), sha256Hex(rootPem));
  });

  test('every file is 0600, every directory 0700', async () => {
    for (const rel of ['', 'tls', 'tls/etcd', 'offline', 'tokens']) {
      assert.equal((await stat(join(dir, rel))).mode & 0o777, 0o700, rel || '.');
    }
    for (const rel of [
      'identity.json',
      'tls/service.key',
      'tls/server-ca.key',
      'offline/root-ca.key',
      'tokens/server-token',
      'node-password.key',
    ]) {
      assert.equal((await stat(join(dir, rel))).mode & 0o777, 0o600, rel);
    }
  });

  test('service.key is an RSA key, as k3s expects for service-account signing', async () => {
    const { stdout } = await execFileAsync('openssl', [
      'pkey',
      '-in',
      join(dir, 'tls/service.key'),
      '-noout',
      '-text',
    ]);
    assert.match(stdout, /Private-Key: \(2048 bit/);
  });

  test('a site has one identity: generating again refuses', async () => {
    await assert.rejects(
      generateSiteIdentity(dir, { site: 'harbor', now: 1 }),
      (e: unknown) => e instanceof EdgeError && e.code === 'EDGE_IDENTITY_EXISTS',
    );
  });

  test('readSiteIdentity loads it, and the manifest names the CA hash', async () => {
    const id = await readSiteIdentity(dir);
    assert.equal(id.manifest.site, 'harbor');
    assert.equal(id.manifest.caHash, parseToken(id.files.get('tokens/server-token') ?? '')?.caHash);
    assert.equal(id.files.size, K3S_CA_FILES.length + 2);
    assert.match(id.nodePasswordKey, /^[0-9a-f]{64}$/);
  });

  test('readSiteIdentity lists every problem at once: a world-readable key and a foreign token', async () => {
    const copy = join(root, 'broken');
    await execFileAsync('cp', ['-a', dir, copy]);
    await chmod(join(copy, 'tls/server-ca.key'), 0o644);
    await writeFile(join(copy, 'tokens/agent-token'), `${formatToken('b'.repeat(64), 'node', 'x')}\n`, {
      mode: 0o600,
    });
    await assert.rejects(readSiteIdentity(copy), (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.equal(e.problems.length, 2);
      assert.match(e.problems.join('\n'), /server-ca.key: mode 644/);
      assert.match(e.problems.join('\n'), /agent-token: its CA hash is not the hash/);
      return true;
    });
  });
});
