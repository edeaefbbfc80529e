/**
 * A stolen worker: what its key file lets an attacker do to a site (docs/reliability.md, "Threat
 * model", "Keys"). Real UDP transports on loopback, real agents in this process, the real key files
 * bootstrap renders. The attacker holds exactly what the worker's key file holds, and tries every key
 * in it against every identity and message type. No root needed.
 *
 *   - frames: a worker's keys make no vote, PreVote, Append or TimeoutNow that a voter accepts, as
 *     the worker or as anyone else, nor anything as another robot;
 *   - snapshots: nothing a worker holds opens a snapshot a leader ships, or makes one a voter keeps;
 *   - a live site: the attack leaves the leader and term as they were; so does edgectl site
 *     rotate-keys (accept, send, retire, robot by robot); a robot added afterwards joins with no
 *     change to the others' keys, once the site log's membership names it; a removed robot is
 *     refused and no longer heartbeated;
 *   - agents run as on the robots (the agent's runAgent, key files, SIGHUP): a rotation keeps
 *     the leader and its term and loses no datagram to keys.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { pino } from 'pino';
import { Agent, type AgentStatus } from '../../agent/agent.ts';
import { loadAgentConfig, validateAgentConfig } from '../../agent/config.ts';
import { InMemoryControlPlane } from '../../agent/control-plane/testing/in-memory.ts';
import {
  pushSnapshot,
  SnapshotReceiver,
  SnapshotStore,
  type SnapshotRecord,
} from '../../agent/control-plane/snapshots.ts';
import { InMemoryDiscovery, InMemoryDiscoveryBus } from '../../agent/discovery/discovery.ts';
import { signMembers } from '../../agent/operator-auth.ts';
import { StateStore } from '../../agent/persistence/state-store.ts';
import { membersDigest } from '../../agent/site/members.ts';
import { HmacSha256 } from '../../agent/sha256.ts';
import {
  formatRobotKeyFile,
  Keyring,
  operatorKey,
  parseRobotKeyFile,
  renderRobotKeyFile,
  siteKeyrings,
  snapshotKeyOfPair,
  type RobotKeyFile,
} from '../../agent/site-key.ts';
import {
  DROP_REASONS,
  decodeIncarnationFrame,
  encode,
  encodeIncarnationFrame,
  type DropReason,
} from '../../agent/transport/codec.ts';
import { UdpTransport } from '../../agent/transport/udp.ts';
import { INITIAL_KEY_STATE, keyUse, nextKeyState, type KeyState } from '../../cli/bootstrap/site-dir.ts';
import { runAgent } from '../../agent/run.ts';
import { TEST_RUNTIMES } from '../../agent/testing/runtimes.ts';
import { fetchStatus } from '../../cli/ops/status.ts';
import { freePort } from '../../lab/kube-apiserver/apiserver.ts';
import type { Message, NodeId } from '../../statecharts/messages.ts';

const SITE = 'dock';
const VOTERS = ['v1', 'v2', 'v3'];
const MASTER = randomBytes(32);
const dir = mkdtempSync(join(tmpdir(), 'edgectl-keys-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** What the thief reads off the stolen worker's disk: its key file, as bootstrap wrote it. */
function stolenKeyFile(worker: NodeId, use = keyUse(INITIAL_KEY_STATE)): RobotKeyFile {
  const text = formatRobotKeyFile(
    renderRobotKeyFile({ master: MASTER, site: SITE, node: worker, voters: VOTERS, ...use }),
  );
  return parseRobotKeyFile(text, `${worker}'s key file`);
}

/** Every 32-byte secret in a key file, each as the key of every generation it could claim. */
function candidateKeys(file: RobotKeyFile): { generation: number; key: Buffer }[] {
  const secrets = JSON.stringify(file).match(/[0-9a-f]{64}/g) ?? [];
  const generations = [0, ...file.generations.map((g) => g.id), file.send + 1];
  return secrets.flatMap((h) =>
    generations.map((generation) => ({ generation, key: Buffer.from(h, 'hex') })),
  );
}

function messageOf(type: Message['type'], from: NodeId, to: NodeId, term: number): Message {
  switch (type) {
    case 'preVote':
      return { type, from, to, term, lastIndex: 1 << 20, lastTerm: term };
    case 'vote':
      return { type, from, to, term, lastIndex: 1 << 20, lastTerm: term, transfer: true };
    case 'append':
      return { type, from, to, term, prevIndex: 0, prevTerm: 0, commit: 0, sentAt: 1, entries: [] };
    case 'timeoutNow':
      return { type, from, to, term };
    case 'appendResp':
      return { type, from, to, term, success: true, matchIndex: 1 << 20, echo: 0 };
    case 'preVoteResp':
    case 'voteResp':
      return { type, from, to, term, granted: true };
  }
}

const TYPES: readonly Message['type'][] = [
  'preVote',
  'vote',
  'append',
  'timeoutNow',
  'appendResp',
  'preVoteResp',
  'voteResp',
];

function sendTo(sock: Socket, frame: Buffer, port: number, host = '127.0.0.1'): Promise<void> {
  return new Promise((resolve, reject) => sock.send(frame, port, host, (e) => (e ? reject(e) : resolve())));
}

async function until<T>(what: string, probe: () => T | null | undefined | false, ms = 20_000): Promise<T> {
  const end = performance.now() + ms;
  for (;;) {
    const v = probe();
    if (v) return v;
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const sum = (r: Readonly<Record<string, number>> | readonly number[]) =>
  Object.values(r).reduce((a, b) => a + b, 0);

test("a stolen worker's keys make no frame a voter accepts but the worker's own appendResp", async () => {
  const rings = siteKeyrings(MASTER, SITE, VOTERS, ['v1']);
  const victim = await UdpTransport.open({
    self: 'v1',
    siteId: SITE,
    keys: rings.get('v1')!,
    port: 0,
    bindAddress: '127.0.0.1',
  });
  const delivered: Message[] = [];
  victim.onMessage((m) => delivered.push(m));
  const sock = createSocket('udp4');
  try {
    const stolen = stolenKeyFile('w1');
    assert.equal(stolen.role, 'worker');
    const expected = new Map<DropReason | 'delivered', number>();
    let counter = 0;
    // The thief holds the worker's key, so it can answer the victim's challenge to incarnation 7
    // as the worker itself would: then its own appendResps count, and nothing else does.
    const w1 = siteKeyrings(MASTER, SITE, VOTERS, ['w1']).get('w1')!;
    let wireCounter = 1_000;
    sock.on('message', (buf) => {
      const c = decodeIncarnationFrame(buf, { siteId: SITE, key: (p, g) => w1.receiveKey(p, g) });
      if (!c.ok || c.frame.kind !== 'challenge' || c.frame.to !== 'w1') return;
      const answer = encodeIncarnationFrame(
        { kind: 'answer', from: 'w1', to: 'v1', nonce: c.frame.nonce },
        { siteId: SITE, key: w1.sendKey('v1')!, incarnation: 7, counter: wireCounter++ },
      );
      sock.send(answer, victim.port, '127.0.0.1');
    });
    for (const { generation, key } of candidateKeys(stolen))
      for (const from of ['w1', 'v2', 'v3', 'w2', 'v1'])
        for (const type of TYPES) {
          const frame = encode(messageOf(type, from, 'v1', 10_000 + counter), {
            siteId: SITE,
            key: { generation, mac: new HmacSha256(key) },
            incarnation: 7,
            counter: counter++,
          });
          await sendTo(sock, frame, victim.port);
          // What the victim must make of it: only the worker's own answer to an Append gets in.
          const outcome: DropReason | 'delivered' =
            generation !== 1 || from === 'v1'
              ? 'unknown-key' // a generation the site does not use, or a frame "from" the victim itself
              : from !== 'w1'
                ? 'bad-mac' // another robot's key is not the worker's
                : type === 'appendResp'
                  ? 'delivered'
                  : 'not-permitted'; // the worker's own key, but not a worker's message
          expected.set(outcome, (expected.get(outcome) ?? 0) + 1);
        }
    await until('the victim to account for every frame', () => {
      const s = victim.stats();
      return s.received + sum(s.dropped) >= counter;
    });
    const s = victim.stats();
    const got = Object.fromEntries(
      [
        ...DROP_REASONS.filter((r) => s.dropped[r] > 0).map((r) => [r, s.dropped[r]]),
        ['delivered', s.received],
      ].sort(),
    );
    assert.deepEqual(got, Object.fromEntries([...expected].sort()));
    assert.ok(delivered.every((m) => m.type === 'appendResp' && m.from === 'w1'));
    assert.equal(delivered.length, expected.get('delivered'));
    // The victim learned an address only for the sender the key proves: no other robot was re-pointed.
    for (const other of ['v2', 'v3', 'w2']) assert.equal(victim.peerAddress(other), undefined, other);
    assert.equal(victim.peerAddress('w1')?.host, '127.0.0.1');
  } finally {
    sock.close();
    await victim.close();
  }
});

test('nothing a worker holds makes a snapshot push that a voter keeps, as itself or as the leader', async () => {
  const rings = siteKeyrings(MASTER, SITE, VOTERS, ['v1', 'v2', 'w1']);
  assert.deepEqual(rings.get('w1')!.snapshotKeysFor('v1'), [], 'a worker has no snapshot key');
  const store = new SnapshotStore(join(dir, 'received'), 3, '');
  const refused: string[] = [];
  const receiver = await SnapshotReceiver.start({
    self: 'v2',
    address: '127.0.0.1',
    port: 0,
    keys: { forPeer: (p) => rings.get('v2')!.snapshotKeysFor(p) },
    store,
    onPush: (e) => {
      if (e.result !== 'kept') refused.push(e.result);
    },
  });
  // v2 follows v1 at term 3: only v1's pushes of that term may be kept.
  receiver.setSiteView({ leadership: () => ({ term: 3, leader: 'v1' }), committedSnapshots: () => [] });
  const to = { id: 'v2', host: '127.0.0.1' };
  try {
    const content = randomBytes(4096);
    const record = (from: string): SnapshotRecord => ({
      name: `etcd-e3-${from}`,
      from,
      epoch: 3,
      sha256: createHash('sha256').update(content).digest('hex'),
      size: content.length,
      createdAt: '2026-12-06T00:00:00.000Z',
    });
    const stolen = stolenKeyFile('w1');
    const keys = candidateKeys(stolen).flatMap(({ key }) => [key, Buffer.from(snapshotKeyOfPair(key))]);
    for (const key of keys)
      for (const from of ['w1', 'v1']) {
        // Pushed as the worker, or claiming to be the leader, with every key the worker holds.
        const o = await pushSnapshot({
          self: from,
          term: 3,
          to,
          record: record(from),
          content,
          keys: { forPeer: () => [key] },
          port: receiver.port,
        });
        assert.equal(o.kept, false, `${from} with a stolen key`);
      }
    assert.deepEqual(store.records(), []);
    assert.deepEqual(new Set(refused), new Set(['unauthenticated']));
    assert.equal(refused.length, keys.length * 2);
    // The receiver does keep what the leader sends: the refusals above are the keys', not a dead receiver.
    const genuine = await pushSnapshot({
      self: 'v1',
      term: 3,
      to,
      record: record('v1'),
      content,
      keys: { forPeer: (p) => rings.get('v1')!.snapshotKeysFor(p) },
      port: receiver.port,
    });
    assert.equal(genuine.kept, true, genuine.reason);
    assert.deepEqual(
      store.records().map((r) => r.name),
      ['etcd-e3-v1'],
    );
  } finally {
    await receiver.close();
  }
});

// ---------------------------------------------------------------------------------------------------
// a live site

interface Robot {
  readonly id: NodeId;
  readonly agent: Agent;
  readonly transport: UdpTransport;
  ring: Keyring;
}

const fastLifecycle = {
  discoveryWindowMs: 50,
  serverStartTimeoutMs: 2000,
  siteApplyTimeoutMs: 2000,
  joinTimeoutMs: 2000,
  reconcileEveryMs: 60_000,
  retryMinMs: 20,
  retryMaxMs: 200,
  joinRetryMaxMs: 200,
};

/** Each robot its own loopback address, as robots have their own: learners are one per address. */
const hosts = new Map<NodeId, string>();
const hostOf = (id: NodeId) => {
  if (!hosts.has(id)) hosts.set(id, `127.0.0.${hosts.size + 10}`);
  return hosts.get(id)!;
};

async function startRobot(bus: InMemoryDiscoveryBus, id: NodeId, ring: Keyring): Promise<Robot> {
  const holder: { ring: Keyring } = { ring };
  // The config first: a config error must not leave a bound socket that keeps the test process alive.
  const voter = VOTERS.includes(id);
  const config = validateAgentConfig({
    site: { id: SITE },
    node: { id, serverCapable: voter },
    controlPlane: { runtime: 'memory' },
    voters: VOTERS,
    // The site as bootstrap installed it: w1 is its one worker (w2 comes later, with robot add).
    workers: ['w1'],
    // The robots' own timing: the question is whether keys move a site's leader in the field, and a
    // faster profile would also measure this shared machine's event-loop stalls.
    profile: 'fleet',
    stateDir: join(dir, id),
    membership: { suspectAfterMs: 600, deadAfterMs: 1800 },
  });
  // The agent's own shape (agent/run.ts): the transport reads the keyring a reload replaces.
  const transport = await UdpTransport.open({
    self: id,
    siteId: SITE,
    keys: {
      sendKey: (p) => holder.ring.sendKey(p),
      receiveKey: (p, g) => holder.ring.receiveKey(p, g),
      confirmSender: (p, g) => holder.ring.confirmSender(p, g),
    },
    port: 0,
    bindAddress: hostOf(id),
  });
  const discovery = new InMemoryDiscovery(
    bus,
    {
      siteId: SITE,
      nodeId: id,
      agentVersion: '0.1.0',
      role: 'starting',
      term: 0,
      port: transport.port,
      serverCapable: voter,
    },
    { addresses: [hostOf(id)] },
  );
  const agent = new Agent({
    config,
    transport,
    discovery,
    runtime: new InMemoryControlPlane(id, { delayMs: 5 }),
    store: new StateStore(config.stateDir),
    log: pino({ level: 'silent' }),
    lifecycleTiming: fastLifecycle,
    keys: () => holder.ring.summary(),
    operatorKeys: () => holder.ring.operatorKeys(),
  });
  await agent.start();
  const robot: Robot = {
    id,
    agent,
    transport,
    get ring() {
      return holder.ring;
    },
    set ring(r: Keyring) {
      holder.ring = r; // what SIGHUP does with the file bootstrap or rotate-keys wrote
    },
  };
  return robot;
}

/** The site settled: one leader, every robot ready, all agreeing on leader and term. */
function settled(robots: readonly Robot[]): AgentStatus[] | null {
  const st = robots.map((r) => r.agent.status());
  const leaders = st.filter((s) => s.role === 'leader');
  if (leaders.length !== 1) return null;
  const l = leaders[0]!;
  return st.every((s) => s.leader === l.node && s.term === l.term) && robots.every((r) => r.agent.ready())
    ? st
    : null;
}

const keyDrops = (robots: readonly Robot[]) =>
  robots.map((r) => {
    const d = r.transport.stats().dropped;
    return d['unknown-key'] + d['bad-mac'] + d['not-permitted'];
  });

test('a live site: the stolen worker cannot move the leader; rotate-keys keeps the leader and term; robot add changes no one; a removed robot is refused', async () => {
  const bus = new InMemoryDiscoveryBus();
  let state: KeyState = INITIAL_KEY_STATE;
  const ringsFor = (s: KeyState, robots: readonly NodeId[]) =>
    siteKeyrings(MASTER, SITE, VOTERS, robots, keyUse(s));
  const all = [...VOTERS, 'w1'];
  const first = ringsFor(state, all);
  const robots: Robot[] = [];
  try {
    for (const id of all) robots.push(await startRobot(bus, id, first.get(id)!));
    const before = await until('a settled site', () => settled(robots));
    const leader = before.find((s) => s.role === 'leader')!;
    const term = leader.term;
    const unchanged = (skip?: NodeId) => {
      for (const r of robots.filter((x) => x.id !== skip)) {
        const s = r.agent.status();
        assert.equal(s.leader, leader.node, `${r.id} follows ${s.leader}`);
        assert.equal(s.term, term, `${r.id} is at term ${s.term}`);
      }
    };

    // 1. The thief, with w1's key file, tries to depose the leader at every voter.
    const sock = createSocket('udp4');
    const dropsBefore = keyDrops(robots);
    let sent = 0;
    try {
      for (const { generation, key } of candidateKeys(stolenKeyFile('w1'))) {
        for (const v of robots.filter((r) => VOTERS.includes(r.id))) {
          const others = VOTERS.filter((x) => x !== v.id);
          const forged: Message[] = [
            messageOf('timeoutNow', leader.node, v.id, term),
            messageOf('timeoutNow', 'w1', v.id, term),
            messageOf('vote', 'w1', v.id, term + 100),
            messageOf('preVote', 'w1', v.id, term + 100),
            ...others.map((o) => messageOf('vote', o, v.id, term + 100)),
            ...others.map((o) => messageOf('append', o, v.id, term + 100)),
          ].filter((m) => m.from !== v.id);
          for (const m of forged) {
            const frame = encode(m, {
              siteId: SITE,
              key: { generation, mac: new HmacSha256(key) },
              incarnation: 99,
              counter: sent++,
            });
            await sendTo(sock, frame, v.transport.port, hostOf(v.id));
          }
        }
      }
    } finally {
      sock.close();
    }
    await until('every forged frame to be refused', () => sum(keyDrops(robots)) - sum(dropsBefore) >= sent);
    assert.equal(sum(keyDrops(robots)) - sum(dropsBefore), sent, 'every forged frame is refused for its key');
    unchanged();

    // 2. edgectl site rotate-keys, as the robots see it: each phase reaches the robots one at a
    //    time, a few heartbeats apart, and every robot has it before the next phase starts.
    const rotationDrops = keyDrops(robots);
    do {
      state = nextKeyState(state);
      const rings = ringsFor(state, all);
      for (const r of robots) {
        r.ring = rings.get(r.id)!;
        await new Promise((res) => setTimeout(res, 450)); // three heartbeats
      }
      await new Promise((res) => setTimeout(res, 900));
      unchanged();
    } while (state.rotation);
    assert.equal(state.generation, 2);
    for (const r of robots) assert.deepEqual(r.agent.status().keys?.accepted, [2], r.id);
    assert.deepEqual(keyDrops(robots), rotationDrops, 'no frame was refused for its key during the rotation');
    assert.ok(settled(robots), 'every robot is still ready');

    // The retired generation is refused: v1's old pair key no longer speaks for v1.
    const v2 = robots.find((r) => r.id === 'v2')!;
    const oldKey = first.get('v1')!.sendKey('v2')!;
    const stale = encode(messageOf('timeoutNow', 'v1', 'v2', term), {
      siteId: SITE,
      key: oldKey,
      incarnation: 5,
      counter: 0,
    });
    const staleBefore = v2.transport.stats().dropped['unknown-key'];
    const s2 = createSocket('udp4');
    await sendTo(s2, stale, v2.transport.port, hostOf('v2')).finally(() => s2.close());
    await until(
      'the stale frame to be refused',
      () => v2.transport.stats().dropped['unknown-key'] > staleBefore,
    );

    // 3. robot add: w2 gets its own key file; no other robot's keys change; the leader commits the
    //    inventory's membership, which now names w2 (cli/bootstrap/members.ts does this over SSH).
    const ringsBeforeAdd = robots.map((r) => r.ring);
    const w2 = await startRobot(bus, 'w2', ringsFor(state, ['w2']).get('w2')!);
    robots.push(w2);
    const leaderRobot = robots.find((r) => r.id === leader.node)!;
    const commitMembers = async (workers: string[], baseVersion: number) => {
      const claim = { site: SITE, baseVersion, digest: membersDigest(workers) };
      const key = operatorKey(MASTER, keyUse(state).send);
      const out = await leaderRobot.agent.applyMembersRequest({
        site: SITE,
        baseVersion,
        workers,
        mac: signMembers(key, claim),
      });
      assert.equal(out.kind, 'committed');
    };
    await commitMembers(['w1', 'w2'], 0);
    await until('w2 to follow the leader', () => settled(robots));
    assert.deepEqual(
      robots.slice(0, -1).map((r) => r.ring),
      ringsBeforeAdd,
    );
    assert.equal(leaderRobot.agent.status().members.find((m) => m.id === 'w2')?.state, 'alive');
    unchanged();

    // 4. robot remove: the voters get key files that refuse w2 (the workers need none), and the
    //    leader commits a membership without it.
    state = { ...state, refused: ['w2'] };
    const refusing = ringsFor(state, VOTERS);
    for (const r of robots.filter((x) => VOTERS.includes(x.id))) r.ring = refusing.get(r.id)!;
    await commitMembers(['w1'], 1);
    await until(
      'the leader to count w2 dead',
      () => leaderRobot.agent.status().members.find((m) => m.id === 'w2')?.state === 'dead',
    );
    assert.deepEqual(leaderRobot.agent.status().learners?.learners, ['w1'], 'w2 is no learner any more');
    const sentBefore = leaderRobot.transport.stats().sent;
    const w2Received = w2.transport.stats().received;
    await new Promise((res) => setTimeout(res, 1500));
    assert.ok(leaderRobot.transport.stats().sent > sentBefore, 'the leader still heartbeats the others');
    assert.equal(w2.transport.stats().received, w2Received, 'the leader sends w2 nothing');
    unchanged('w2');
  } finally {
    for (const r of robots) await r.agent.stop().catch(() => {});
  }
});

test('rotate-keys on agents run as on the robots: each phase is a key file and a SIGHUP, and the leader keeps its term', async () => {
  const site = 'hup';
  const master = randomBytes(32);
  const names = ['h1', 'h2', 'h3', 'hw'];
  const voters = names.slice(0, 3);
  const ports = new Map<string, { udp: number; status: string }>();
  for (const n of names) {
    const udp = createSocket('udp4');
    await new Promise<void>((ok) => udp.bind(0, '127.0.0.1', ok));
    ports.set(n, { udp: udp.address().port, status: `127.0.0.1:${await freePort()}` });
    await new Promise<void>((ok) => udp.close(() => ok()));
  }
  const keyPath = (n: string) => join(dir, `${site}-${n}.keys.json`);
  const writeKeys = (s: KeyState) => {
    for (const n of names)
      writeFileSync(
        keyPath(n),
        formatRobotKeyFile(renderRobotKeyFile({ master, site, node: n, voters, ...keyUse(s) })),
        { mode: 0o600 },
      );
  };
  let state: KeyState = INITIAL_KEY_STATE;
  writeKeys(state);
  let stop!: () => void;
  const stopped = new Promise<void>((r) => (stop = r));
  const running = names.map((n) => {
    const config = join(dir, `${site}-${n}.yaml`);
    writeFileSync(
      config,
      JSON.stringify({
        site: { id: site },
        node: { id: n, serverCapable: voters.includes(n) },
        voters,
        profile: 'fleet',
        network: {
          bindAddress: '127.0.0.1',
          port: ports.get(n)!.udp,
          mdns: false,
          seeds: names
            .filter((x) => x !== n)
            .map((x) => ({ node: x, host: '127.0.0.1', port: ports.get(x)!.udp })),
        },
        stateDir: join(dir, `${site}-${n}-state`),
        siteKeyFile: keyPath(n),
        status: { listen: ports.get(n)!.status },
        controlPlane: { runtime: 'memory' },
        log: { level: 'error' },
      }),
    );
    return runAgent(
      { config, loadConfig: loadAgentConfig, runtimes: TEST_RUNTIMES, entryName: 'the test' },
      stopped,
    );
  });
  const statuses = async () =>
    Promise.all(names.map((n) => fetchStatus(ports.get(n)!.status, 3000).catch(() => null)));
  const settledNow = async () => {
    const st = await statuses();
    if (st.some((s) => s === null)) return null;
    const all = st as AgentStatus[];
    const leader = all.find((s) => s.role === 'leader');
    return leader && all.every((s) => s.leader === leader.node && s.term === leader.term) ? all : null;
  };
  const wait = async <T>(what: string, probe: () => Promise<T | null>): Promise<T> => {
    const end = performance.now() + 60_000;
    for (;;) {
      const v = await probe();
      if (v) return v;
      if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  try {
    const before = await wait('a settled site', settledNow);
    const leader = before.find((s) => s.role === 'leader')!;
    const keyDropsOf = (all: AgentStatus[]) =>
      all.map((s) => s.transport.dropped['unknown-key'] + s.transport.dropped['bad-mac']);
    const drops = keyDropsOf(before);
    do {
      state = nextKeyState(state);
      writeKeys(state);
      const use = keyUse(state);
      process.kill(process.pid, 'SIGHUP'); // every agent of this process reloads, as systemctl kill does on each robot
      await wait(`every agent on phase ${state.rotation?.phase ?? 'done'}`, async () => {
        const st = await statuses();
        return st.every(
          (s) =>
            s?.keys?.send === use.send &&
            [...s.keys.accepted].sort().join() === [...new Set(use.accept)].sort().join(),
        )
          ? true
          : null;
      });
    } while (state.rotation);
    await new Promise((r) => setTimeout(r, 1000)); // a few heartbeats under the new keys
    const after = await wait('the site after the rotation', settledNow);
    for (const s of after) {
      assert.equal(s.leader, leader.node, `${s.node} follows ${s.leader}`);
      assert.equal(s.term, leader.term, `${s.node} is at term ${s.term}`);
      assert.deepEqual(s.keys?.accepted, [2], s.node);
    }
    assert.deepEqual(keyDropsOf(after), drops, 'no datagram was refused for its key');
  } finally {
    stop();
    await Promise.all(running);
  }
});
