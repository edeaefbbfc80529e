import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { describeDiscoveryContract, advert, eventually } from './discovery.contract.ts';
import {
  CompositeDiscovery,
  InMemoryDiscovery,
  InMemoryDiscoveryBus,
  PeerListeners,
  StaticSeedDiscovery,
  mergePeers,
  validateSeeds,
  type Discovery,
  type PeerRecord,
} from './discovery.ts';
import { FakeClock } from './testing/fake-lan.ts';

describeDiscoveryContract('InMemoryDiscovery', async (ads) => {
  const bus = new InMemoryDiscoveryBus();
  const agents = ads.map((ad, i) => new InMemoryDiscovery(bus, ad, { addresses: [`10.0.0.${i + 1}`] }));
  return {
    agents,
    addressesOf: (i) => [`10.0.0.${i + 1}`],
    dispose: async () => {
      await Promise.all(agents.map((a) => a.close()));
    },
  };
});

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('InMemoryDiscovery', () => {
  test('refuses an invalid advertisement or address with a coded error', () => {
    const bus = new InMemoryDiscoveryBus();
    assert.throws(() => new InMemoryDiscovery(bus, advert('s', 'Robot_A')), {
      code: 'EDGE_DISCOVERY_BAD_ADVERTISEMENT',
    });
    assert.throws(() => new InMemoryDiscovery(bus, advert('s', 'a', { port: 0 })), {
      code: 'EDGE_DISCOVERY_BAD_ADVERTISEMENT',
    });
    assert.throws(() => new InMemoryDiscovery(bus, advert('', 'a')), {
      code: 'EDGE_DISCOVERY_BAD_ADVERTISEMENT',
    });
    assert.throws(() => new InMemoryDiscovery(bus, advert('s', 'a', { agentVersion: 'has space' })), {
      code: 'EDGE_DISCOVERY_BAD_ADVERTISEMENT',
    });
    assert.throws(() => new InMemoryDiscovery(bus, advert('s', 'a'), { addresses: ['::1'] }), {
      code: 'EDGE_DISCOVERY_BAD_ADDRESS',
    });
  });

  test('update() before start() changes what start() advertises; start after close rejects', async () => {
    const bus = new InMemoryDiscoveryBus();
    const a = new InMemoryDiscovery(bus, advert('s', 'a'));
    const b = new InMemoryDiscovery(bus, advert('s', 'b'));
    await b.update({ role: 'leader', term: 4 });
    await Promise.all([a.start(), b.start()]);
    assert.deepEqual(
      a.peers().map((p) => [p.role, p.term]),
      [['leader', 4]],
    );
    const c = new InMemoryDiscovery(bus, advert('s', 'c'));
    await c.close();
    await assert.rejects(c.start(), { code: 'EDGE_DISCOVERY_CLOSED' });
    assert.equal(bus.advertisements().length, 2);
  });

  test('setVisibility models a discovery partition for the simulator', async () => {
    const bus = new InMemoryDiscoveryBus();
    const [a, b, c] = ['a', 'b', 'c'].map((n) => new InMemoryDiscovery(bus, advert('s', n)));
    await Promise.all([a!.start(), b!.start(), c!.start()]);
    const seenByA: string[][] = [];
    a!.onChange((peers) => seenByA.push(peers.map((p) => p.nodeId)));
    bus.setVisibility((from, to) => !(from.nodeId === 'c' || to.nodeId === 'c'));
    await tick();
    assert.deepEqual(
      a!.peers().map((p) => p.nodeId),
      ['b'],
    );
    assert.deepEqual(c!.peers(), []);
    bus.setVisibility(() => true);
    await tick();
    assert.deepEqual(seenByA, [['b'], ['b', 'c']]);
  });
});

describe('PeerListeners (the onChange delivery contract)', () => {
  const peer = (nodeId: string, term = 1, lastSeenMs = 0): PeerRecord => ({
    ...advert('s', nodeId, { term }),
    addresses: [],
    source: 'memory',
    lastSeenMs,
  });

  test('delivers asynchronously, coalesces, skips lastSeenMs-only changes, isolates throwing listeners', async () => {
    let current: PeerRecord[] = [];
    const errors: unknown[] = [];
    const l = new PeerListeners(
      () => current,
      (e) => errors.push(e),
    );
    const got: string[][] = [];
    l.add(() => {
      throw new Error('boom');
    });
    l.add((peers) => got.push(peers.map((p) => `${p.nodeId}@${p.term}`)));
    current = [peer('a')];
    l.changed();
    current = [peer('a'), peer('b')];
    l.changed();
    assert.deepEqual(got, [], 'nothing synchronously');
    await tick();
    assert.deepEqual(got, [['a@1', 'b@1']], 'coalesced into the latest state');
    assert.equal(errors.length, 1);
    current = [peer('a', 1, 99), peer('b', 1, 99)];
    l.changed();
    await tick();
    assert.equal(got.length, 1, 'a lastSeenMs change is not a change');
    current = [peer('a', 2)];
    l.changed();
    l.close();
    await tick();
    assert.equal(got.length, 1, 'nothing after close');
    assert.throws(() => l.add(42 as never), TypeError);
  });

  test('a source that throws is reported, not thrown', async () => {
    const errors: unknown[] = [];
    const l = new PeerListeners(
      () => {
        throw new Error('source');
      },
      (e) => errors.push(e),
    );
    l.add(() => assert.fail('not called'));
    l.changed();
    await tick();
    assert.equal(errors.length, 1);
  });
});

describe('StaticSeedDiscovery', () => {
  test('reports every seed but itself, literal IPv4 at once, host names once resolved, with retries', async () => {
    const clock = new FakeClock();
    const answers: Record<string, string[] | Error> = { 'r2.lan': new Error('ENOTFOUND') };
    const s = new StaticSeedDiscovery({
      self: { siteId: 'depot', nodeId: 'r1' },
      seeds: [
        { nodeId: 'r1', host: '10.0.0.1', port: 7946 },
        { nodeId: 'r2', host: 'r2.lan', port: 7946 },
        { nodeId: 'r3', host: '10.0.0.3', port: 7000, serverCapable: false },
      ],
      lookup: async (h) => {
        const a = answers[h];
        if (a instanceof Error) throw a;
        return a ?? [];
      },
      retryMs: 30_000,
      now: clock.now,
      setTimeout: clock.setTimeout,
      clearTimeout: clock.clearTimeout,
    });
    const changes: PeerRecord[][] = [];
    s.onChange((p) => changes.push(p));
    await s.start();
    assert.deepEqual(
      s.peers().map((p) => [p.nodeId, p.addresses, p.port, p.source, p.role, p.serverCapable, p.siteId]),
      [
        ['r2', [], 7946, 'seed', 'starting', true, 'depot'],
        ['r3', ['10.0.0.3'], 7000, 'seed', 'starting', false, 'depot'],
      ],
    );
    answers['r2.lan'] = ['10.0.0.2', '::1' as string];
    await clock.advance(30_000);
    assert.deepEqual(s.peers()[0]!.addresses, ['10.0.0.2']);
    await clock.advance(0);
    assert.ok(changes.at(-1)!.some((p) => p.nodeId === 'r2' && p.addresses[0] === '10.0.0.2'));
    await s.update({ term: 3 }); // a no-op: seeds advertise nothing
    await s.close();
    assert.deepEqual(s.peers(), []);
    assert.equal(clock.pending(), 0, 'close() cleared the retry timer');
  });

  test('refuses invalid seeds', () => {
    assert.deepEqual(validateSeeds([{ nodeId: 'a', host: 'h', port: 1 }]), []);
    const problems = validateSeeds([
      { nodeId: 'A', host: '', port: 0 },
      { nodeId: 'b', host: 'h', port: 1 },
      { nodeId: 'b', host: 'h', port: 1 },
    ]);
    assert.equal(problems.length, 4);
    assert.throws(
      () =>
        new StaticSeedDiscovery({
          self: { siteId: 's', nodeId: 'a' },
          seeds: [{ nodeId: 'x', host: 'h', port: 70000 }],
        }),
      {
        code: 'EDGE_DISCOVERY_BAD_SEEDS',
      },
    );
  });
});

describe('CompositeDiscovery', () => {
  test('mergePeers: mDNS wins over a seed, addresses are the union, best source first', () => {
    const seed: PeerRecord = {
      ...advert('s', 'r2', { role: 'starting', term: 0 }),
      addresses: ['192.168.1.2'],
      source: 'seed',
      lastSeenMs: 5,
    };
    const mdns: PeerRecord = {
      ...advert('s', 'r2', { role: 'leader', term: 7 }),
      addresses: ['10.0.0.2', '192.168.1.2'],
      source: 'mdns',
      lastSeenMs: 1,
    };
    const only: PeerRecord = { ...advert('s', 'r3'), addresses: ['10.0.0.3'], source: 'seed', lastSeenMs: 1 };
    const merged = mergePeers([[seed, only], [mdns]]);
    assert.deepEqual(
      merged.map((p) => [p.nodeId, p.role, p.term, p.source, p.addresses]),
      [
        ['r2', 'leader', 7, 'mdns', ['10.0.0.2', '192.168.1.2']],
        ['r3', 'follower', 1, 'seed', ['10.0.0.3']],
      ],
    );
  });

  test('sums its parts’ counters by name', () => {
    const part = (stats: object): Discovery =>
      Object.assign(new InMemoryDiscovery(new InMemoryDiscoveryBus(), advert('s', 'r1')), {
        stats: () => stats,
      });
    const c = new CompositeDiscovery([
      part({ oversize: 2, floodDrops: 5, phase: 'x' }),
      part({ oversize: 1, cacheEvictions: 3 }),
      new InMemoryDiscovery(new InMemoryDiscoveryBus(), advert('s', 'r1')),
    ]);
    assert.deepEqual(c.stats(), { oversize: 3, floodDrops: 5, cacheEvictions: 3, listenerErrors: 0 });
  });

  test('runs its parts as one discovery', async () => {
    const bus = new InMemoryDiscoveryBus();
    const other = new InMemoryDiscovery(bus, advert('s', 'r2', { role: 'leader', term: 3 }), {
      addresses: ['10.0.0.2'],
    });
    const mine = new InMemoryDiscovery(bus, advert('s', 'r1'), { addresses: ['10.0.0.1'] });
    const seeds = new StaticSeedDiscovery({
      self: { siteId: 's', nodeId: 'r1' },
      seeds: [
        { nodeId: 'r2', host: '10.9.9.2', port: 7000 },
        { nodeId: 'r3', host: '10.9.9.3', port: 7000 },
      ],
    });
    const c: Discovery = new CompositeDiscovery([mine, seeds]);
    const seen: string[][] = [];
    c.onChange((peers) => seen.push(peers.map((p) => `${p.nodeId}:${p.source}:${p.role}`)));
    await other.start();
    await c.start();
    await eventually('merged peers', () => (c.peers().length === 2 ? true : undefined), 1000);
    assert.deepEqual(
      c.peers().map((p) => [p.nodeId, p.source, p.role, p.addresses]),
      [
        ['r2', 'memory', 'leader', ['10.0.0.2', '10.9.9.2']],
        ['r3', 'seed', 'starting', ['10.9.9.3']],
      ],
    );
    await c.update({ role: 'follower', term: 3 });
    assert.deepEqual(
      other.peers().map((p) => [p.role, p.term]),
      [['follower', 3]],
      'update() reaches the real part',
    );
    await other.close();
    await eventually(
      'the seed to remain after the mDNS-like part lost r2',
      () => (c.peers()[0]?.source === 'seed' ? true : undefined),
      1000,
    );
    await c.close();
    await c.close();
    assert.deepEqual(c.peers(), []);
    assert.deepEqual(mine.peers(), [], 'close() closed the parts');
    await assert.rejects(c.update({ term: 1 }), { code: 'EDGE_DISCOVERY_CLOSED' });
    assert.ok(seen.length >= 2);
  });

  test('a part that fails to start closes the others and rejects', async () => {
    const bus = new InMemoryDiscoveryBus();
    const good = new InMemoryDiscovery(bus, advert('s', 'r1'));
    const bad: Discovery = {
      start: () => Promise.reject(new Error('no socket')),
      update: async () => {},
      peers: () => [],
      onChange: () => () => {},
      close: async () => {},
    };
    const c = new CompositeDiscovery([good, bad]);
    await assert.rejects(c.start(), /no socket/);
    assert.deepEqual(bus.advertisements(), []);
  });
});
