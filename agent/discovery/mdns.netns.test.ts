/**
 * The real MdnsDiscovery on a real (virtual) LAN: one network namespace per agent, bridged
 * (agent/discovery/testing/netns.ts). Needs root: without it these tests FAIL with a message that
 * says so; they never skip. CI runs as root.
 */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { describeDiscoveryContract, advert, eventually, type MakeDiscoveries } from './discovery.contract.ts';
import { NetnsLab, requireRoot } from './testing/netns.ts';
import { RemoteDiscovery } from './testing/remote.ts';

const makeNetnsAgents: MakeDiscoveries = async (ads) => {
  requireRoot('the MdnsDiscovery contract test');
  const lab = await NetnsLab.create({ nodes: ads.length, tag: 'c' });
  const agents = ads.map((ad, i) => new RemoteDiscovery(lab, lab.nodes[i]!, ad));
  return {
    agents,
    addressesOf: (i) => [lab.nodes[i]!.address],
    dispose: async () => {
      await Promise.allSettled(agents.map((a) => a.kill()));
      const prefix = lab.prefix;
      await lab.close();
      assert.deepEqual(await NetnsLab.leftovers(prefix), [], 'the lab namespaces are gone');
    },
  };
};

describeDiscoveryContract('MdnsDiscovery (real sockets, network namespaces)', makeNetnsAgents, {
  timeoutMs: 10_000,
  settleMs: 2500,
  goodbyeMs: 3000,
  advertised: 'locator',
});

function summary(xs: number[]): string {
  const s = [...xs].sort((a, b) => a - b);
  return `min ${s[0]!.toFixed(0)} ms, median ${s[Math.floor(s.length / 2)]!.toFixed(0)} ms, max ${s.at(-1)!.toFixed(0)} ms`;
}

test('timings: mutual discovery after start(), removal after close() (goodbye)', async (t) => {
  requireRoot('the MdnsDiscovery timing test');
  const discover: number[] = [];
  const goodbye: number[] = [];
  const startup: number[] = [];
  for (let round = 0; round < 3; round++) {
    const lab = await NetnsLab.create({ nodes: 2, tag: 'tm' });
    const a = new RemoteDiscovery(lab, lab.nodes[0]!, advert('site-t', 'robot-a'));
    const b = new RemoteDiscovery(lab, lab.nodes[1]!, advert('site-t', 'robot-b'));
    try {
      await Promise.all([a.start(), b.start()]);
      await eventually(
        'mutual discovery',
        () => (a.firstSeenAt('robot-b') && b.firstSeenAt('robot-a') ? true : undefined),
        10_000,
      );
      // Both child processes measure with comparable wall clocks; the later start() call is t0.
      const t0 = Math.max(a.times.startCalledAt!, b.times.startCalledAt!);
      discover.push(Math.max(a.firstSeenAt('robot-b')!, b.firstSeenAt('robot-a')!) - t0);
      startup.push(
        Math.max(
          a.times.startResolvedAt! - a.times.startCalledAt!,
          b.times.startResolvedAt! - b.times.startCalledAt!,
        ),
      );
      await b.close();
      const closedAt = b.times.closeCalledAt!;
      await eventually('robot-b to vanish', () => a.goneAt('robot-b', closedAt), 5000);
      goodbye.push(a.goneAt('robot-b', closedAt)! - closedAt);
    } finally {
      await Promise.allSettled([a.kill(), b.kill()]);
      await lab.close();
    }
  }
  t.diagnostic(`start() (probe + first announcement): ${summary(startup)}`);
  t.diagnostic(`both agents see each other, after the later start() call: ${summary(discover)}`);
  t.diagnostic(`peer removed after close() (goodbye + 1 s): ${summary(goodbye)}`);
  for (const d of discover) assert.ok(d < 2000, `discovery took ${d} ms`);
  for (const g of goodbye)
    assert.ok(g >= 900 && g < 2000, `removal after goodbye took ${g} ms (RFC 6762 §10.1: 1 s)`);
});

test('garbage on 224.0.0.251:5353 is counted and dropped; discovery keeps working', async () => {
  requireRoot('the MdnsDiscovery garbage test');
  const lab = await NetnsLab.create({ nodes: 3, tag: 'g' });
  const a = new RemoteDiscovery(lab, lab.nodes[0]!, advert('site-g', 'robot-a'));
  const b = new RemoteDiscovery(lab, lab.nodes[1]!, advert('site-g', 'robot-b'));
  try {
    await Promise.all([a.start(), b.start()]);
    await eventually('discovery', () => a.peers().find((p) => p.nodeId === 'robot-b'), 10_000);
    // From a third namespace: a truncated header, a forward name pointer, a record cut short, a
    // count of 65535 answers with one present, random bytes, a TXT string longer than its rdata.
    const script = `
      const dgram = require('node:dgram');
      const s = dgram.createSocket({ type: 'udp4', reuseAddr: true });
      s.bind(5353, () => {
        s.setMulticastInterface('${lab.nodes[2]!.address}');
        const bad = [
          Buffer.from([1, 2, 3]),
          Buffer.from('000084000001000000000000c0ff00010001', 'hex'),
          Buffer.from('0000840000000001000000000000', 'hex'),
          Buffer.from('000084000000ffff000000000474657374000001000100000078000401020304', 'hex'),
          require('node:crypto').randomBytes(300),
          Buffer.from('0000840000000001000000000474657374056c6f63616c00001000010000007800050a41414141', 'hex'),
        ];
        let i = 0;
        const next = () => { if (i === bad.length) return s.close(); s.send(bad[i++], 5353, '224.0.0.251', next); };
        next();
      });`;
    await lab.exec(lab.nodes[2]!, process.execPath, ['-e', script]);
    let stats = await a.stats();
    // A count of 65535 records is refused before decoding (oversize), the rest as malformed.
    for (let i = 0; i < 50 && stats.malformed + stats.oversize < 5; i++) {
      await new Promise((r) => setTimeout(r, 50));
      stats = await a.stats();
    }
    assert.ok(stats.malformed + stats.oversize >= 5, `garbage datagrams counted: ${JSON.stringify(stats)}`);
    assert.equal(stats.internalErrors, 0);
    await b.close();
    await eventually(
      'discovery to go on working (robot-b’s goodbye is heard)',
      () => (a.peers().some((p) => p.nodeId === 'robot-b') ? undefined : true),
      5000,
    );
  } finally {
    await Promise.allSettled([a.kill(), b.kill()]);
    await lab.close();
  }
});

test('requireRoot names the problem when the process is not root', () => {
  const original = process.getuid;
  try {
    process.getuid = () => 1000;
    assert.throws(
      () => requireRoot('the MdnsDiscovery contract test'),
      (err: Error & { code?: string }) => {
        assert.equal(err.code, 'EDGE_TEST_NEEDS_ROOT');
        assert.match(err.message, /needs root \(uid 0\).*uid 1000/);
        return true;
      },
    );
  } finally {
    process.getuid = original;
  }
});
