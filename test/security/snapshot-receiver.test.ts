/**
 * Memory exhaustion of the snapshot receiver, run against a real receiver in its own process
 * (snapshot-receiver-child.ts) on loopback, whose peak resident memory (VmHWM) is read from /proc:
 *
 *   - two hosts without the key each PUT 200 MiB at the same time (one with no header, one with a
 *     forged one): both are refused on their header, nothing is written, and the receiver's peak
 *     stays under 100 MB;
 *   - a robot with the key but not the leader PUTs 200 MiB: refused on its header, the same way;
 *   - the leader announces 1 MiB and sends 200 MiB (chunked, so no length gives it away): the body
 *     is cut off once it runs past what was announced, and nothing is left in the store.
 *
 * The receiver used to buffer a body of up to 512 MiB (and copy it once more) before it checked
 * anything, with any number of uploads at once.
 */
import assert from 'node:assert/strict';
import { fork, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, test } from 'node:test';
import { build } from 'esbuild';
import { preparePush, type PushResult } from '../../agent/control-plane/snapshots.ts';
import { sharedSnapshotKeys } from '../../agent/control-plane/testing/snapshot-keys.ts';

const MIB = 1024 * 1024;
const ATTACK_BYTES = 200 * MIB;
const PEAK_LIMIT_KB = 100 * 1000;
const KEY = randomBytes(32);

let child: ChildProcess;
let port: number;
let dir: string;
/** The receiver's resident memory once it listens, before any upload. */
let idleKb: number;

interface ChildStats {
  readonly stats: Record<PushResult, number>;
  readonly files: string[];
}

function ask(): Promise<ChildStats> {
  const reply = once(child, 'message') as Promise<[ChildStats]>;
  child.send('stats');
  return reply.then(([m]) => m);
}

/** The receiver process's peak resident memory so far, in kB. */
function peakKb(): number {
  const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmHWM for pid ${child.pid}`);
  return Number(m[1]);
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'edgectl-snap-rss-'));
  // Bundled, as on a robot (see the child's comment); CommonJS, so built-ins load without their ES facade.
  const bundle = join(dir, 'receiver.cjs');
  await build({
    entryPoints: [join(import.meta.dirname, 'snapshot-receiver-child.ts')],
    bundle: true,
    platform: 'node',
    target: 'node24',
    format: 'cjs',
    outfile: bundle,
    logLevel: 'warning',
    // CommonJS has no import.meta: the receiver finds its cipher child (snapshot-crypt.ts) beside
    // the sources' snapshot-cipher.ts, which it runs in a process of its own.
    define: {
      'import.meta.url': JSON.stringify(
        pathToFileURL(join(import.meta.dirname, '../../agent/control-plane/snapshot-cipher.ts')).href,
      ),
    },
  });
  child = fork(bundle, [join(dir, 'store'), KEY.toString('hex')], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const [m] = (await once(child, 'message')) as [{ port: number }];
  port = m.port;
  idleKb = peakKb();
});

after(async () => {
  if (child.connected) {
    child.send('stop');
    await once(child, 'exit');
  }
  rmSync(dir, { recursive: true, force: true });
});

interface Upload {
  readonly status: number | null;
  readonly sentBytes: number;
}

/**
 * upload PUTs `total` bytes as fast as the receiver takes them, without waiting for an answer
 * first (as an attacker would): resolves when the receiver has answered or closed the connection.
 */
async function upload(fields: Record<string, string>, total: number, chunked = false): Promise<Upload> {
  const req = request({
    host: '127.0.0.1',
    port,
    method: 'PUT',
    path: '/snapshots',
    agent: false,
    headers: chunked ? { ...fields, 'transfer-encoding': 'chunked' } : { ...fields, 'content-length': total },
  });
  let status: number | null = null;
  const finished = new Promise<void>((resolve) => {
    req.on('response', (res) => {
      status = res.statusCode ?? null;
      res.resume();
      res.on('end', resolve);
      res.on('error', () => resolve());
    });
    req.on('error', () => resolve());
    req.on('close', () => resolve());
  });
  const chunk = Buffer.alloc(MIB, 0x61);
  let sentBytes = 0;
  let over = false;
  void finished.then(() => (over = true));
  while (sentBytes < total && !over && !req.destroyed) {
    sentBytes += chunk.length;
    if (!req.write(chunk)) await Promise.race([once(req, 'drain').catch(() => {}), finished]);
  }
  if (!req.destroyed) req.end();
  await finished;
  return { status, sentBytes };
}

test('two keyless 200 MiB uploads at once are refused on their header, and the receiver stays under 100 MB', async (t) => {
  const before = await ask();
  const forged = preparePush({
    self: 'r1',
    term: 7,
    to: 'r2',
    record: {
      name: 'e7-r1',
      epoch: 7,
      from: 'r1',
      sha256: 'a'.repeat(64),
      size: ATTACK_BYTES - 16,
      createdAt: '2026-11-22T09:00:00.000Z',
    },
    // The attacker's guess at the key.
    keys: sharedSnapshotKeys(randomBytes(32), ['r1', 'r2']),
  })!;
  const [bare, fake] = await Promise.all([upload({}, ATTACK_BYTES), upload(forged.fields, ATTACK_BYTES)]);
  const after = await ask();
  const peak = peakKb();
  t.diagnostic(
    `peak RSS ${(peak / 1000).toFixed(1)} MB (${(idleKb / 1000).toFixed(1)} MB idle); sent before the receiver hung up: ${bare.sentBytes / MIB} and ${fake.sentBytes / MIB} MiB`,
  );
  assert.equal(after.stats.unauthenticated - before.stats.unauthenticated, 2);
  assert.equal(after.stats.kept, before.stats.kept);
  assert.ok(bare.status !== 204 && fake.status !== 204);
  assert.deepEqual(after.files, []);
  assert.ok(peak < PEAK_LIMIT_KB, `the receiver's peak RSS was ${peak} kB`);
});

test('a robot with the key that is not the leader is refused on its header too', async () => {
  const before = await ask();
  const p = preparePush({
    self: 'r3',
    term: 7,
    to: 'r2',
    record: {
      name: 'e7-r3',
      epoch: 7,
      from: 'r3',
      sha256: 'a'.repeat(64),
      size: ATTACK_BYTES - 16,
      createdAt: '2026-11-22T09:00:00.000Z',
    },
    keys: sharedSnapshotKeys(KEY, ['r1', 'r2', 'r3']),
  })!;
  const out = await upload(p.fields, ATTACK_BYTES);
  const after = await ask();
  assert.equal(after.stats['not-leader'] - before.stats['not-leader'], 1);
  assert.notEqual(out.status, 204);
  assert.deepEqual(after.files, []);
  assert.ok(peakKb() < PEAK_LIMIT_KB, `the receiver's peak RSS was ${peakKb()} kB`);
});

test("the leader's upload that runs past its announced size is cut off and leaves nothing in the store", async (t) => {
  const before = await ask();
  const content = randomBytes(MIB);
  const p = preparePush({
    self: 'r1',
    term: 7,
    to: 'r2',
    record: {
      name: 'e7-r1-over',
      epoch: 7,
      from: 'r1',
      sha256: createHash('sha256').update(content).digest('hex'),
      size: content.length,
      createdAt: '2026-11-22T09:00:00.000Z',
    },
    keys: sharedSnapshotKeys(KEY, ['r1', 'r2', 'r3']),
  })!;
  const out = await upload(p.fields, ATTACK_BYTES, true);
  const after = await ask();
  t.diagnostic(`sent ${out.sentBytes / MIB} MiB of ${ATTACK_BYTES / MIB} before the receiver cut it off`);
  assert.equal(after.stats['too-large'] - before.stats['too-large'], 1);
  assert.ok(out.sentBytes < ATTACK_BYTES, 'the receiver stopped reading');
  assert.deepEqual(after.files, []);
  assert.ok(peakKb() < PEAK_LIMIT_KB, `the receiver's peak RSS was ${peakKb()} kB`);
});
