/**
 * MdnsDiscovery on a fake LAN with a fake clock (testing/fake-lan.ts): the RFC 6762 timing and
 * wire rules, checked packet by packet and deterministically. The same class on real sockets is
 * covered by mdns.netns.test.ts and test/integration/discovery-avahi.test.ts.
 */

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  MdnsDiscovery,
  onSubnet,
  selectInterfaces,
  type MdnsDiscoveryOptions,
  type MdnsSocket,
  type OutgoingPacket,
} from './mdns.ts';
import { FakeClock, FakeLan, interfaceTable, toDecoded, type LoggedPacket } from './testing/fake-lan.ts';
import { encodeTxt, type MdnsRecord } from './dnssd.ts';
import type { Advertisement } from './discovery.ts';

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SITE = 's';
const ad = (nodeId: string, extra: Partial<Advertisement> = {}): Advertisement => ({
  siteId: SITE,
  nodeId,
  agentVersion: '0.1.0',
  role: 'follower',
  term: 1,
  port: 7000,
  serverCapable: true,
  ...extra,
});

interface Rig {
  clock: FakeClock;
  lan: FakeLan;
  agent(address: string, advertisement: Advertisement, extra?: Partial<MdnsDiscoveryOptions>): MdnsDiscovery;
  /** start() and run the clock until it resolves. */
  started(d: MdnsDiscovery): Promise<void>;
}

function rig(seed = 1): Rig {
  const clock = new FakeClock();
  const lan = new FakeLan(clock);
  let n = 0;
  return {
    clock,
    lan,
    agent: (address, advertisement, extra = {}) =>
      new MdnsDiscovery({
        advertisement,
        now: clock.now,
        random: mulberry32(seed * 100 + ++n),
        setTimeout: clock.setTimeout,
        clearTimeout: clock.clearTimeout,
        socketFactory: lan.factory,
        networkInterfaces: interfaceTable({ eth0: { address } }),
        interfaceRescanMs: 0,
        ...extra,
      }),
    started: async (d) => {
      let done = false;
      const p = d.start().then(() => (done = true));
      await clock.until(() => done, 5000);
      await p;
    },
  };
}

const isProbe = (p: LoggedPacket): boolean =>
  p.packet.type === 'query' && (p.packet.authorities?.length ?? 0) > 0;
const isBrowse = (p: LoggedPacket): boolean =>
  p.packet.type === 'query' &&
  (p.packet.questions ?? []).some((q) => q.name === '_edgectl._udp.local' && q.type === 'PTR');
const isAnnouncement = (p: LoggedPacket): boolean =>
  p.packet.type === 'response' &&
  !p.to &&
  (p.packet.answers ?? []).some((a) => a.type === 'PTR' && a.ttl > 0) &&
  (p.packet.additionals ?? []).length === 0;
const records = (p: LoggedPacket): MdnsRecord[] => [
  ...(p.packet.answers ?? []),
  ...(p.packet.additionals ?? []),
];
const txtOf = (rr: MdnsRecord | undefined): string[] =>
  rr?.type === 'TXT' ? rr.data.map((s) => Buffer.from(s).toString()) : [];

/** Injects a decoded packet from a scripted host. */
function inject(r: Rig, packet: OutgoingPacket, from = '10.0.0.9', port = 5353): void {
  r.lan.deliver(toDecoded(packet), { address: from, port });
}

describe('MdnsDiscovery responder: probing and announcing (RFC 6762 §8)', () => {
  test('3 probes 250 ms apart after 0–250 ms, records in Authority; then 2 announcements 1 s apart', async () => {
    const r = rig();
    const d = r.agent('10.0.0.1', ad('r1'));
    const t0 = r.clock.now();
    await r.started(d);
    await r.clock.advance(3000);
    const probes = r.lan.sentBy('10.0.0.1', isProbe);
    assert.equal(probes.length, 3);
    assert.ok(
      probes[0]!.at - t0 >= 0 && probes[0]!.at - t0 <= 250,
      `first probe after ${probes[0]!.at - t0} ms`,
    );
    assert.deepEqual(
      probes.map((p) => p.at - probes[0]!.at),
      [0, 250, 500],
    );
    for (const p of probes) {
      assert.deepEqual(p.packet.questions, [
        { name: 's-r1._edgectl._udp.local', type: 'ANY' },
        { name: 'r1-s.local', type: 'ANY' },
      ]);
      assert.deepEqual(
        p.packet.authorities!.map((a) => [a.name, a.type]),
        [
          ['s-r1._edgectl._udp.local', 'SRV'],
          ['s-r1._edgectl._udp.local', 'TXT'],
          ['r1-s.local', 'A'],
        ],
      );
    }
    const anns = r.lan.sentBy('10.0.0.1', isAnnouncement);
    assert.equal(anns.length, 2);
    assert.equal(anns[0]!.at - probes[2]!.at, 250);
    assert.equal(anns[1]!.at - anns[0]!.at, 1000);
    const byType = Object.fromEntries(anns[0]!.packet.answers!.map((a) => [a.type, a]));
    assert.deepEqual(
      ['PTR', 'SRV', 'TXT', 'A'].map((t) => [t, byType[t]!.ttl, byType[t]!.flush === true]),
      [
        ['PTR', 4500, false],
        ['SRV', 120, true],
        ['TXT', 4500, true],
        ['A', 120, true],
      ],
      'TTLs of §10 and the cache-flush bit on unique records only',
    );
    assert.deepEqual(byType.SRV!.data, { priority: 0, weight: 0, port: 7000, target: 'r1-s.local' });
    assert.equal(byType.A!.data, '10.0.0.1');
    assert.deepEqual(txtOf(byType.TXT), ['txtvers=1', 'site=s', 'node=r1', 'port=7000']);
    assert.equal(d.phase, 'announced');
    assert.equal(d.stats().probeTieBreaksLost, 0, 'our own probes looping back are not a conflict');
    assert.equal(d.stats().conflicts, 0);
    await d.close();
  });

  test('browsing: PTR queries after 20–120 ms, then 1 s, 2 s, 4 s … capped at 60 s (§5.2)', async () => {
    const r = rig();
    const d = r.agent('10.0.0.1', ad('r1'));
    const t0 = r.clock.now();
    await r.started(d);
    await r.clock.advance(300_000);
    const qs = r.lan.sentBy('10.0.0.1', isBrowse);
    assert.ok(qs[0]!.at - t0 >= 20 && qs[0]!.at - t0 <= 120);
    const gaps = qs.slice(1).map((q, i) => q.at - qs[i]!.at);
    assert.deepEqual(gaps.slice(0, 9), [1000, 2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000, 60_000]);
    // Once announced, our own PTR is a known answer, so our responder does not answer our query.
    const later = qs.at(-1)!;
    assert.deepEqual(
      later.packet.answers!.map((a) => [a.type, a.data]),
      [['PTR', 's-r1._edgectl._udp.local']],
    );
    assert.ok(d.stats().knownAnswerSuppressed > 0);
    await d.close();
  });

  test('two agents find each other within about a second of fake time, with what is advertised', async () => {
    const r = rig();
    const a = r.agent('10.0.0.1', ad('r1'));
    const b = r.agent(
      '10.0.0.2',
      ad('r2', { role: 'leader', term: 4, port: 7002, serverCapable: false, agentVersion: '0.2.0' }),
    );
    const t0 = r.clock.now();
    void a.start();
    void b.start();
    const took = await r.clock.until(() => a.peers().length === 1 && b.peers().length === 1, 5000, 1);
    assert.ok(took <= 1100, `discovered after ${took} fake ms`);
    assert.deepEqual(a.peers(), [
      {
        siteId: 's',
        nodeId: 'r2',
        // Not advertised (the TXT carries site, node and port): the transport tells the rest.
        agentVersion: 'unknown',
        role: 'starting',
        term: 0,
        port: 7002,
        serverCapable: false,
        addresses: ['10.0.0.2'],
        source: 'mdns',
        lastSeenMs: a.peers()[0]!.lastSeenMs,
      },
    ]);
    assert.ok(a.peers()[0]!.lastSeenMs >= t0 && a.peers()[0]!.lastSeenMs <= r.clock.now());
    assert.deepEqual(
      b.peers().map((p) => [p.nodeId, p.addresses]),
      [['r1', ['10.0.0.1']]],
    );
    await Promise.all([a.close(), b.close()]);
  });
});

describe('MdnsDiscovery responder: answering (RFC 6762 §6, §7; RFC 6763 §12)', () => {
  test('PTR with SRV/TXT/A additionals after 20–120 ms; unique answers at once; known answers suppress; legacy unicast', async () => {
    const r = rig();
    const d = r.agent('10.0.0.1', ad('r1'));
    await r.started(d);
    await r.clock.advance(2000);
    const since = (t: number, pred: (p: LoggedPacket) => boolean = () => true): LoggedPacket[] =>
      r.lan.sentBy('10.0.0.1', (p) => p.at >= t && p.packet.type === 'response' && pred(p));

    let t = r.clock.now();
    inject(r, { type: 'query', questions: [{ name: '_edgectl._udp.local', type: 'PTR' }] });
    await r.clock.advance(200);
    let out = since(t);
    assert.equal(out.length, 1);
    assert.ok(out[0]!.at - t >= 21 && out[0]!.at - t <= 121, `shared answer delayed ${out[0]!.at - t} ms`);
    assert.deepEqual(
      out[0]!.packet.answers!.map((a) => a.type),
      ['PTR'],
    );
    assert.deepEqual(
      out[0]!.packet.additionals!.map((a) => a.type),
      ['SRV', 'TXT', 'A'],
    );

    await r.clock.advance(1100);
    t = r.clock.now();
    const ourPtr: MdnsRecord = {
      name: '_edgectl._udp.local',
      type: 'PTR',
      ttl: 4000,
      data: 's-r1._edgectl._udp.local',
    };
    inject(r, {
      type: 'query',
      questions: [{ name: '_edgectl._udp.local', type: 'PTR' }],
      answers: [ourPtr],
    });
    await r.clock.advance(200);
    assert.equal(since(t).length, 0, 'known answer with more than half the TTL: no answer (§7.1)');
    inject(r, {
      type: 'query',
      questions: [{ name: '_edgectl._udp.local', type: 'PTR' }],
      answers: [{ ...ourPtr, ttl: 2000 }],
    });
    await r.clock.advance(200);
    assert.equal(since(t).length, 1, 'a known answer with less than half its TTL left is answered');

    await r.clock.advance(1100);
    t = r.clock.now();
    inject(r, { type: 'query', questions: [{ name: 'S-R1._edgectl._udp.local', type: 'SRV' }] });
    await r.clock.advance(5);
    out = since(t);
    assert.equal(out.length, 1);
    assert.equal(out[0]!.at - t, 1, 'unique answers go out at once (1 ms is the fake LAN latency)');
    assert.deepEqual(
      records(out[0]!).map((a) => a.type),
      ['SRV', 'A'],
    );

    t = r.clock.now();
    inject(r, { type: 'query', questions: [{ name: 'r1-s.local', type: 'A' }] });
    await r.clock.advance(5);
    assert.equal(since(t).length, 0, 'the A record went out less than a second ago (§6 rate limit)');

    await r.clock.advance(1100);
    t = r.clock.now();
    inject(
      r,
      { id: 77, type: 'query', questions: [{ name: 's-r1._edgectl._udp.local', type: 'TXT' }] },
      '10.0.0.9',
      40000,
    );
    await r.clock.advance(5);
    out = r.lan.sentBy('10.0.0.1', (p) => p.at >= t && p.to !== undefined);
    assert.equal(out.length, 1, 'legacy unicast answer (§6.7)');
    assert.deepEqual(out[0]!.to, { address: '10.0.0.9', port: 40000 });
    assert.equal(out[0]!.packet.id, 77);
    assert.deepEqual(out[0]!.packet.questions, [{ name: 's-r1._edgectl._udp.local', type: 'TXT' }]);
    assert.deepEqual(
      out[0]!.packet.answers!.map((a) => [a.type, a.ttl, a.flush]),
      [['TXT', 10, false]],
    );

    t = r.clock.now();
    inject(r, { type: 'query', questions: [{ name: '_services._dns-sd._udp.local', type: 'PTR' }] });
    inject(r, {
      type: 'query',
      questions: [
        { name: 'other.local', type: 'A' },
        { name: '_http._tcp.local', type: 'PTR' },
      ],
    });
    await r.clock.advance(200);
    out = since(t);
    assert.equal(out.length, 1, 'only the service enumeration is ours');
    assert.deepEqual(
      out[0]!.packet.answers!.map((a) => [a.type, a.data]),
      [['PTR', '_edgectl._udp.local']],
    );
    assert.ok(d.stats().answersSent >= 5);
    await d.close();
  });

  test('nothing is answered while probing', async () => {
    const r = rig();
    const d = r.agent('10.0.0.1', ad('r1'));
    const started = d.start().catch((e: Error) => e);
    await r.clock.advance(300);
    assert.equal(d.phase, 'probing');
    inject(r, {
      type: 'query',
      questions: [
        { name: '_edgectl._udp.local', type: 'PTR' },
        { name: 'r1-s.local', type: 'A' },
      ],
    });
    await r.clock.advance(150);
    assert.equal(r.lan.sentBy('10.0.0.1', (p) => p.packet.type === 'response').length, 0);
    await d.close();
    assert.equal(((await started) as { code?: string }).code, 'EDGE_DISCOVERY_CLOSED');
  });
});

describe('MdnsDiscovery responder: conflicts (RFC 6762 §8.1, §8.2, §9)', () => {
  test('a name already in use: the newcomer renames instance and host (-2), never a goodbye for others', async () => {
    const r = rig();
    const x = r.agent('10.0.0.1', ad('r1'));
    await r.started(x);
    const y = r.agent('10.0.0.2', ad('r1', { port: 7001 })); // misconfigured: the same node id
    await r.started(y);
    await r.clock.advance(3000);
    assert.deepEqual(x.names(), { instance: 's-r1._edgectl._udp.local', host: 'r1-s.local' });
    assert.deepEqual(y.names(), { instance: 's-r1-2._edgectl._udp.local', host: 'r1-s-2.local' });
    assert.equal(y.stats().renames, 2);
    assert.equal(x.stats().conflicts, 0, 'the owner just defends');
    const anns = r.lan.sentBy('10.0.0.2', isAnnouncement);
    assert.ok(
      anns.length >= 2 &&
        anns.every((p) =>
          p.packet.answers!.every((a) => !a.name.startsWith('s-r1.') && a.name !== 'r1-s.local'),
        ),
    );
    await y.close();
    const goodbyes = r.lan.sentBy('10.0.0.2', (p) => records(p).some((a) => a.ttl === 0)).flatMap(records);
    assert.deepEqual([...new Set(goodbyes.map((a) => (a.type === 'PTR' ? String(a.data) : a.name)))].sort(), [
      'r1-s-2.local',
      's-r1-2._edgectl._udp.local',
    ]);
    await x.close();
  });

  test('simultaneous probes: the lexicographically earlier set defers 1 s and probes again (§8.2)', async () => {
    const r = rig();
    const d = r.agent('10.0.0.1', ad('r1'));
    void d.start();
    await r.clock.until(() => r.lan.sentBy('10.0.0.1', isProbe).length === 1, 1000, 1);
    const theirSrv = (port: number): MdnsRecord => ({
      name: 's-r1._edgectl._udp.local',
      type: 'SRV',
      ttl: 120,
      flush: true,
      data: { priority: 0, weight: 0, port, target: 'r1-s.local' },
    });
    const ourTxt: MdnsRecord = {
      name: 's-r1._edgectl._udp.local',
      type: 'TXT',
      ttl: 4500,
      flush: true,
      data: encodeTxt(ad('r1')),
    };
    // Same TXT, their SRV has a lower port: our set is later, we win and carry on.
    inject(r, {
      type: 'query',
      questions: [{ name: 's-r1._edgectl._udp.local', type: 'ANY' }],
      authorities: [theirSrv(6000), ourTxt],
    });
    await r.clock.advance(10);
    assert.equal(d.stats().probeTieBreaksLost, 0);
    // Their SRV has a higher port: we lose, wait one second, probe again from the first probe.
    inject(r, {
      type: 'query',
      questions: [{ name: 's-r1._edgectl._udp.local', type: 'ANY' }],
      authorities: [ourTxt, theirSrv(8000)],
    });
    const lostAt = r.clock.now() + 1;
    await r.clock.advance(3000);
    assert.equal(d.stats().probeTieBreaksLost, 1);
    const after = r.lan.sentBy('10.0.0.1', (p) => isProbe(p) && p.at > lostAt);
    assert.equal(after.length, 3);
    assert.equal(after[0]!.at - lostAt, 1000);
    assert.equal(d.phase, 'announced', 'nobody defended the name: it is ours');
    assert.deepEqual(d.names().instance, 's-r1._edgectl._udp.local');
    await d.close();
  });

  test('update() while probing changes nothing on the wire and is no rival of ours', async () => {
    const r = rig();
    const d = r.agent('10.0.0.1', ad('r1', { role: 'learner' }));
    void d.start();
    await r.clock.until(() => r.lan.sentBy('10.0.0.1', isProbe).length === 1, 1000, 1);
    await d.update({ role: 'leader', term: 5 });
    await r.clock.advance(2000);
    assert.equal(d.stats().probeTieBreaksLost, 0);
    assert.equal(d.phase, 'announced');
    const ann = r.lan.sentBy('10.0.0.1', isAnnouncement)[0]!;
    assert.deepEqual(txtOf(ann.packet.answers!.find((x) => x.type === 'TXT')), [
      'txtvers=1',
      'site=s',
      'node=r1',
      'port=7000',
    ]);
    await d.close();
  });

  test('a conflict after announcing resets to probing; if the other host still claims the name, rename (§9)', async () => {
    const r = rig();
    const d = r.agent('10.0.0.1', ad('r1'));
    await r.started(d);
    await r.clock.advance(2000);
    const rival: MdnsRecord = {
      name: 's-r1._edgectl._udp.local',
      type: 'SRV',
      ttl: 120,
      flush: true,
      data: { priority: 0, weight: 0, port: 9, target: 'rival.local' },
    };
    inject(r, { type: 'response', answers: [rival] });
    await r.clock.advance(5);
    assert.equal(d.phase, 'probing');
    assert.equal(d.names().instance, 's-r1._edgectl._udp.local', 'no rename yet: first probe again');
    inject(r, { type: 'response', answers: [rival] }); // the rival defends
    await r.clock.advance(3000);
    assert.equal(d.phase, 'announced');
    assert.equal(d.names().instance, 's-r1-2._edgectl._udp.local');
    assert.equal(d.stats().conflicts, 2);
    // Its own records echoing back, even an older TXT, are never a conflict.
    inject(r, {
      type: 'response',
      answers: [
        {
          name: 's-r1-2._edgectl._udp.local',
          type: 'TXT',
          ttl: 4500,
          flush: true,
          data: encodeTxt(ad('r1')),
        },
      ],
    });
    await r.clock.advance(5);
    assert.equal(d.phase, 'announced');
    await d.close();
  });
});

describe('MdnsDiscovery: update, goodbye, expiry', () => {
  test('update() of role and term sends nothing: they are not advertised (the transport carries them)', async () => {
    const r = rig();
    const a = r.agent('10.0.0.1', ad('r1'));
    const b = r.agent('10.0.0.2', ad('r2'));
    void a.start();
    void b.start();
    await r.clock.until(() => a.peers().length === 1, 5000);
    await r.clock.advance(2000);
    const t = r.clock.now();
    await b.update({ role: 'leader', term: 3 });
    await r.clock.advance(3000);
    assert.equal(r.lan.sentBy('10.0.0.2', (p) => p.at >= t && p.packet.type === 'response').length, 0);
    assert.deepEqual(
      a.peers().map((p) => [p.nodeId, p.role, p.term]),
      [['r2', 'starting', 0]],
    );
    await Promise.all([a.close(), b.close()]);
  });

  test('close(): a goodbye (TTL 0) for PTR/SRV/TXT/A; the peer drops it exactly 1 s later (§10.1)', async () => {
    const r = rig();
    const a = r.agent('10.0.0.1', ad('r1'));
    const b = r.agent('10.0.0.2', ad('r2'));
    void a.start();
    void b.start();
    await r.clock.until(() => a.peers().length === 1, 5000);
    const t = r.clock.now();
    await b.close();
    const bye = r.lan.sentBy('10.0.0.2', (p) => p.at >= t);
    assert.equal(bye.length, 1);
    assert.deepEqual(
      records(bye[0]!).map((x) => [x.type, x.ttl]),
      [
        ['PTR', 0],
        ['SRV', 0],
        ['TXT', 0],
        ['A', 0],
      ],
    );
    await r.clock.advance(1000); // delivered at t+1 (latency); removed at t+1+1000
    assert.equal(a.peers().length, 1);
    await r.clock.advance(1);
    assert.deepEqual(a.peers(), []);
    assert.equal(a.stats().goodbyesReceived, 4);
    await b.close(); // idempotent
    await a.close();
  });

  test('close() while probing sends no goodbye (the name is not ours) and start() rejects', async () => {
    const r = rig();
    const d = r.agent('10.0.0.1', ad('r1'));
    const started = d.start();
    await r.clock.advance(300);
    await d.close();
    await assert.rejects(started, { code: 'EDGE_DISCOVERY_CLOSED' });
    assert.equal(r.lan.sentBy('10.0.0.1', (p) => records(p).some((x) => x.ttl === 0)).length, 0);
    await assert.rejects(d.start(), { code: 'EDGE_DISCOVERY_CLOSED' });
    assert.equal(r.clock.pending(), 0, 'every timer cleared');
  });

  test('a peer that vanishes without a goodbye is refreshed at 80–95 % and dropped when its SRV/A expire', async () => {
    const r = rig();
    const a = r.agent('10.0.0.1', ad('r1'));
    const b = r.agent('10.0.0.2', ad('r2'));
    void a.start();
    void b.start();
    await r.clock.until(() => a.peers().length === 1, 5000);
    await r.clock.advance(1500); // b's second announcement
    const lastHeard = a.peers()[0]!.lastSeenMs;
    r.lan.unplug('10.0.0.2');
    const gone = await r.clock.until(() => a.peers().length === 0, 200_000, 100);
    const goneAt = r.clock.now();
    assert.ok(
      goneAt - lastHeard >= 120_000 && goneAt - lastHeard <= 120_100,
      `dropped ${goneAt - lastHeard} ms after last heard (${gone})`,
    );
    const refreshes = r.lan.sentBy(
      '10.0.0.1',
      (p) =>
        p.packet.type === 'query' &&
        p.at > lastHeard &&
        (p.packet.questions ?? []).some((q) => q.type === 'SRV' || q.type === 'A'),
    );
    const firstRefresh = refreshes[0]!.at - lastHeard;
    assert.ok(
      firstRefresh >= 96_000 && firstRefresh <= 98_500,
      `first refresh at ${firstRefresh} ms (80–82 % of 120 s)`,
    );
    assert.ok(refreshes.length >= 4);
    assert.deepEqual(
      new Set(refreshes.flatMap((p) => p.packet.questions!.map((q) => `${q.name} ${q.type}`))),
      new Set(['s-r2._edgectl._udp.local SRV', 'r2-s.local A']),
    );
    await a.close();
  });
});

describe('MdnsDiscovery browser: resolution, filtering, robustness', () => {
  /** A host that answers only exactly what it is asked, one record per answer, no additionals. */
  async function minimalResponder(
    r: Rig,
    address: string,
    recs: MdnsRecord[],
  ): Promise<{ socket: MdnsSocket; asked: string[] }> {
    const asked: string[] = [];
    const socket: MdnsSocket = await r.lan.factory(
      { name: 'eth0', address, netmask: '255.255.255.0' },
      {
        packet: (raw) => {
          const p = raw as { type: string; questions: { name: string; type: string }[] };
          if (p.type !== 'query' || (raw as { authorities: unknown[] }).authorities.length > 0) return;
          for (const q of p.questions) {
            const hits = recs.filter(
              (x) => x.name.toLowerCase() === q.name.toLowerCase() && (x.type === q.type || q.type === 'ANY'),
            );
            if (hits.length === 0) continue;
            asked.push(`${q.name} ${q.type}`);
            void socket.send({ type: 'response', answers: hits });
          }
        },
        malformed: () => {},
        warning: () => {},
      },
    );
    return { socket, asked };
  }

  const zRecords = (role = 'leader'): MdnsRecord[] => [
    { name: '_edgectl._udp.local', type: 'PTR', ttl: 4500, data: 'robot z._edgectl._udp.local' },
    {
      name: 'robot z._edgectl._udp.local',
      type: 'SRV',
      ttl: 120,
      flush: true,
      data: { priority: 0, weight: 0, port: 7009, target: 'z.local' },
    },
    {
      name: 'robot z._edgectl._udp.local',
      type: 'TXT',
      ttl: 4500,
      flush: true,
      // What an earlier agent (or avahi-publish) sends: every key, role and term included.
      data: [
        ...encodeTxt(ad('z', { port: 7009 })),
        ...['ver=0.1.0', `role=${role}`, 'term=8', 'srv=1'].map((x) => Buffer.from(x)),
      ],
    },
    { name: 'z.local', type: 'A', ttl: 120, flush: true, data: '10.0.0.9' },
  ];

  test('a robot the config names that was missed is asked for every few seconds, not at the 60 s cap', async () => {
    const r = rig(3);
    const members = ['r1', 'r2'];
    const d1 = r.agent('10.0.0.1', ad('r1'), { members });
    await r.started(d1);
    await r.clock.advance(30_000);
    // r1 hears nothing while r2 probes and announces (its receive buffer overflowing, say).
    r.lan.deafTo.add('10.0.0.1');
    const d2 = r.agent('10.0.0.2', ad('r2'), { members });
    await r.started(d2);
    await r.clock.advance(3_000);
    assert.equal(r.lan.sentBy('10.0.0.2', isAnnouncement).length, 2, 'r2 announced, unheard');
    r.lan.deafTo.delete('10.0.0.1');
    const healed = r.clock.now();
    await r.clock.until(() => d1.peers().some((p) => p.nodeId === 'r2'), 10_000);
    assert.ok(r.clock.now() - healed <= 5_000, `found ${r.clock.now() - healed} ms after it could hear`);
    const browsesWhileMissing = r.lan
      .sentBy('10.0.0.1', isBrowse)
      .map((p) => p.at)
      .filter((at) => at > 20_000 && at <= healed);
    assert.ok(
      browsesWhileMissing.length >= 3,
      `${browsesWhileMissing.length} browse queries while r2 was missing`,
    );
    for (const [a, b] of browsesWhileMissing.slice(1).map((at, i) => [browsesWhileMissing[i]!, at] as const))
      assert.ok(b - a <= 4_800, `browse queries ${b - a} ms apart while r2 was missing`);
    // Once every robot is seen, the interval grows again (§5.2).
    const since = r.clock.now();
    await r.clock.advance(30_000);
    const after = r.lan
      .sentBy('10.0.0.1', isBrowse)
      .filter((p) => p.at > since)
      .map((p) => p.at);
    assert.ok(after.length <= 3, `${after.length} browse queries in 30 s once all were seen`);
    await d1.close();
    await d2.close();
  });

  test('an instance known only by its PTR is resolved with SRV/TXT, then A queries (split packets)', async () => {
    const r = rig();
    const z = await minimalResponder(r, '10.0.0.9', zRecords());
    const d = r.agent('10.0.0.1', ad('r1'));
    void d.start();
    await r.clock.until(() => d.peers().length === 1, 10_000);
    assert.deepEqual(z.asked.slice(0, 4), [
      '_edgectl._udp.local PTR',
      'robot z._edgectl._udp.local SRV',
      'robot z._edgectl._udp.local TXT',
      'z.local A',
    ]);
    assert.deepEqual(
      d.peers().map((p) => [p.nodeId, p.role, p.term, p.port, p.addresses]),
      [['z', 'leader', 8, 7009, ['10.0.0.9']]],
    );

    // A TXT-only update with the cache-flush bit (what ciao and Avahi send) changes the peer at once.
    void z.socket.send({ type: 'response', answers: [zRecords('follower')[2]!] });
    await r.clock.advance(5);
    assert.equal(d.peers()[0]!.role, 'follower');
    await r.clock.advance(2000);
    assert.equal(d.peers()[0]!.role, 'follower', 'the flushed TXT is gone, not back');
    await d.close();
    await z.socket.close();
  });

  test('other sites, ourselves, foreign subnets, bad ports and opcodes are filtered and counted', async () => {
    const r = rig();
    const d = r.agent('10.0.0.1', ad('r1'));
    await r.started(d);
    const otherSite: MdnsRecord[] = [
      { name: '_edgectl._udp.local', type: 'PTR', ttl: 4500, data: 'x-r2._edgectl._udp.local' },
      {
        name: 'x-r2._edgectl._udp.local',
        type: 'SRV',
        ttl: 120,
        flush: true,
        data: { priority: 0, weight: 0, port: 1, target: 'r2-x.local' },
      },
      {
        name: 'x-r2._edgectl._udp.local',
        type: 'TXT',
        ttl: 4500,
        flush: true,
        data: encodeTxt(ad('r2', { siteId: 'x' })),
      },
      { name: 'r2-x.local', type: 'A', ttl: 120, flush: true, data: '10.0.0.7' },
    ];
    inject(r, { type: 'response', answers: otherSite }, '10.0.0.7');
    inject(r, { type: 'response', answers: zRecords() }, '192.168.7.9');
    inject(r, { type: 'response', answers: zRecords() }, '10.0.0.9', 5354);
    r.lan.deliver(
      { ...toDecoded({ type: 'response', answers: zRecords() }), opcode: 'STATUS' },
      { address: '10.0.0.9', port: 5353 },
    );
    r.lan.deliver(
      { ...toDecoded({ type: 'response', answers: zRecords() }), rcode: 'SERVFAIL' },
      { address: '10.0.0.9', port: 5353 },
    );
    // A response for our own name with our own node id in another instance: never a peer.
    const self = zRecords().map((x) => (x.type === 'TXT' ? { ...x, data: encodeTxt(ad('r1')) } : x));
    inject(r, { type: 'response', answers: self }, '10.0.0.9');
    await r.clock.advance(3000);
    assert.deepEqual(d.peers(), []);
    const s = d.stats();
    assert.equal(s.ignoredOtherSite, 1);
    assert.equal(s.ignoredForeignSubnet, 1);
    assert.equal(s.ignoredNotMdns, 3);
    assert.equal(s.malformed, 0);
    assert.equal(s.internalErrors, 0);
    await d.close();
  });

  test('malformed packets are counted and dropped; throwing listeners and loggers cannot hurt', async () => {
    const r = rig();
    const d = r.agent('10.0.0.1', ad('r1'), {
      onWarning: () => {
        throw new Error('logger bug');
      },
    });
    d.onChange(() => {
      throw new Error('listener bug');
    });
    await r.started(d);
    const from = { address: '10.0.0.9', port: 5353 };
    const garbage: unknown[] = [
      null,
      42,
      { type: 'weird' },
      { type: 'response', answers: 'x' },
      {
        type: 'response',
        answers: [{ name: 'robot z._edgectl._udp.local', type: 'SRV', class: 'IN', ttl: 10, data: null }],
      },
      { type: 'response', answers: [{ name: 'z.local', type: 'A', class: 'IN', ttl: 10, data: '1.2.3' }] },
      { type: 'query', questions: [{ name: 7 }] },
      {
        type: 'response',
        answers: [
          { name: '_edgectl._udp.local', type: 'PTR', class: 'IN', ttl: 1e12, data: 'a._edgectl._udp.local' },
        ],
      },
    ];
    for (const g of garbage) r.lan.deliver(g, from);
    r.lan.deliverUndecodable();
    await r.clock.advance(100);
    assert.equal(d.stats().malformed, garbage.length + 1);
    assert.equal(d.stats().internalErrors, 0);
    // Everything still works: a peer appears, and the throwing listener is counted.
    inject(r, { type: 'response', answers: zRecords() });
    await r.clock.advance(100);
    assert.equal(d.peers().length, 1);
    assert.equal(d.stats().listenerErrors, 1);
    // A TXT with our service but an unknown txtvers is counted, not a peer.
    inject(r, {
      type: 'response',
      answers: [
        { name: '_edgectl._udp.local', type: 'PTR', ttl: 4500, data: 'v2._edgectl._udp.local' },
        {
          name: 'v2._edgectl._udp.local',
          type: 'TXT',
          ttl: 4500,
          flush: true,
          data: [Buffer.from('txtvers=2')],
        },
      ],
    });
    await r.clock.advance(100);
    assert.equal(d.stats().badTxt, 1);
    assert.equal(d.peers().length, 1);
    await d.close();
  });

  test('a failing send is counted, never thrown', async () => {
    const r = rig();
    const d = r.agent('10.0.0.1', ad('r1'));
    r.lan.failSendsFrom.add('10.0.0.1');
    await r.started(d);
    assert.ok(d.stats().sendErrors >= 4);
    await d.close();
  });
});

describe('MdnsDiscovery: interfaces', () => {
  test('selectInterfaces: named ones (even lo), or every non-internal IPv4 interface; a clear error otherwise', () => {
    const table = interfaceTable({
      lo: { address: '127.0.0.1', netmask: '255.0.0.0', internal: true },
      wlan0: { address: '10.0.0.5' },
      eth1: { address: '10.1.0.5' },
    })();
    assert.deepEqual(
      selectInterfaces(undefined, table).map((i) => i.name),
      ['wlan0', 'eth1'],
    );
    assert.deepEqual(selectInterfaces(['wlan0'], table), [
      { name: 'wlan0', address: '10.0.0.5', netmask: '255.255.255.0' },
    ]);
    assert.deepEqual(
      selectInterfaces(['lo'], table).map((i) => i.address),
      ['127.0.0.1'],
    );
    assert.throws(
      () => selectInterfaces(['wlan1'], table),
      (e: Error & { code?: string; hint?: string }) =>
        e.code === 'EDGE_DISCOVERY_NO_INTERFACE' && /wlan1/.test(e.message) && /wlan0/.test(e.hint ?? ''),
    );
    assert.throws(() => selectInterfaces(undefined, { lo: table.lo }), {
      code: 'EDGE_DISCOVERY_NO_INTERFACE',
    });
    assert.ok(onSubnet('10.0.0.200', { name: 'x', address: '10.0.0.5', netmask: '255.255.255.0' }));
    assert.ok(!onSubnet('10.0.1.1', { name: 'x', address: '10.0.0.5', netmask: '255.255.255.0' }));
    assert.ok(!onSubnet('fe80::1', { name: 'x', address: '10.0.0.5', netmask: '255.255.255.0' }));
  });

  test('start() rejects with a coded error when there is no interface or the socket fails', async () => {
    const r = rig();
    const none = r.agent('10.0.0.1', ad('r1'), { networkInterfaces: () => ({}) });
    await assert.rejects(none.start(), { code: 'EDGE_DISCOVERY_NO_INTERFACE' });
    const broken = r.agent('10.0.0.1', ad('r1'), {
      socketFactory: async () => {
        throw Object.assign(new Error('bind EACCES 0.0.0.0:5353'), { code: 'EACCES' });
      },
    });
    await assert.rejects(
      broken.start(),
      (e: Error & { code?: string }) => e.code === 'EDGE_DISCOVERY_SOCKET' && /EACCES/.test(e.message),
    );
    await broken.close();
  });

  test('two interfaces: one socket each, own address per interface, other-subnet echoes filtered', async () => {
    const r = rig();
    const a = r.agent('unused', ad('r1'), {
      networkInterfaces: interfaceTable({ eth0: { address: '10.0.0.1' }, eth1: { address: '10.1.0.1' } }),
    });
    const b = r.agent('10.0.0.2', ad('r2'));
    void a.start();
    void b.start();
    await r.clock.until(() => a.peers().length === 1 && b.peers().length === 1, 5000);
    await r.clock.advance(3000);
    assert.deepEqual(
      a.interfaces().map((i) => i.address),
      ['10.0.0.1', '10.1.0.1'],
    );
    const aRecords = r.lan.log.filter(isAnnouncement).filter((p) => p.from !== '10.0.0.2');
    assert.deepEqual(
      new Set(
        aRecords.map((p) => `${p.from} ${String(p.packet.answers!.find((x) => x.type === 'A')!.data)}`),
      ),
      new Set(['10.0.0.1 10.0.0.1', '10.1.0.1 10.1.0.1']),
    );
    assert.deepEqual(
      b.peers()[0]!.addresses,
      ['10.0.0.1'],
      'b is not on 10.1.0.0/24: it never takes that address',
    );
    assert.ok(a.stats().ignoredForeignSubnet > 0 && b.stats().ignoredForeignSubnet > 0);
    assert.equal(a.stats().conflicts, 0, 'our eth1 announcement heard on eth0 is not a conflict');
    await Promise.all([a.close(), b.close()]);
  });

  test('an address change is followed: new socket, probe and announce again, peers see the new address', async () => {
    const r = rig();
    const entries = { eth0: { address: '10.0.0.1' } };
    const a = r.agent('unused', ad('r1'), {
      networkInterfaces: interfaceTable(entries),
      interfaceRescanMs: 5000,
    });
    const b = r.agent('10.0.0.2', ad('r2'));
    void a.start();
    void b.start();
    await r.clock.until(() => b.peers().length === 1, 5000);
    entries.eth0.address = '10.0.0.77';
    await r.clock.until(() => b.peers()[0]?.addresses.join() === '10.0.0.77', 10_000, 50);
    assert.deepEqual(
      a.interfaces().map((i) => i.address),
      ['10.0.0.77'],
    );
    assert.equal(a.phase, 'announced');
    assert.deepEqual(
      a.peers().map((p) => p.nodeId),
      ['r2'],
    );
    await Promise.all([a.close(), b.close()]);
    await r.clock.advance(10); // the goodbyes in flight on the fake LAN
    assert.equal(r.clock.pending(), 0, 'no timer left behind, the rescan timer included');
  });
});
