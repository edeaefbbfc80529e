/**
 * The one contract every Discovery implementation must meet. It is run against InMemoryDiscovery
 * (memory.test.ts) and against the real MdnsDiscovery in network namespaces (mdns.netns.test.ts).
 * Everything here waits for conditions with a deadline, so the same suite fits an in-memory bus
 * (microseconds) and a real network (a second or so).
 */

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Advertisement, Discovery, PeerRecord } from './discovery.ts';

export interface DiscoveryFixture {
  /** The agents, one per advertisement passed to the factory, in order, not yet started. */
  readonly agents: readonly Discovery[];
  /** The addresses the others should see for agent `index`; undefined: do not check. */
  addressesOf?(index: number): string[] | undefined;
  /** Releases everything (closes the agents, kills processes, deletes namespaces). */
  dispose(): Promise<void>;
}

/** Builds one agent per advertisement. It must throw (not skip) when it cannot run. */
export type MakeDiscoveries = (ads: readonly Advertisement[]) => Promise<DiscoveryFixture>;

export interface ContractOptions {
  /** Deadline for anything that must happen (discovery, an update, a goodbye). */
  timeoutMs: number;
  /** How long to keep watching for something that must NOT happen (seeing another site). */
  settleMs: number;
  /** Deadline for a peer to vanish after it called close() (the goodbye). */
  goodbyeMs: number;
  /**
   * What peers learn of an advertisement: `all` of it (the in-memory twin), or only the `locator`
   * (site, node, port: mDNS, whose TXT is readable and forgeable by anyone on the link, so role,
   * term, version and capability travel over the authenticated transport instead).
   */
  advertised: 'all' | 'locator';
}

/** What a peer sees of `ad` when only the locator is advertised. */
export function locatorOnly(ad: Advertisement): Advertisement {
  return { ...ad, agentVersion: 'unknown', role: 'starting', term: 0, serverCapable: false };
}

const SITE_A = 'site-a';
const SITE_B = 'site-b';

export function advert(siteId: string, nodeId: string, extra: Partial<Advertisement> = {}): Advertisement {
  return {
    siteId,
    nodeId,
    agentVersion: '1.2.3',
    role: 'follower',
    term: 1,
    port: 7000,
    serverCapable: true,
    ...extra,
  };
}

/** Polls `probe` until it returns something other than undefined. */
export async function eventually<T>(
  what: string,
  probe: () => T | undefined,
  timeoutMs: number,
  context: () => string = () => '',
): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (performance.now() > deadline)
      assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}${context() ? `\n${context()}` : ''}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function withoutVolatile(p: PeerRecord): Omit<PeerRecord, 'lastSeenMs' | 'addresses' | 'source'> {
  const { lastSeenMs: _l, addresses: _a, source: _s, ...rest } = p;
  return rest;
}

function assertNoSelf(self: Advertisement, peers: readonly PeerRecord[], where: string): void {
  for (const p of peers) {
    assert.ok(
      !(p.nodeId === self.nodeId && p.siteId === self.siteId),
      `${where}: peers() contains the agent itself`,
    );
    assert.equal(p.siteId, self.siteId, `${where}: peers() contains a peer of another site`);
  }
}

/** Registers the contract tests for one implementation. */
export function describeDiscoveryContract(
  name: string,
  make: MakeDiscoveries,
  options: Partial<ContractOptions> = {},
): void {
  const opts: ContractOptions = {
    timeoutMs: 5000,
    settleMs: 200,
    goodbyeMs: 3000,
    advertised: 'all',
    ...options,
  };
  const visible = (ad: Advertisement): Advertisement => (opts.advertised === 'all' ? ad : locatorOnly(ad));

  /** Runs `body` with fresh agents and always disposes them. */
  const withAgents = async (
    ads: Advertisement[],
    body: (agents: readonly Discovery[], fx: DiscoveryFixture) => Promise<void>,
  ): Promise<void> => {
    const fx = await make(ads);
    try {
      assert.equal(fx.agents.length, ads.length, 'the factory made one agent per advertisement');
      await body(fx.agents, fx);
    } finally {
      await fx.dispose();
    }
  };

  const seen = (
    d: Discovery,
    self: Advertisement,
    nodeId: string,
    pred: (p: PeerRecord) => boolean = () => true,
  ): PeerRecord | undefined => {
    const peers = d.peers();
    assertNoSelf(self, peers, self.nodeId);
    return peers.find((p) => p.nodeId === nodeId && pred(p));
  };

  describe(`Discovery contract: ${name}`, () => {
    test('two agents of one site see each other, with every advertised field', async () => {
      const a = advert(SITE_A, 'robot-a', {
        agentVersion: '1.2.3',
        role: 'follower',
        term: 2,
        port: 7101,
        serverCapable: true,
      });
      const b = advert(SITE_A, 'robot-b', {
        agentVersion: '1.2.4-rc.1',
        role: 'leader',
        term: 3,
        port: 7102,
        serverCapable: false,
      });
      await withAgents([a, b], async ([da, db], fx) => {
        await Promise.all([da!.start(), db!.start()]);
        const bSeenByA = await eventually(
          'robot-a to see robot-b',
          () => seen(da!, a, 'robot-b'),
          opts.timeoutMs,
        );
        const aSeenByB = await eventually(
          'robot-b to see robot-a',
          () => seen(db!, b, 'robot-a'),
          opts.timeoutMs,
        );
        assert.deepEqual(withoutVolatile(bSeenByA), visible(b));
        assert.deepEqual(withoutVolatile(aSeenByB), visible(a));
        for (const [p, i] of [
          [bSeenByA, 1],
          [aSeenByB, 0],
        ] as const) {
          assert.ok(Number.isFinite(p.lastSeenMs), 'lastSeenMs is a number');
          assert.ok(['mdns', 'memory'].includes(p.source));
          for (const addr of p.addresses) assert.match(addr, /^\d{1,3}(\.\d{1,3}){3}$/);
          const expected = fx.addressesOf?.(i);
          if (expected) assert.deepEqual(p.addresses, expected);
        }
        assert.equal(da!.peers().length, 1);
        assert.equal(db!.peers().length, 1);
      });
    });

    test('an agent of another site is never seen (even with the same node id)', async () => {
      const a1 = advert(SITE_A, 'robot-a');
      const a2 = advert(SITE_A, 'robot-b');
      const b1 = advert(SITE_B, 'robot-b', { role: 'leader', term: 9 });
      await withAgents([a1, a2, b1], async ([d1, d2, d3]) => {
        await Promise.all([d1!.start(), d2!.start(), d3!.start()]);
        await eventually('robot-a to see its site peer', () => seen(d1!, a1, 'robot-b'), opts.timeoutMs);
        await eventually(
          'robot-b (site A) to see its site peer',
          () => seen(d2!, a2, 'robot-a'),
          opts.timeoutMs,
        );
        const until = performance.now() + opts.settleMs;
        while (performance.now() < until) {
          for (const [d, self] of [
            [d1!, a1],
            [d2!, a2],
            [d3!, b1],
          ] as const) {
            const peers = d.peers();
            assertNoSelf(self, peers, `${self.siteId}/${self.nodeId}`);
            assert.ok(peers.every((p) => p.siteId === self.siteId));
          }
          assert.deepEqual(d3!.peers(), [], 'the only agent of site B sees nobody');
          assert.deepEqual(
            d1!.peers().map((p) => [p.siteId, p.nodeId, p.role]),
            [[SITE_A, 'robot-b', visible(a2).role]],
          );
          await new Promise((r) => setTimeout(r, 25));
        }
      });
    });

    test('update() changes the role and term the peer sees (where they are advertised)', async () => {
      const a = advert(SITE_A, 'robot-a');
      const b = advert(SITE_A, 'robot-b', { role: 'starting', term: 0 });
      await withAgents([a, b], async ([da, db]) => {
        await Promise.all([da!.start(), db!.start()]);
        await eventually('robot-a to see robot-b', () => seen(da!, a, 'robot-b'), opts.timeoutMs);
        if (opts.advertised === 'locator') {
          await db!.update({ role: 'candidate', term: 5 });
          await new Promise((r) => setTimeout(r, opts.settleMs));
          const p = seen(da!, a, 'robot-b');
          assert.ok(
            p && withoutVolatile(p).role === 'starting' && p.term === 0,
            'role and term are not advertised',
          );
          await assert.rejects(db!.update({ term: -1 }), { code: 'EDGE_DISCOVERY_BAD_ADVERTISEMENT' });
          return;
        }
        await db!.update({ role: 'candidate', term: 5 });
        await eventually(
          'the role and term change',
          () => seen(da!, a, 'robot-b', (p) => p.role === 'candidate' && p.term === 5),
          opts.timeoutMs,
        );
        await db!.update({ role: 'leader' });
        const p = await eventually(
          'a role-only change',
          () => seen(da!, a, 'robot-b', (q) => q.role === 'leader'),
          opts.timeoutMs,
        );
        assert.equal(p.term, 5, 'a role-only update keeps the term');
        await db!.update({ term: 6 });
        await eventually(
          'a term-only change',
          () => seen(da!, a, 'robot-b', (q) => q.role === 'leader' && q.term === 6),
          opts.timeoutMs,
        );
        await assert.rejects(db!.update({ term: -1 }), { code: 'EDGE_DISCOVERY_BAD_ADVERTISEMENT' });
        await assert.rejects(db!.update({ role: 'king' as never }), {
          code: 'EDGE_DISCOVERY_BAD_ADVERTISEMENT',
        });
      });
    });

    test('close() makes the peer disappear promptly (goodbye), and is idempotent', async () => {
      const a = advert(SITE_A, 'robot-a');
      const b = advert(SITE_A, 'robot-b');
      await withAgents([a, b], async ([da, db]) => {
        await Promise.all([da!.start(), db!.start()]);
        await eventually('robot-a to see robot-b', () => seen(da!, a, 'robot-b'), opts.timeoutMs);
        const t0 = performance.now();
        await db!.close();
        await eventually(
          'robot-b to vanish after its goodbye',
          () => (seen(da!, a, 'robot-b') ? undefined : true),
          opts.goodbyeMs,
        );
        assert.ok(performance.now() - t0 < opts.goodbyeMs);
        assert.deepEqual(db!.peers(), [], 'a closed discovery reports no peers');
        await db!.close(); // idempotent
        await assert.rejects(db!.update({ term: 2 }), { code: 'EDGE_DISCOVERY_CLOSED' });
      });
    });

    test('onChange: async snapshots without self; a throwing listener is isolated; unsubscribe works', async () => {
      const a = advert(SITE_A, 'robot-a');
      const b = advert(SITE_A, 'robot-b');
      await withAgents([a, b], async ([da, db]) => {
        const deliveries: PeerRecord[][] = [];
        let inCall = false;
        let calledSynchronously = false;
        da!.onChange(() => {
          throw new Error('listener bug');
        });
        const unsubscribe = da!.onChange((peers) => {
          if (inCall) calledSynchronously = true;
          deliveries.push(peers);
        });
        let lateCalls = 0;
        const unsubscribeLate = da!.onChange(() => lateCalls++);
        unsubscribeLate();
        inCall = true;
        const started = Promise.all([da!.start(), db!.start()]);
        inCall = false;
        await started;
        await eventually(
          'a delivery that lists robot-b',
          () => (deliveries.some((d) => d.some((p) => p.nodeId === 'robot-b')) ? true : undefined),
          opts.timeoutMs,
        );
        assert.equal(calledSynchronously, false, 'listeners are not called inside start()');
        for (const d of deliveries) assertNoSelf(a, d, 'onChange');
        // Snapshots belong to the listener: mutating one changes nothing inside discovery.
        deliveries.at(-1)!.length = 0;
        assert.ok(seen(da!, a, 'robot-b'));
        unsubscribe();
        const before = deliveries.length;
        if (opts.advertised === 'all') {
          await db!.update({ term: 42 });
          await eventually(
            'the update to arrive',
            () => seen(da!, a, 'robot-b', (p) => p.term === 42),
            opts.timeoutMs,
          );
        } else {
          // Role and term are not advertised: a goodbye is the change to watch.
          await db!.close();
          await eventually(
            'robot-b to go',
            () => (seen(da!, a, 'robot-b') ? undefined : true),
            opts.timeoutMs,
          );
        }
        await new Promise((r) => setTimeout(r, 50));
        assert.equal(deliveries.length, before, 'no deliveries after unsubscribe');
        assert.equal(lateCalls, 0);
      });
    });
  });
}
