/**
 * Attacks on discovery by a host on the LAN, run against the real MdnsDiscovery on real sockets in
 * network namespaces (testing/netns.ts), each with the agent's own heap limit (the systemd unit's
 * --max-old-space-size). Needs root: without it these tests FAIL, never skip. The 60-second
 * line-rate flood is test/security/mdns-flood.test.ts.
 */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { advert, eventually } from './discovery.contract.ts';
import { DEFAULT_CACHE_LIMITS } from './dnssd.ts';
import { NetnsLab, requireRoot } from './testing/netns.ts';
import { RemoteDiscovery } from './testing/remote.ts';
import { AGENT_HEAP_FLAGS, claimerScript, floodScript, legacyQueryScript } from './testing/hostile-mdns.ts';

/** eventually, for an asynchronous probe (a child's stats). */
async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (performance.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function assertWithinLimits(sizes: Record<string, number>): void {
  for (const [tier, n] of Object.entries(sizes))
    assert.ok(
      n <= DEFAULT_CACHE_LIMITS[tier as keyof typeof DEFAULT_CACHE_LIMITS],
      `cache tier ${tier}: ${n} records`,
    );
}

test('600 multicast 60 KB TXT records: every agent lives, none is cached, discovery goes on', async (t) => {
  requireRoot('the mDNS big-TXT attack test');
  const lab = await NetnsLab.create({ nodes: 3, tag: 'bt' });
  const opts = { nodeFlags: AGENT_HEAP_FLAGS };
  const a = new RemoteDiscovery(lab, lab.nodes[0]!, advert('site-bt', 'robot-a'), opts);
  const b = new RemoteDiscovery(lab, lab.nodes[1]!, advert('site-bt', 'robot-b'), opts);
  try {
    await Promise.all([a.start(), b.start()]);
    await eventually('discovery', () => a.peers().find((p) => p.nodeId === 'robot-b'), 10_000);
    const out = await lab.exec(
      lab.nodes[2]!,
      process.execPath,
      [
        '-e',
        floodScript({
          from: lab.nodes[2]!.address,
          kinds: ['big-txt'],
          site: 'site-bt',
          variants: 600,
          paceMs: 2,
          victimAddress: '10.77.0.13',
        }),
      ],
      { timeoutMs: 60_000 },
    );
    const flood = JSON.parse(out) as { sent: number; bytes: number };
    t.diagnostic(`sent ${flood.sent} TXT packets, ${(flood.bytes / 1e6).toFixed(1)} MB`);
    assert.equal(flood.sent, 600);
    const stats = await until(
      'the oversize records to be counted',
      async () => {
        const s = await a.stats();
        return s.oversize >= 300 ? s : undefined;
      },
      10_000,
    );
    assert.equal(a.exited || b.exited, false, 'both agents are alive');
    assert.equal(stats.internalErrors, 0);
    const sizes = await a.cacheSizes();
    assertWithinLimits(sizes);
    const mem = await a.memory();
    t.diagnostic(
      `after: oversize ${stats.oversize}, cache ${JSON.stringify(sizes)}, heap ${(mem.heapUsed / 1e6).toFixed(1)} MB`,
    );
    await b.update({ role: 'leader', term: 2 });
    await eventually('discovery to go on', () => a.peers().find((p) => p.nodeId === 'robot-b'), 5000);
  } finally {
    await Promise.allSettled([a.kill(), b.kill()]);
    await lab.close();
  }
});

test('2048 junk PTRs with the largest TTL do not keep out a real peer that starts later', async (t) => {
  requireRoot('the mDNS junk-PTR attack test');
  const lab = await NetnsLab.create({ nodes: 3, tag: 'jp' });
  const a = new RemoteDiscovery(lab, lab.nodes[0]!, advert('site-jp', 'robot-a'), {
    nodeFlags: AGENT_HEAP_FLAGS,
  });
  let b: RemoteDiscovery | undefined;
  try {
    await a.start();
    // 256 packets of 8 PTRs each, paced so that the victim's socket takes every one.
    const out = await lab.exec(
      lab.nodes[2]!,
      process.execPath,
      [
        '-e',
        floodScript({
          from: lab.nodes[2]!.address,
          kinds: ['junk-ptr'],
          site: 'site-jp',
          variants: 256,
          paceMs: 2,
          victimAddress: '10.77.0.13',
        }),
      ],
      { timeoutMs: 30_000 },
    );
    assert.equal((JSON.parse(out) as { sent: number }).sent, 256);
    const filled = await until(
      'the junk to fill the other tier',
      async () => {
        const s = await a.stats();
        return s.cacheEvictions + s.floodDrops > 0 ? s : undefined;
      },
      10_000,
    );
    assertWithinLimits(await a.cacheSizes());
    b = new RemoteDiscovery(lab, lab.nodes[1]!, advert('site-jp', 'robot-b'));
    await b.start();
    const seen = await eventually(
      'robot-a to see robot-b despite the junk',
      () => a.peers().find((p) => p.nodeId === 'robot-b'),
      10_000,
    );
    assert.deepEqual(seen.addresses, [lab.nodes[1]!.address]);
    t.diagnostic(
      `after the junk: ${filled.cacheEvictions} evictions, ${filled.floodDrops} flood drops; cache ${JSON.stringify(await a.cacheSizes())}`,
    );
  } finally {
    await Promise.allSettled([a.kill(), b?.kill()]);
    await lab.close();
  }
});

test('a forged peer of our site whose A record points outside the subnet is never a peer', async () => {
  requireRoot('the mDNS foreign-address test');
  const lab = await NetnsLab.create({ nodes: 2, tag: 'fa' });
  const a = new RemoteDiscovery(lab, lab.nodes[0]!, advert('site-fa', 'robot-a'));
  try {
    await a.start();
    await lab.exec(lab.nodes[1]!, process.execPath, [
      '-e',
      floodScript({
        from: lab.nodes[1]!.address,
        kinds: ['forged-site-peer'],
        site: 'site-fa',
        variants: 20,
        paceMs: 2,
        victimAddress: '192.0.2.7',
      }),
    ]);
    const stats = await until(
      'the foreign addresses to be counted',
      async () => {
        const s = await a.stats();
        return s.ignoredForeignAddress >= 20 ? s : undefined;
      },
      10_000,
    );
    assert.deepEqual(a.peers(), [], 'no forged peer at 192.0.2.7');
    assert.equal(stats.internalErrors, 0);
  } finally {
    await a.kill();
    await lab.close();
  }
});

test('legacy unicast answers do not amplify: bytes back ≤ bytes sent for a stream of queries', async (t) => {
  requireRoot('the mDNS legacy-unicast amplification test');
  const lab = await NetnsLab.create({ nodes: 2, tag: 'lu' });
  const a = new RemoteDiscovery(lab, lab.nodes[0]!, advert('site-lu', 'robot-a'));
  try {
    await a.start();
    const out = await lab.exec(
      lab.nodes[1]!,
      process.execPath,
      ['-e', legacyQueryScript({ from: lab.nodes[1]!.address, count: 300, gapMs: 5, listenMs: 1000 })],
      { timeoutMs: 30_000 },
    );
    const r = JSON.parse(out) as { sentBytes: number; receivedBytes: number; answers: number };
    const stats = await a.stats();
    t.diagnostic(
      `sent ${r.sentBytes} B in 300 queries, got ${r.receivedBytes} B in ${r.answers} answers (ratio ${(r.receivedBytes / r.sentBytes).toFixed(3)}); limited ${stats.legacyUnicastLimited}`,
    );
    assert.ok(r.answers > 0, 'a legacy resolver still gets answers');
    assert.ok(
      r.receivedBytes <= r.sentBytes,
      `amplification ${r.receivedBytes} B out for ${r.sentBytes} B in`,
    );
    assert.ok(stats.legacyUnicastLimited > 0, 'the budget was what stopped the rest');
  } finally {
    await a.kill();
    await lab.close();
  }
});

test('a host that claims every name we probe: start() still resolves, we browse, peers are seen', async (t) => {
  requireRoot('the mDNS name-claimer test');
  const lab = await NetnsLab.create({ nodes: 3, tag: 'nc' });
  const claimer = lab.spawn(lab.nodes[2]!, process.execPath, [
    '-e',
    claimerScript({ from: lab.nodes[2]!.address, pattern: 'robot-a' }),
  ]);
  const a = new RemoteDiscovery(lab, lab.nodes[0]!, advert('site-nc', 'robot-a'));
  const b = new RemoteDiscovery(lab, lab.nodes[1]!, advert('site-nc', 'robot-b'));
  try {
    await eventually('the claimer', () => (claimer.output().includes('ready') ? true : undefined), 5000);
    await b.start();
    await a.start(); // before the bound, this never resolved
    const stats = await a.stats();
    t.diagnostic(
      `renames ${stats.renames}, given up ${stats.advertisingGivenUp}, names ${JSON.stringify(await a.names())}`,
    );
    assert.ok(stats.advertisingGivenUp >= 1, 'gave up advertising');
    assert.ok(stats.renames > 0);
    await eventually('robot-a to see robot-b', () => a.peers().find((p) => p.nodeId === 'robot-b'), 10_000);
  } finally {
    await Promise.allSettled([a.kill(), b.kill(), lab.kill(claimer)]);
    await lab.close();
  }
});
