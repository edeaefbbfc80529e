/**
 * The snapshot receiver and store against pushes on loopback: what the leader of the current term
 * sends is kept; every other push (keyless, foreign key, another robot, an old term, a hostile
 * record, an over-long or broken body, a second upload at once) is refused before it can write
 * anything, and the store never holds a file outside its directory or loses a committed snapshot
 * to one that was never committed. The AES-256-GCM runs in a child process (snapshot-cipher.ts):
 * its bytes are node:crypto's, a tampered or cut body is refused as it was in process, a child that
 * dies fails only its push, and a process that ships, receives and restores one never loads
 * node:crypto.
 */
import assert from 'node:assert/strict';
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { spawnSync } from 'node:child_process';
import { request } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, beforeEach, describe, test } from 'node:test';
import { build } from 'esbuild';
import { EdgeError } from '../errors.ts';
import type { SiteView, SnapshotRecord } from './runtime.ts';
import { childSnapshotCipher, SNAPSHOT_CIPHER, type SnapshotCipher } from './snapshot-cipher.ts';
import { sharedSnapshotKeys } from './testing/snapshot-keys.ts';
import {
  preparePush,
  pushSnapshot,
  SnapshotReceiver,
  SnapshotStore,
  type PreparedPush,
  type PushResult,
} from './snapshots.ts';

const SITE_KEY = Buffer.alloc(32, 5);
const keys = sharedSnapshotKeys(SITE_KEY, ['r1', 'r2', 'r3']);

function snapshot(
  name: string,
  epoch: number,
  content: Buffer,
  from = 'r1',
  createdAt = '2026-11-22T09:00:00.000Z',
) {
  const record: SnapshotRecord = {
    name,
    epoch,
    from,
    sha256: createHash('sha256').update(content).digest('hex'),
    size: content.length,
    createdAt,
  };
  return { record, content };
}

let root: string;
let storeDir: string;
let store: SnapshotStore;
let receiver: SnapshotReceiver;
let leadership = { term: 7, leader: 'r1' as string | null };
let committed: SnapshotRecord[] = [];
const view: SiteView = { leadership: () => leadership, committedSnapshots: () => committed };

before(async () => {
  root = mkdtempSync(join(tmpdir(), 'edgectl-snap-'));
  storeDir = join(root, 'var', 'lib', 'store');
  store = new SnapshotStore(storeDir);
  receiver = await SnapshotReceiver.start({ self: 'r2', address: '127.0.0.1', port: 0, keys, store });
  receiver.setSiteView(view);
});
after(async () => {
  await receiver.close();
  rmSync(root, { recursive: true, force: true });
});
beforeEach(() => {
  leadership = { term: 7, leader: 'r1' };
  committed = [];
  for (const f of readdirSync(storeDir)) rmSync(join(storeDir, f), { force: true });
});

const to = () => ({ id: 'r2', host: '127.0.0.1' });
const push = (
  s: { record: SnapshotRecord; content: Buffer },
  o: { from?: string; term?: number; k?: typeof keys; cipher?: SnapshotCipher } = {},
) =>
  pushSnapshot({
    cipher: o.cipher,
    self: o.from ?? 'r1',
    term: o.term ?? 7,
    to: to(),
    record: s.record,
    content: s.content,
    keys: o.k ?? keys,
    port: receiver.port,
  });

/** Counts of the receiver's results since `before`. */
function delta(before: Readonly<Record<PushResult, number>>): Partial<Record<PushResult, number>> {
  const now = receiver.stats();
  return Object.fromEntries(
    Object.entries(now).flatMap(([k, n]) =>
      n !== before[k as PushResult] ? [[k, n - before[k as PushResult]]] : [],
    ),
  );
}

/** The sealed body of `p`, whole (the cipher streams it a chunk at a time). */
const sealedBody = async (p: PreparedPush, content: Uint8Array): Promise<Buffer> =>
  Buffer.concat((await p.body(content).toArray()) as Buffer[]);

/** Every file in the store: a refused push must leave none, not even a partial upload. */
const files = () => readdirSync(storeDir).sort();

/** rawPut sends headers and a body over a plain socket, as a hostile client would; resolves the reply. */
function rawPut(
  fields: Record<string, string | number>,
  body: Iterable<Buffer>,
  o: { chunked?: boolean; hangUp?: boolean } = {},
): Promise<string> {
  const chunked = o.chunked ?? false;
  return new Promise((resolve) => {
    const sock = connect(receiver.port, '127.0.0.1');
    let reply = '';
    sock.on('data', (d) => (reply += d.toString('latin1')));
    sock.on('error', () => {});
    sock.on('close', () => resolve(reply));
    const head = Object.entries({
      host: '127.0.0.1',
      ...fields,
      ...(chunked ? { 'transfer-encoding': 'chunked' } : {}),
    })
      .map(([k, v]) => `${k}: ${v}\r\n`)
      .join('');
    sock.write(`PUT /snapshots HTTP/1.1\r\n${head}\r\n`);
    for (const b of body) {
      if (sock.destroyed) break;
      sock.write(
        chunked ? Buffer.concat([Buffer.from(`${b.length.toString(16)}\r\n`), b, Buffer.from('\r\n')]) : b,
      );
    }
    if (chunked && !sock.destroyed) sock.write('0\r\n\r\n');
    if (o.hangUp) sock.end(() => sock.destroy());
  });
}

describe('snapshot pushes', () => {
  test('the leader of the current term pushes a snapshot: the receiver keeps the same bytes and record', async () => {
    const s = snapshot('e7-r1-a', 7, randomBytes(3 * 1024 * 1024 + 17));
    const out = await push(s);
    assert.equal(out.kept, true, out.reason);
    assert.deepEqual(readFileSync(store.path(s.record)), s.content);
    assert.deepEqual(store.records(), [s.record]);
    assert.ok(!readFileSync(store.path(s.record)).equals(Buffer.alloc(0)));
  });

  test('the body is sealed: the snapshot does not cross the network in clear', async () => {
    const s = snapshot('e7-r1-clear', 7, Buffer.from('apiVersion: v1\nkind: Secret\n'.repeat(4096)));
    const p = preparePush({ self: 'r1', term: 7, to: 'r2', record: s.record, keys })!;
    const wire = Buffer.concat([Buffer.from(JSON.stringify(p.fields)), await sealedBody(p, s.content)]);
    assert.equal(wire.indexOf('kind: Secret'), -1);
  });

  test('a captured push replayed later is refused once the term has moved on', async () => {
    const s = snapshot('e7-r1-replay', 7, randomBytes(8192));
    const p = preparePush({ self: 'r1', term: 7, to: 'r2', record: s.record, keys })!;
    const body = await sealedBody(p, s.content);
    const fields = { ...p.fields, 'content-length': body.length };
    assert.match(await rawPut(fields, [body]), /^HTTP\/1\.1 204 /);
    // r1 leads again, at a later term: the old push is refused, though r1 sent it.
    leadership = { term: 8, leader: 'r1' };
    rmSync(store.path(s.record));
    assert.match(await rawPut(fields, [body]), /^HTTP\/1\.1 409 [\s\S]*stale-term: term 7 is over/);
    assert.ok(!existsSync(store.path(s.record)));
  });

  test('without the key, with another site key, or as a robot that takes no part in snapshots: refused, nothing written', async () => {
    const s = snapshot('e7-r1-b', 7, randomBytes(4096));
    const b = receiver.stats();
    const noHeader = await rawPut({ 'content-length': s.content.length }, [s.content]);
    assert.match(noHeader, /^HTTP\/1\.1 401 /);
    const foreign = await push(s, { k: sharedSnapshotKeys(Buffer.alloc(32, 6), ['r1', 'r2']) });
    assert.deepEqual([foreign.kept, foreign.status], [false, 401]);
    // A worker holding the site key is not among the servers: the receiver has no secret for it.
    const workerKeys = sharedSnapshotKeys(SITE_KEY, ['r1', 'r2', 'w9']);
    leadership = { term: 7, leader: 'w9' };
    const worker = await push({ ...s, record: { ...s.record, from: 'w9' } }, { from: 'w9', k: workerKeys });
    assert.deepEqual([worker.kept, worker.status], [false, 401]);
    assert.deepEqual(delta(b), { unauthenticated: 3 });
    assert.deepEqual(files(), []);
  });

  test('a robot of the site that is not the leader of the current term is refused, with the reason', async () => {
    const s = snapshot('e7-r3-c', 7, randomBytes(4096), 'r3');
    const b = receiver.stats();
    const notLeader = await push(s, { from: 'r3' });
    assert.deepEqual([notLeader.kept, notLeader.status], [false, 409]);
    assert.match(notLeader.reason, /^not-leader: r3 is not the leader of term 7 \(r1\)/);
    const old = snapshot('e6-r1-c', 6, randomBytes(4096));
    const stale = await push(old, { term: 6 });
    assert.match(stale.reason, /^stale-term: term 6 is over; this robot is at term 7/);
    const ahead = await push(old, { term: 8 });
    assert.match(ahead.reason, /^not-leader/);
    leadership = { term: 7, leader: null };
    const noLeader = await push(snapshot('e7-r1-c', 7, randomBytes(10)));
    assert.match(noLeader.reason, /^not-leader/);
    leadership = { term: 7, leader: 'r2' };
    const toItself = await push(snapshot('e7-r2-c', 7, randomBytes(10), 'r2'), { from: 'r2' });
    assert.match(toItself.reason, /^not-leader/);
    assert.deepEqual(delta(b), { 'not-leader': 4, 'stale-term': 1 });
    assert.deepEqual(files(), []);
  });

  test('a receiver that does not know the election yet refuses every push', async () => {
    const fresh = await SnapshotReceiver.start({ self: 'r2', address: '127.0.0.1', port: 0, keys, store });
    try {
      const s = snapshot('e7-r1-d', 7, randomBytes(100));
      const out = await pushSnapshot({ self: 'r1', term: 7, to: to(), ...s, keys, port: fresh.port });
      assert.match(out.reason, /^not-leader: this robot does not follow the election yet/);
    } finally {
      await fresh.close();
    }
  });

  test('a push addressed to another robot is refused', async () => {
    const s = snapshot('e7-r1-e', 7, randomBytes(100));
    const p = preparePush({ self: 'r1', term: 7, to: 'r3', record: s.record, keys })!;
    const reply = await rawPut({ ...p.fields, 'content-length': p.header.size }, [
      await sealedBody(p, s.content),
    ]);
    assert.match(reply, /^HTTP\/1\.1 421 .*\r\n[\s\S]*misdirected: addressed to r3, not r2/);
    assert.deepEqual(files(), []);
  });

  test('a hostile record from the leader itself: path names, an absurd epoch, a record of another robot', async () => {
    // Were the name used as given, these would land here, outside the store.
    const cron = join(root, 'var', 'etc', 'cron.d');
    mkdirSync(cron, { recursive: true });
    const content = Buffer.from('* * * * * root touch /tmp/pwned\n');
    const b = receiver.stats();
    for (const name of [
      '../../etc/cron.d/x',
      '../x',
      '/etc/cron.d/x',
      '.hidden',
      'a/b',
      'x.json',
      '..',
      'a\nb',
    ]) {
      const out = await push(snapshot(name, 7, content));
      assert.deepEqual([out.kept, out.status], [false, 400], name);
      assert.match(out.reason, /^malformed: record: name must be a plain file name/, name);
    }
    for (const epoch of [2 ** 53, Number.MAX_SAFE_INTEGER, 8]) {
      const out = await push(snapshot('e-absurd', epoch, content));
      assert.equal(out.kept, false, String(epoch));
    }
    const other = await push(snapshot('e7-r3', 7, content, 'r3'));
    assert.match(other.reason, /^bad-record: the snapshot was taken by r3, not by its sender/);
    assert.deepEqual(delta(b), { malformed: 9, 'bad-record': 3 });
    assert.deepEqual(readdirSync(cron), []);
    assert.deepEqual(files(), []);
  });

  test('a second upload while one is running is refused at once; the first is kept', async () => {
    const first = snapshot('e7-r1-f', 7, randomBytes(256 * 1024));
    const p = preparePush({ self: 'r1', term: 7, to: 'r2', record: first.record, keys })!;
    const sealed = await sealedBody(p, first.content);
    // The first upload sends half its body, then waits.
    const req = request({
      host: '127.0.0.1',
      port: receiver.port,
      method: 'PUT',
      path: '/snapshots',
      agent: false,
      headers: { ...p.fields, 'content-length': sealed.length },
    });
    const firstDone = new Promise<number>((resolve, reject) => {
      req.on('response', (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
    });
    req.write(sealed.subarray(0, sealed.length >> 1));
    // The receiver has taken the first upload once its body has started to arrive in the store.
    while (!readdirSync(storeDir).some((f) => f.endsWith('.part')))
      await new Promise((r) => setTimeout(r, 5));
    const second = await push(snapshot('e7-r1-g', 7, randomBytes(1024)));
    assert.deepEqual([second.kept, second.status], [false, 503]);
    assert.match(second.reason, /^busy: another snapshot is being received/);
    req.end(sealed.subarray(sealed.length >> 1));
    assert.equal(await firstDone, 204);
    assert.deepEqual(store.records(), [first.record]);
  });

  test('a body longer than its authenticated header announced is cut off and leaves nothing', async () => {
    const s = snapshot('e7-r1-h', 7, randomBytes(64 * 1024));
    const p = preparePush({ self: 'r1', term: 7, to: 'r2', record: s.record, keys })!;
    const b = receiver.stats();
    // As content-length: refused before the body.
    const declared = await rawPut({ ...p.fields, 'content-length': p.header.size * 4 }, [
      Buffer.alloc(p.header.size * 4),
    ]);
    assert.match(declared, /^HTTP\/1\.1 400 [\s\S]*content-length \d+ is not the \d+ bytes announced/);
    // Chunked, with no length given: the receiver reads up to what was announced, then cuts it off.
    const sealed = await sealedBody(p, s.content);
    const longer = [sealed, ...Array.from({ length: 64 }, () => randomBytes(64 * 1024))];
    await rawPut(p.fields, longer, { chunked: true });
    assert.deepEqual(delta(b), { malformed: 1, 'too-large': 1 });
    assert.deepEqual(files(), []);
  });

  test('a body cut short, corrupted, or over the size limit leaves nothing', async () => {
    const s = snapshot('e7-r1-i', 7, randomBytes(64 * 1024));
    const b = receiver.stats();
    const p1 = preparePush({ self: 'r1', term: 7, to: 'r2', record: s.record, keys })!;
    const body1 = await sealedBody(p1, s.content);
    await rawPut({ ...p1.fields, 'content-length': body1.length }, [body1.subarray(0, 1000)], {
      hangUp: true,
    });
    // The receiver counts the upload that broke off once it sees the connection gone.
    while (receiver.stats().truncated === b.truncated) await new Promise((r) => setTimeout(r, 5));
    const p2 = preparePush({ self: 'r1', term: 7, to: 'r2', record: s.record, keys })!;
    const body2 = await sealedBody(p2, s.content);
    body2[body2.length >> 1]! ^= 1;
    const corrupt = await rawPut({ ...p2.fields, 'content-length': body2.length }, [body2]);
    assert.match(corrupt, /^HTTP\/1\.1 422 [\s\S]*corrupt: the body is not sealed for this header/);
    // A record whose digest is not that of the content (the leader's own mistake or malice).
    const lying = { record: { ...s.record, sha256: 'f'.repeat(64) }, content: s.content };
    const liar = await push(lying);
    assert.match(liar.reason, /^corrupt: the content does not match its record/);
    const small = await SnapshotReceiver.start({
      self: 'r2',
      address: '127.0.0.1',
      port: 0,
      keys,
      store,
      maxBytes: 1024,
    });
    small.setSiteView(view);
    try {
      const big = await pushSnapshot({ self: 'r1', term: 7, to: to(), ...s, keys, port: small.port });
      assert.deepEqual([big.status, big.reason.split(':')[0]], [413, 'too-large']);
    } finally {
      await small.close();
    }
    assert.deepEqual(delta(b), { truncated: 1, corrupt: 2 });
    assert.deepEqual(files(), []);
  });

  test('a header that never ends is dropped at the header timeout', async () => {
    const quick = await SnapshotReceiver.start({
      self: 'r2',
      address: '127.0.0.1',
      port: 0,
      keys,
      store,
      headersTimeoutMs: 200,
      idleTimeoutMs: 400,
    });
    try {
      const closed = await new Promise<boolean>((resolve) => {
        const sock = connect(quick.port, '127.0.0.1');
        sock.on('error', () => {});
        sock.on('close', () => resolve(true));
        sock.write('PUT /snapshots HTTP/1.1\r\nhost: x\r\n');
        // Then a byte now and then, never the blank line: only the header timeout ends it.
        const drip = setInterval(() => sock.write('x-a: b\r\n'), 50);
        sock.on('close', () => clearInterval(drip));
      });
      assert.equal(closed, true);
    } finally {
      await quick.close();
    }
  });

  test('an upload that stalls is dropped at the idle timeout, leaves nothing, and frees the slot', async () => {
    const quick = await SnapshotReceiver.start({
      self: 'r2',
      address: '127.0.0.1',
      port: 0,
      keys,
      store,
      idleTimeoutMs: 300,
    });
    quick.setSiteView(view);
    try {
      const s = snapshot('e7-r1-stall', 7, randomBytes(64 * 1024));
      const p = preparePush({ self: 'r1', term: 7, to: 'r2', record: s.record, keys })!;
      const body = await sealedBody(p, s.content);
      await new Promise<void>((resolve) => {
        const sock = connect(quick.port, '127.0.0.1');
        sock.on('error', () => {});
        sock.on('close', () => resolve());
        const head = Object.entries({ host: 'x', ...p.fields, 'content-length': body.length })
          .map(([k, v]) => `${k}: ${v}\r\n`)
          .join('');
        // Half the body, then silence.
        sock.write(`PUT /snapshots HTTP/1.1\r\n${head}\r\n`);
        sock.write(body.subarray(0, body.length >> 1));
      });
      while (quick.stats().truncated === 0) await new Promise((r) => setTimeout(r, 5));
      assert.deepEqual(files(), []);
      const next = await pushSnapshot({ self: 'r1', term: 7, to: to(), ...s, keys, port: quick.port });
      assert.equal(next.kept, true, next.reason);
    } finally {
      await quick.close();
    }
  });
});

/** The body key of the push between two robots that share SITE_KEY, as the wire format defines it. */
const BODY_KEY = hkdf(sha256, SITE_KEY, undefined, Buffer.from('edgectl snapshot push body'), 32);

/** AES-256-GCM by node:crypto in this process: the ciphertext, then the tag. */
function nodeSeal(nonceHex: string, aad: string, content: Uint8Array): Buffer {
  const c = createCipheriv('aes-256-gcm', BODY_KEY, Buffer.from(nonceHex, 'hex'));
  c.setAAD(Buffer.from(aad, 'latin1'));
  return Buffer.concat([c.update(content), c.final(), c.getAuthTag()]);
}

/**
 * A stand-in for the cipher's child that dies part-way: it reads the request and some of the body,
 * creates the file it was to write (open), writes a little (seal), and exits 3.
 */
function dyingCipher(): SnapshotCipher {
  const script = join(root, 'dying-crypt.mjs');
  writeFileSync(
    script,
    `import { writeFileSync } from 'node:fs';
let got = Buffer.alloc(0);
let started = false;
process.stdin.on('data', (d) => {
  got = Buffer.concat([got, d]);
  const nl = got.indexOf(10);
  if (nl >= 0 && !started) {
    started = true;
    const r = JSON.parse(got.subarray(0, nl).toString());
    if (r.into) writeFileSync(r.into, 'part of it', { flag: 'wx' });
    else process.stdout.write(Buffer.alloc(4096));
  }
  if (got.length > 256 * 1024) process.exit(3);
});
`,
  );
  return childSnapshotCipher(() => script);
}

describe('the snapshot cipher in its child process', () => {
  test("a push's body is node:crypto's AES-256-GCM of the content, byte for byte, under the body key, the nonce and the header", async () => {
    for (const size of [1, 1024 * 1024, 3 * 1024 * 1024 + 17]) {
      const s = snapshot(`e7-r1-wire-${size}`, 7, randomBytes(size));
      const p = preparePush({ self: 'r1', term: 7, to: 'r2', record: s.record, keys })!;
      const wire = nodeSeal(p.header.nonce, p.fields['x-edgectl-snapshot']!, s.content);
      assert.deepEqual(await sealedBody(p, s.content), wire, `${size} bytes`);
    }
  });

  test('it opens what node:crypto sealed into the file, with the verdict and the SHA-256 of the content', async () => {
    const content = randomBytes(2 * 1024 * 1024 + 5);
    const nonce = randomBytes(12);
    const aad = 'a header';
    const sealed = nodeSeal(nonce.toString('hex'), aad, content);
    const into = join(root, 'opened');
    const opening = SNAPSHOT_CIPHER.open({
      key: BODY_KEY,
      nonce,
      aad: Buffer.from(aad, 'latin1'),
      sealedLength: content.length,
      into,
    });
    opening.input.end(sealed);
    const out = await opening.outcome;
    assert.deepEqual(out, {
      ok: true,
      verdict: { complete: true, verified: true, sha256: createHash('sha256').update(content).digest('hex') },
    });
    assert.deepEqual(readFileSync(into), content);
    rmSync(into);
  });

  test('a tampered ciphertext, a tampered tag, another header as associated data and a cut body are refused as before, leaving nothing', async () => {
    const s = snapshot('e7-r1-tamper', 7, randomBytes(200 * 1024));
    const b = receiver.stats();
    const prepared = () => preparePush({ self: 'r1', term: 7, to: 'r2', record: s.record, keys })!;
    const put = (p: PreparedPush, body: Buffer) =>
      rawPut({ ...p.fields, 'content-length': p.header.size }, [body]);
    const p1 = prepared();
    const cipherText = await sealedBody(p1, s.content);
    cipherText[0]! ^= 1;
    assert.match(
      await put(p1, cipherText),
      /^HTTP\/1\.1 422 [\s\S]*corrupt: the body is not sealed for this header/,
    );
    const p2 = prepared();
    const tag = await sealedBody(p2, s.content);
    tag[tag.length - 1]! ^= 1;
    assert.match(
      await put(p2, tag),
      /^HTTP\/1\.1 422 [\s\S]*corrupt: the body is not sealed for this header/,
    );
    // The right key and nonce, but sealed for another push's header.
    const p3 = prepared();
    const other = prepared().fields['x-edgectl-snapshot']!;
    const wrongAad = nodeSeal(p3.header.nonce, other, s.content);
    assert.match(
      await put(p3, wrongAad),
      /^HTTP\/1\.1 422 [\s\S]*corrupt: the body is not sealed for this header/,
    );
    // Chunked, so that only its end tells the body is short.
    const p4 = prepared();
    const cut = (await sealedBody(p4, s.content)).subarray(0, 100 * 1024);
    assert.match(
      await rawPut(p4.fields, [cut], { chunked: true }),
      /^HTTP\/1\.1 400 [\s\S]*truncated: the body ended after 102400 of \d+ bytes/,
    );
    assert.deepEqual(delta(b), { corrupt: 3, truncated: 1 });
    assert.deepEqual(files(), []);
  });

  test('a cipher child that dies while it opens a push fails that push, removes its file and frees the slot', async () => {
    let opened = 0;
    const dying = dyingCipher();
    const cipher: SnapshotCipher = {
      seal: (p, content) => SNAPSHOT_CIPHER.seal(p, content),
      open: (p) => (opened++ === 0 ? dying : SNAPSHOT_CIPHER).open(p),
    };
    const r = await SnapshotReceiver.start({
      self: 'r2',
      address: '127.0.0.1',
      port: 0,
      keys,
      store,
      cipher,
    });
    r.setSiteView(view);
    try {
      const s = snapshot('e7-r1-dies', 7, randomBytes(1024 * 1024));
      const out = await pushSnapshot({ self: 'r1', term: 7, to: to(), ...s, keys, port: r.port });
      assert.equal(out.kept, false);
      while (r.stats().failed === 0) await new Promise((ok) => setTimeout(ok, 5));
      assert.deepEqual(files(), []);
      const again = await pushSnapshot({ self: 'r1', term: 7, to: to(), ...s, keys, port: r.port });
      assert.equal(again.kept, true, again.reason);
      assert.deepEqual(
        { failed: r.stats().failed, kept: r.stats().kept, busy: r.stats().busy },
        { failed: 1, kept: 1, busy: 0 },
      );
    } finally {
      await r.close();
    }
  });

  test('a process that sends, receives and restores a snapshot, bundled as the agent is, never loads node:crypto', async () => {
    const dir = join(root, 'modules');
    mkdirSync(dir);
    const here = import.meta.dirname;
    // CommonJS, so that built-ins load without their ES facade (agent/build.ts builtinsWithoutFacade).
    await build({
      stdin: {
        contents: `
import { sha256 } from '@noble/hashes/sha2.js';
import { pushSnapshot, SnapshotReceiver, SnapshotStore } from './snapshots.ts';
import { sharedSnapshotKeys } from './testing/snapshot-keys.ts';
void (async () => {
  const keys = sharedSnapshotKeys(Buffer.alloc(32, 1), ['r1', 'r2']);
  const store = new SnapshotStore(process.argv[2]);
  const receiver = await SnapshotReceiver.start({ self: 'r2', address: '127.0.0.1', port: 0, keys, store });
  receiver.setSiteView({ leadership: () => ({ term: 7, leader: 'r1' }), committedSnapshots: () => [] });
  const content = Buffer.alloc(256 * 1024, 7);
  const record = {
    name: 'e7-r1-modules', epoch: 7, from: 'r1', size: content.length,
    sha256: Buffer.from(sha256(content)).toString('hex'), createdAt: '2026-11-22T09:00:00.000Z',
  };
  const to = { id: 'r2', host: '127.0.0.1' };
  const out = await pushSnapshot({ self: 'r1', term: 7, to, record, content, keys, port: receiver.port });
  await receiver.close();
  const restorable = store.restorable([record])?.record.name ?? null;
  process.stdout.write(JSON.stringify({ kept: out.kept, restorable, modules: process.moduleLoadList }));
})();
`,
        resolveDir: here,
        loader: 'ts',
      },
      bundle: true,
      platform: 'node',
      target: 'node24',
      format: 'cjs',
      outfile: join(dir, 'push.cjs'),
      logLevel: 'warning',
      // CommonJS has no import.meta: the cipher's child is the sources' snapshot-crypt.ts.
      define: { 'import.meta.url': JSON.stringify(pathToFileURL(join(here, 'snapshot-cipher.ts')).href) },
    });
    const run = spawnSync(process.execPath, [join(dir, 'push.cjs'), join(dir, 'store')], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.equal(run.status, 0, run.stderr);
    const r = JSON.parse(run.stdout) as { kept: boolean; restorable: string | null; modules: string[] };
    assert.deepEqual([r.kept, r.restorable], [true, 'e7-r1-modules']);
    assert.ok(r.modules.includes('NativeModule http'), 'the list is real');
    assert.ok(!r.modules.includes('NativeModule crypto'), 'node:crypto loaded');
  });

  test('a cipher child that dies while it seals a push fails that push cleanly; the receiver keeps nothing', async () => {
    const s = snapshot('e7-r1-seal-dies', 7, randomBytes(1024 * 1024));
    const b = receiver.stats();
    const out = await push(s, { cipher: dyingCipher() });
    assert.equal(out.kept, false);
    while (receiver.stats().truncated === b.truncated) await new Promise((ok) => setTimeout(ok, 5));
    assert.deepEqual(delta(b), { truncated: 1 });
    assert.deepEqual(files(), []);
    assert.equal((await push(s)).kept, true);
  });
});

describe('the snapshot store', () => {
  const content = Buffer.from('etcd');
  const rec = (name: string, epoch: number, at = '2026-11-22T09:00:00.000Z') =>
    snapshot(name, epoch, content, 'r1', at).record;

  test('a name that would lead out of the store is refused, and a record file that says so is ignored', () => {
    for (const name of ['../../etc/cron.d/x', '/etc/passwd', '..', 'a/b'])
      assert.throws(
        () => store.path({ ...rec('a', 1), name }),
        (e: unknown) => e instanceof EdgeError && e.code === 'EDGE_SNAPSHOT_NAME_INVALID',
      );
    writeFileSync(join(storeDir, 'evil.json'), JSON.stringify({ ...rec('a', 1), name: '../../etc/passwd' }));
    writeFileSync(join(storeDir, 'other.json'), JSON.stringify(rec('not-other', 1)));
    assert.deepEqual(store.records(), []);
    store.prune([]);
    assert.ok(existsSync(join(storeDir, 'evil.json')), 'pruning touches only files of checked records');
  });

  test('snapshots never committed cannot push committed ones out, whatever their epoch', () => {
    const real = [rec('e3', 3), rec('e4', 4), rec('e5', 5)];
    committed = real;
    for (const r of real) store.save(r, content, committed);
    for (let i = 0; i < 5; i++) store.save(rec(`junk-${i}`, 1_000_000 + i), content, committed);
    const names = store
      .records()
      .map((r) => r.name)
      .sort();
    assert.deepEqual(names, ['e3', 'e4', 'e5', 'junk-3', 'junk-4']);
    assert.equal(store.restorable(committed)?.record.name, 'e5');
    // Committed ones beyond `keep` go, oldest first.
    const e6 = rec('e6', 6);
    committed = [...real, e6];
    store.save(e6, content, committed);
    assert.deepEqual(
      store
        .records()
        .map((r) => r.name)
        .sort(),
      ['e4', 'e5', 'e6', 'junk-3', 'junk-4'],
    );
  });

  test('restore takes the newest committed record whose bytes match, never an uncommitted or altered one', () => {
    const e4 = rec('e4', 4);
    const e5 = rec('e5', 5);
    store.save(e4, content, [e4, e5]);
    store.save(e5, content, [e4, e5]);
    store.save(rec('e9', 9), content, [e4, e5]);
    assert.equal(store.restorable([]), null, 'nothing committed, nothing to restore');
    assert.equal(store.restorable([e4, e5])?.record.name, 'e5');
    writeFileSync(store.path(e5), 'changed on disk');
    assert.equal(store.restorable([e4, e5])?.record.name, 'e4');
    assert.equal(store.restorable([{ ...e4, sha256: '0'.repeat(64) }]), null);
  });

  test('a partial upload left by a power loss is removed when the store opens', () => {
    writeFileSync(join(storeDir, '.upload-0123456789abcdef.part'), 'half');
    writeFileSync(join(storeDir, 'e1.db.tmp'), 'half');
    new SnapshotStore(storeDir);
    assert.deepEqual(files(), []);
  });
});
