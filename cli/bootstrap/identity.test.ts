import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { ConfigError, EdgeError } from '../../agent/errors.ts';
import { generateSiteIdentity, issueEtcdMemberCertificates, readSiteIdentity } from './identity-files.ts';
import {
  caHashOfBundle,
  formatToken,
  identityPlacement,
  identityPlan,
  K3S_CA_FILES,
  leafCertificate,
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

describe("voters' etcd certificates (openssl)", () => {
  let dir = '';
  let id = '';
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'edgectl-etcd-certs-'));
    id = join(dir, 'id');
    await generateSiteIdentity(id, { site: 'dock-a', now: 1_800_000_000_000 });
  });
  after(() => rm(dir, { recursive: true, force: true }));

  /** As a TLS server checks a client: `sent` is the chain the client presents with its certificate. */
  const verify = (caFile: string, cert: string, sent?: string) =>
    execFileAsync('openssl', [
      'verify',
      '-partial_chain',
      '-CAfile',
      caFile,
      ...(sent ? ['-untrusted', sent] : []),
      cert,
    ]).then(
      () => true,
      () => false,
    );

  test('a voter gets a peer certificate for its address, trusted by the leaf peer CA alone', async () => {
    assert.deepEqual(await issueEtcdMemberCertificates(id, [{ name: 'r1', ip: '10.20.0.11' }]), ['r1']);
    const m = join(id, 'etcd-members', 'r1');
    const peer = new X509Certificate(await readFile(join(m, 'peer.crt')));
    assert.match(peer.subjectAltName ?? '', /IP Address:10\.20\.0\.11/);
    assert.equal(peer.ca, false);
    const server = new X509Certificate(await readFile(join(m, 'server.crt')));
    assert.match(server.subjectAltName ?? '', /IP Address:127\.0\.0\.1/);
    const peerCa = join(dir, 'peer-ca-leaf.crt');
    await writeFile(peerCa, leafCertificate(await readFile(join(id, 'tls/etcd/peer-ca.crt'), 'utf8')));
    const clientCa = join(dir, 'server-ca-leaf.crt');
    await writeFile(clientCa, leafCertificate(await readFile(join(id, 'tls/etcd/server-ca.crt'), 'utf8')));
    assert.ok(await verify(peerCa, join(m, 'peer.crt')));
    assert.ok(await verify(clientCa, join(m, 'client.crt')));
    assert.ok(!(await verify(peerCa, join(m, 'client.crt'))), 'a client certificate is no peer');
    for (const f of ['peer.key', 'server.key', 'client.key', 'peer.crt'])
      assert.equal((await stat(join(m, f))).mode & 0o777, 0o600, f);
  });

  test("a certificate of another leaf CA (a worker's kubelet one) is no etcd peer: only the leaf CA is trusted", async () => {
    // What a worker holds is signed by tls/client-ca, under the same intermediate and root.
    const work = join(dir, 'kubelet');
    await execFileAsync('mkdir', ['-p', work]);
    const key = join(work, 'k.key');
    const csr = join(work, 'k.csr');
    const crt = join(work, 'k.crt');
    await execFileAsync('openssl', ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', key]);
    await execFileAsync('openssl', [
      'req',
      '-new',
      '-key',
      key,
      '-subj',
      '/CN=system:node:vac-1',
      '-out',
      csr,
    ]);
    const caCrt = join(work, 'client-ca.crt');
    await writeFile(caCrt, leafCertificate(await readFile(join(id, 'tls/client-ca.crt'), 'utf8')));
    await execFileAsync('openssl', [
      'x509',
      '-req',
      '-in',
      csr,
      '-CA',
      caCrt,
      '-CAkey',
      join(id, 'tls/client-ca.key'),
      '-set_serial',
      '0x1234',
      '-days',
      '30',
      '-out',
      crt,
    ]);
    const fullChain = join(id, 'tls/etcd/peer-ca.crt');
    const leafOnly = join(dir, 'peer-ca-leaf-2.crt');
    await writeFile(leafOnly, leafCertificate(await readFile(fullChain, 'utf8')));
    assert.ok(
      await verify(fullChain, crt, caCrt),
      'with the chain as the trust pool, the kubelet certificate would pass: why the chain is never shipped',
    );
    assert.ok(!(await verify(leafOnly, crt, caCrt)), 'with the leaf peer CA alone it is refused');
  });

  test('issued once; issued again when the voter has a new address', async () => {
    assert.deepEqual(await issueEtcdMemberCertificates(id, [{ name: 'r1', ip: '10.20.0.11' }]), []);
    assert.deepEqual(await issueEtcdMemberCertificates(id, [{ name: 'r1', ip: '10.20.0.99' }]), ['r1']);
    const peer = new X509Certificate(await readFile(join(id, 'etcd-members/r1/peer.crt')));
    assert.match(peer.subjectAltName ?? '', /IP Address:10\.20\.0\.99/);
    const material = await readSiteIdentity(id);
    assert.ok(material.files.has('etcd-members/r1/peer.key'), 'read back with the identity');
  });
});
