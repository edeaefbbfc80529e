import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { runAgent } from './run.ts';
import { TEST_RUNTIMES } from './testing/runtimes.ts';
import { fetchStatus } from '../cli/ops/status.ts';
import { freePort } from '../lab/kube-apiserver/apiserver.ts';
import { loadAgentConfig } from './config.ts';
import { ConfigError } from './errors.ts';
import {
  formatRobotKeyFile,
  Keyring,
  memberKey,
  MEMBER_DERIVATIONS_PER_SECOND,
  operatorKey,
  pairKey,
  parseRobotKeyFile,
  readRobotKeys,
  renderRobotKeyFile,
  siteKeyrings,
  voterDeriveKey,
} from './site-key.ts';

const MASTER = Buffer.alloc(32, 0x11);
const VOTERS = ['v1', 'v2', 'v3'];
const dir = mkdtempSync(join(tmpdir(), 'edgectl-site-key-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const hmac = (key: Uint8Array, label: string) => createHmac('sha256', key).update(label).digest();

test('the derivations are HMAC-SHA256 with the documented labels (checked against node:crypto)', () => {
  assert.deepEqual(Buffer.from(pairKey(MASTER, 'v2', 'v1', 4)), hmac(MASTER, 'edgectl pair\0v1\0v2\u00004'));
  assert.deepEqual(Buffer.from(pairKey(MASTER, 'v1', 'v2', 4)), Buffer.from(pairKey(MASTER, 'v2', 'v1', 4)));
  const v = voterDeriveKey(MASTER, 4);
  assert.deepEqual(Buffer.from(v), hmac(MASTER, 'edgectl voter-derive\u00004'));
  assert.deepEqual(Buffer.from(memberKey(v, 'w1', 4)), hmac(v, 'edgectl member\0w1\u00004'));
  assert.deepEqual(Buffer.from(operatorKey(MASTER, 4)), hmac(MASTER, 'edgectl operator\u00004'));
  // Generations and robots give unrelated keys.
  assert.notDeepEqual(pairKey(MASTER, 'v1', 'v2', 4), pairKey(MASTER, 'v1', 'v2', 5));
  assert.notDeepEqual(memberKey(v, 'w1', 4), memberKey(v, 'w2', 4));
});

test("a worker's keyring speaks only with voters, as itself; a voter's derives any worker's key", () => {
  const rings = siteKeyrings(MASTER, 'dock', VOTERS, ['v1', 'v2', 'w1', 'w2']);
  const [v1, v2, w1] = [rings.get('v1')!, rings.get('v2')!, rings.get('w1')!];
  // Worker to worker: no key on either side.
  assert.equal(w1.sendKey('w2'), undefined);
  assert.equal(w1.receiveKey('w2', 1), undefined);
  // Worker to voter: the worker's one key, and the voter derives the same; the sender counts as no voter.
  const sent = w1.sendKey('v1')!;
  const got = v1.receiveKey('w1', 1)!;
  assert.equal(got.voter, false);
  const tag = (k: { mac: { macInto(d: Uint8Array, o: Uint8Array): void } }) => {
    const out = new Uint8Array(32);
    k.mac.macInto(Buffer.from('frame'), out);
    return Buffer.from(out);
  };
  assert.deepEqual(tag(sent), tag(got));
  // From the worker's side, voters are voters.
  assert.equal(w1.receiveKey('v2', 1)?.voter, true);
  // Voter pairs: both ends agree; a third voter's pair is not theirs.
  assert.deepEqual(tag(v1.sendKey('v2')!), tag(v2.receiveKey('v1', 1)!));
  assert.notDeepEqual(tag(v1.sendKey('v2')!), tag(v1.sendKey('v3')!));
  // Nobody holds a key for frames "from" itself, or for generations it does not use.
  assert.equal(v1.receiveKey('v1', 1), undefined);
  assert.equal(v1.receiveKey('v2', 2), undefined);
  // Voter-only material.
  assert.deepEqual(w1.snapshotKeysFor('v1'), []);
  assert.deepEqual(w1.operatorKeys(), []);
  assert.deepEqual(v1.snapshotKeysFor('v2'), v2.snapshotKeysFor('v1'));
  assert.deepEqual(v1.snapshotKeysFor('w1'), []);
  assert.deepEqual(v1.operatorKeys(), [Buffer.from(operatorKey(MASTER, 1))]);
});

test('refused robots and generations: what a removal and a rotation change', () => {
  const refusing = siteKeyrings(MASTER, 'dock', VOTERS, ['v1'], { send: 1, refused: ['w1'] }).get('v1')!;
  assert.equal(refusing.receiveKey('w1', 1), undefined);
  assert.equal(refusing.sendKey('w1'), undefined);
  assert.ok(refusing.receiveKey('w2', 1));
  const rotating = siteKeyrings(MASTER, 'dock', VOTERS, ['v1'], { send: 2, accept: [1, 2] }).get('v1')!;
  assert.deepEqual(rotating.summary(), { role: 'voter', send: 2, accepted: [2, 1], refused: [] });
  assert.equal(rotating.sendKey('v2')!.generation, 2);
  assert.ok(rotating.receiveKey('v2', 1) && rotating.receiveKey('v2', 2));
  assert.equal(rotating.snapshotKeysFor('v2').length, 2, 'the send generation seals, both open');
});

test('the key file: parsed field by field, bound to its robot, private, and never the old shared key', () => {
  const text = formatRobotKeyFile(
    renderRobotKeyFile({ master: MASTER, site: 'dock', node: 'w1', voters: VOTERS, send: 1, accept: [1] }),
  );
  const f = parseRobotKeyFile(text, 'w1.json');
  assert.equal(f.role, 'worker');
  assert.throws(
    () => Keyring.from(f, { site: 'dock', node: 'w2', voters: VOTERS }),
    (e: unknown) => e instanceof ConfigError && /node is w1, this robot is w2/.test(e.message),
  );
  assert.throws(
    () => Keyring.from(f, { site: 'dock', node: 'w1', voters: ['v1'] }),
    (e: unknown) => e instanceof ConfigError && /voters are/.test(e.message),
  );
  const broken = JSON.parse(text) as Record<string, unknown>;
  broken.role = 'voter';
  assert.throws(() => parseRobotKeyFile(JSON.stringify(broken), 'x'), /role: w1 is not among the voters/);
  assert.throws(() => parseRobotKeyFile('ab'.repeat(32), 'x'), /shared site key of an older edgectl/);
  const path = join(dir, 'keys.json');
  writeFileSync(path, text, { mode: 0o644 });
  chmodSync(path, 0o644);
  assert.throws(() => readRobotKeys(path), /chmod 600/);
  chmodSync(path, 0o600);
  assert.equal(readRobotKeys(path).node, 'w1');
});

test('the agent reloads its key file on SIGHUP, without a restart; a bad file does not stop it', async () => {
  const keyPath = join(dir, 'solo.keys.json');
  const write = (send: number, accept: number[]) => {
    writeFileSync(
      keyPath,
      formatRobotKeyFile(
        renderRobotKeyFile({
          master: randomBytes(32),
          site: 'solo',
          node: 's1',
          voters: ['s1'],
          send,
          accept,
        }),
      ),
      { mode: 0o600 },
    );
  };
  write(1, [1]);
  const udp = createSocket('udp4');
  await new Promise<void>((ok) => udp.bind(0, '127.0.0.1', ok));
  const udpPort = udp.address().port;
  await new Promise<void>((ok) => udp.close(() => ok()));
  const statusAddr = `127.0.0.1:${await freePort()}`;
  const configPath = join(dir, 'solo.yaml');
  writeFileSync(
    configPath,
    JSON.stringify({
      site: { id: 'solo' },
      node: { id: 's1', serverCapable: true },
      voters: ['s1'],
      profile: 'test',
      network: { bindAddress: '127.0.0.1', port: udpPort, mdns: false },
      stateDir: join(dir, 'solo-state'),
      siteKeyFile: keyPath,
      status: { listen: statusAddr },
      controlPlane: { runtime: 'memory' },
      log: { level: 'error' },
    }),
  );
  let stop!: () => void;
  const stopped = new Promise<void>((r) => (stop = r));
  const running = runAgent(
    { config: configPath, loadConfig: loadAgentConfig, runtimes: TEST_RUNTIMES, entryName: 'the test' },
    stopped,
  );
  const keysNow = async () => (await fetchStatus(statusAddr, 2000).catch(() => null))?.keys;
  const until = async (what: string, ok: (k: Awaited<ReturnType<typeof keysNow>>) => boolean) => {
    const end = performance.now() + 20_000;
    for (;;) {
      const k = await keysNow();
      if (ok(k)) return k;
      if (performance.now() > end) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(k)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  try {
    const uptime = async () => (await fetchStatus(statusAddr, 2000)).uptimeMs;
    await until('the agent to run', (k) => k?.send === 1);
    const startedBefore = await uptime();
    write(2, [1, 2]);
    process.kill(process.pid, 'SIGHUP');
    await until('the reload', (k) => k?.send === 2 && k.accepted.join() === '2,1');
    assert.ok((await uptime()) >= startedBefore, 'the same process, not a restart');
    // A file that fails its checks is logged and skipped; the next good one is loaded.
    writeFileSync(keyPath, '{"v": 1}', { mode: 0o600 });
    process.kill(process.pid, 'SIGHUP');
    write(2, [2]);
    process.kill(process.pid, 'SIGHUP');
    await until('the second reload', (k) => k?.accepted.join() === '2');
  } finally {
    stop();
    await running;
  }
});

test('a voter derives at most MEMBER_DERIVATIONS_PER_SECOND keys a second for unverified senders; verified workers and sends are not held back', () => {
  let now = 5_000;
  const file = renderRobotKeyFile({
    master: MASTER,
    site: 'dock',
    node: 'v1',
    voters: VOTERS,
    send: 1,
    accept: [1],
  });
  const ring = Keyring.from(file, { site: 'dock', node: 'v1', voters: VOTERS }, 'v1', () => now);
  // A real worker: its first frame verifies, and its key is kept from then on.
  assert.ok(ring.receiveKey('w1', 1));
  ring.confirmSender('w1', 1);
  // A flood of made-up names spends the budget...
  for (let i = 0; i < MEMBER_DERIVATIONS_PER_SECOND - 1; i++)
    assert.ok(ring.receiveKey(`fake-${i}`, 1), `fake-${i}`);
  assert.equal(ring.receiveKey('fake-x', 1), undefined, 'past the budget: refused as unknown-key');
  // ...but not the kept worker's key, nor this voter's own sends to a learner, nor voter pairs.
  assert.ok(ring.receiveKey('w1', 1));
  assert.ok(ring.sendKey('w9'));
  assert.ok(ring.receiveKey('v2', 1));
  now += 1000;
  assert.ok(ring.receiveKey('fake-x', 1), 'a new second, a new budget');
});
