import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  RecordCache,
  compareProbeSets,
  decodeTxt,
  encodeName,
  encodeTxt,
  escapeInstanceLabel,
  hostLabel,
  instanceLabel,
  isWireName,
  parseTxtAttributes,
  parseWireQuestion,
  parseWireRecord,
  rdataBytes,
  recordKey,
  splitServiceInstanceName,
  unescapeInstanceLabel,
  type MdnsRecord,
} from './dnssd.ts';
import { CONTROL_CHARACTER, ROLES, type Advertisement } from './discovery.ts';

const AD: Advertisement = {
  siteId: 'depot-1',
  nodeId: 'robot-7',
  agentVersion: '0.1.0',
  role: 'leader',
  term: 42,
  port: 7946,
  serverCapable: true,
};
const b = (s: string): Buffer => Buffer.from(s, 'utf8');
const strings = (list: Buffer[]): string[] => list.map((x) => x.toString('utf8'));

describe('TXT schema (RFC 6763 §6)', () => {
  test('encodes only what a peer needs to find us, txtvers first: no role, term, version or capability', () => {
    assert.deepEqual(strings(encodeTxt(AD)), ['txtvers=1', 'site=depot-1', 'node=robot-7', 'port=7946']);
    assert.deepEqual(
      strings(encodeTxt({ ...AD, role: 'follower', term: 9, agentVersion: '9.9.9', serverCapable: false })),
      strings(encodeTxt(AD)),
      'the election never changes the TXT',
    );
  });

  test('CONTROL_CHARACTER is exactly Unicode general category Cc', () => {
    for (let cp = 0; cp <= 0x10ffff; cp++) {
      if (cp >= 0xd800 && cp <= 0xdfff) continue;
      const ch = String.fromCodePoint(cp);
      if (CONTROL_CHARACTER.test(ch) !== /\p{Cc}/u.test(ch)) assert.fail(`U+${cp.toString(16)}`);
    }
  });

  test('round-trips any valid advertisement', () => {
    const arb = fc.record({
      siteId: fc
        .string({ minLength: 1, maxLength: 40 })
        .filter((s) => s.isWellFormed() && !/\p{Cc}/u.test(s)),
      nodeId: fc.stringMatching(/^[a-z0-9-]{1,63}$/),
      agentVersion: fc.stringMatching(/^[\x21-\x7e]{1,20}$/),
      role: fc.constantFrom(...ROLES),
      term: fc.nat({ max: Number.MAX_SAFE_INTEGER }),
      port: fc.integer({ min: 1, max: 65535 }),
      serverCapable: fc.boolean(),
    });
    fc.assert(
      fc.property(arb, (ad) => {
        const txt = encodeTxt(ad);
        for (const s of txt) assert.ok(s.length <= 255);
        const dec = decodeTxt(txt);
        assert.ok(dec.ok, JSON.stringify(dec));
        const unadvertised = { agentVersion: 'unknown', role: 'starting', term: 0, serverCapable: false };
        assert.deepEqual(dec.advertisement, { ...ad, ...unadvertised });
      }),
    );
  });

  test('keys are case-insensitive, the first occurrence wins, unknown keys are ignored (§6.4, §6.5)', () => {
    const dec = decodeTxt([
      b('TXTVERS=1'),
      b('Site=s'),
      b('site=other'),
      b('NODE=n'),
      b('ver=1'),
      b('role=follower'),
      b('term=0'),
      b('port=1'),
      b('srv=0'),
      b('future=x'),
      b('flag'),
    ]);
    assert.ok(dec.ok);
    assert.equal(dec.advertisement.siteId, 's');
    const kv = parseTxtAttributes([b('flag'), b('=novalue'), b('k=a=b'), b('empty=')]);
    assert.deepEqual(
      [...kv],
      [
        ['flag', undefined],
        ['k', 'a=b'],
        ['empty', ''],
      ],
    );
  });

  test('reads the keys earlier agents also published, validated, with defaults when absent', () => {
    const legacy = [...strings(encodeTxt(AD)), 'ver=0.1.0', 'role=leader', 'term=42', 'srv=1'].map(b);
    const dec = decodeTxt(legacy);
    assert.ok(dec.ok);
    assert.deepEqual(dec.advertisement, AD);
  });

  test('refuses what is missing or malformed, and still says which site it was', () => {
    // An earlier agent's TXT, with every key: the keys we no longer send are still checked when there.
    const base = [...strings(encodeTxt(AD)), 'ver=0.1.0', 'role=leader', 'term=42', 'srv=1'];
    const without = (key: string): Buffer[] => base.filter((s) => !s.startsWith(`${key}=`)).map(b);
    const replace = (key: string, value: string): Buffer[] =>
      base.map((s) => (s.startsWith(`${key}=`) ? `${key}=${value}` : s)).map(b);
    for (const key of ['txtvers', 'site', 'node', 'port'])
      assert.equal(decodeTxt(without(key)).ok, false, key);
    for (const key of ['ver', 'role', 'term', 'srv']) assert.equal(decodeTxt(without(key)).ok, true, key);
    const bad: [string, string][] = [
      ['txtvers', '2'],
      ['term', '-1'],
      ['term', '01'],
      ['term', '1e3'],
      ['term', '99999999999999999'],
      ['port', '0'],
      ['port', '65536'],
      ['port', '080'],
      ['srv', 'yes'],
      ['role', 'king'],
      ['node', 'Robot_7'],
      ['ver', 'has space'],
    ];
    for (const [k, v] of bad) {
      const dec = decodeTxt(replace(k, v));
      assert.equal(dec.ok, false, `${k}=${v}`);
      assert.equal(dec.ok ? undefined : dec.siteId, 'depot-1');
    }
    assert.equal(decodeTxt([Buffer.from([0x73, 0x69, 0x74, 0x65, 0x3d, 0xff])]).ok, false, 'not UTF-8');
    for (const control of ['\u0000', '\n', '\u007f', '\u0085', '\u009f'])
      assert.equal(decodeTxt(replace('site', `depot${control}1`)).ok, false, JSON.stringify(control));
    assert.deepEqual(decodeTxt([]), { ok: false, reason: 'unsupported txtvers undefined' });
  });
});

describe('instance and host names (RFC 6763 §4.3, RFC 6762 §9)', () => {
  test('escapes dots and backslashes for presentation and back', () => {
    assert.equal(escapeInstanceLabel('My.Robot\\7'), 'My\\.Robot\\\\7');
    assert.equal(unescapeInstanceLabel('My\\.Robot\\\\7'), 'My.Robot\\7');
    assert.equal(
      unescapeInstanceLabel('robot\\046a\\032b'),
      'robot.a b',
      'decimal escapes (as avahi-browse prints)',
    );
    assert.equal(unescapeInstanceLabel('trailing\\'), 'trailing\\');
    fc.assert(
      fc.property(fc.string(), (s) => assert.equal(unescapeInstanceLabel(escapeInstanceLabel(s)), s)),
    );
    assert.deepEqual(splitServiceInstanceName('My\\.Robot._edgectl._udp.local'), {
      instance: 'My.Robot',
      service: '_edgectl._udp.local',
    });
    assert.equal(splitServiceInstanceName('x._other._udp.local'), undefined);
    assert.equal(splitServiceInstanceName('_edgectl._udp.local'), undefined);
  });

  test('instance label <siteId>-<nodeId>, host label <nodeId>-<siteId>; sanitized; renames add -n', () => {
    assert.equal(instanceLabel('depot-1', 'robot-7'), 'depot-1-robot-7');
    assert.equal(hostLabel('robot-7', 'depot-1'), 'robot-7-depot-1');
    assert.equal(instanceLabel('Depot 1.North', 'robot-7', 2), 'depot-1-north-robot-7-2');
    assert.equal(hostLabel('robot-7', 'Dépôt', 3), 'robot-7-d-p-t-3');
    assert.equal(instanceLabel('---', 'r'), 'x-r');
  });

  test('long ids are truncated so that every label, rename suffix included, fits 63 bytes', () => {
    const node = 'n'.repeat(63);
    const site = 's'.repeat(200);
    for (const n of [1, 2, 99, 9999]) {
      for (const label of [
        instanceLabel(site, node, n),
        hostLabel(node, site, n),
        instanceLabel(site, 'short', n),
        hostLabel('short', site, n),
      ]) {
        assert.ok(Buffer.byteLength(label) <= 63, `${label} (${label.length})`);
        assert.ok(isWireName(`${label}._edgectl._udp.local`));
      }
    }
    assert.ok(instanceLabel(site, 'robot-7').endsWith('-robot-7'), 'the node id survives; the site is cut');
    assert.ok(hostLabel('robot-7', site).startsWith('robot-7-'));
  });

  test('isWireName', () => {
    assert.ok(isWireName('a.local'));
    assert.ok(!isWireName(''));
    assert.ok(!isWireName('a..local'));
    assert.ok(!isWireName(`${'a'.repeat(64)}.local`));
    assert.ok(!isWireName(Array(130).fill('a').join('.')));
    assert.ok(!isWireName(42));
  });
});

describe('probe tie-break (RFC 6762 §8.2)', () => {
  const a = (data: string): MdnsRecord => ({ name: 'host.local', type: 'A', ttl: 120, flush: true, data });

  test('the RFC example: 169.254.200.50 is lexicographically later than 169.254.99.200', () => {
    assert.ok(compareProbeSets([a('169.254.200.50')], [a('169.254.99.200')]) > 0, 'we win');
    assert.ok(compareProbeSets([a('169.254.99.200')], [a('169.254.200.50')]) < 0, 'we lose');
  });

  test('identical sets are no conflict (our own probe looping back), whatever the order and TTL', () => {
    const srv: MdnsRecord = {
      name: 'i._edgectl._udp.local',
      type: 'SRV',
      ttl: 120,
      flush: true,
      data: { priority: 0, weight: 0, port: 1, target: 'h.local' },
    };
    const txt: MdnsRecord = {
      name: 'i._edgectl._udp.local',
      type: 'TXT',
      ttl: 4500,
      flush: true,
      data: encodeTxt(AD),
    };
    assert.equal(compareProbeSets([srv, txt], [{ ...txt, ttl: 1 }, srv]), 0);
  });

  test('class, then type, then raw rdata; a longer list that shares the prefix is later', () => {
    const txt: MdnsRecord = { name: 'x', type: 'TXT', ttl: 1, data: [b('a=1')] };
    const srv: MdnsRecord = {
      name: 'x',
      type: 'SRV',
      ttl: 1,
      data: { priority: 0, weight: 0, port: 1, target: 'h.local' },
    };
    // TXT (16) sorts before SRV (33); rdata decides between equal types.
    assert.ok(compareProbeSets([srv], [txt]) > 0);
    assert.ok(compareProbeSets([{ ...srv, data: { ...srv.data, port: 2 } }], [srv]) > 0);
    assert.ok(compareProbeSets([txt, srv], [txt]) > 0);
    assert.ok(compareProbeSets([txt], [txt, srv]) < 0);
    assert.ok(
      compareProbeSets([a('10.0.0.1')], [{ name: 'host.local', type: 'AAAA', ttl: 120, data: 'fe80::1' }]) <
        0,
      'A (1) < AAAA (28)',
    );
  });

  test('rdata is the uncompressed wire form', () => {
    assert.deepEqual([...rdataBytes(a('10.1.2.3'))], [10, 1, 2, 3]);
    assert.deepEqual([...encodeName('ab.local')], [2, 0x61, 0x62, 5, 0x6c, 0x6f, 0x63, 0x61, 0x6c, 0]);
    const srv = rdataBytes({
      name: 'x',
      type: 'SRV',
      ttl: 1,
      data: { priority: 1, weight: 2, port: 0x1f90, target: 'h' },
    });
    assert.deepEqual([...srv], [0, 1, 0, 2, 0x1f, 0x90, 1, 0x68, 0]);
    assert.deepEqual(
      [...rdataBytes({ name: 'x', type: 'TXT', ttl: 1, data: [] })],
      [0],
      'empty TXT is one empty string',
    );
    assert.equal(
      recordKey(a('10.1.2.3')),
      recordKey({ ...a('10.1.2.3'), name: 'HOST.local', ttl: 0, flush: false }),
      'case, TTL and flush do not matter',
    );
  });
});

describe('wire validation', () => {
  test('records of our types are checked field by field', () => {
    const ok = parseWireRecord({
      name: 'h.local',
      type: 'A',
      ttl: 120,
      class: 'IN',
      flush: true,
      data: '10.0.0.1',
    });
    assert.equal(ok.kind, 'record');
    for (const bad of [
      null,
      'x',
      { name: 5, type: 'A' },
      { name: 'h.local', type: 'A', ttl: -1, class: 'IN', data: '10.0.0.1' },
      { name: 'h.local', type: 'A', ttl: 2 ** 31, class: 'IN', data: '10.0.0.1' },
      { name: 'h.local', type: 'A', ttl: 1, class: 'IN', data: '10.0.0.256' },
      { name: 'h..local', type: 'A', ttl: 1, class: 'IN', data: '10.0.0.1' },
      { name: 'x.local', type: 'PTR', ttl: 1, class: 'IN', data: '' },
      {
        name: 'x.local',
        type: 'SRV',
        ttl: 1,
        class: 'IN',
        data: { priority: 0, weight: 0, port: 70000, target: 'h.local' },
      },
      { name: 'x.local', type: 'SRV', ttl: 1, class: 'IN', data: null },
      { name: 'x.local', type: 'TXT', ttl: 1, class: 'IN', data: 'not-a-list' },
      { name: 'x.local', type: 'TXT', ttl: 1, class: 'IN', data: ['string, not bytes'] },
      { name: 'x.local', type: 'TXT', ttl: 1, class: 'IN', data: [Buffer.alloc(256)] },
    ])
      assert.equal(parseWireRecord(bad).kind, 'malformed', JSON.stringify(bad));
  });

  test('other types and classes (OPT, AAAA, NSEC, CH) are kept as "other", not malformed', () => {
    assert.equal(
      parseWireRecord({ name: '.', type: 'OPT', udpPayloadSize: 1440, options: [] }).kind,
      'other',
    );
    assert.equal(
      parseWireRecord({ name: 'h.local', type: 'AAAA', ttl: 120, class: 'IN', data: 'fe80::1' }).kind,
      'other',
    );
    assert.equal(
      parseWireRecord({ name: 'h.local', type: 'A', ttl: 120, class: 'CH', data: '10.0.0.1' }).kind,
      'other',
    );
  });

  test('questions: the QU bit shows up as class UNKNOWN_32769 in dns-packet', () => {
    assert.deepEqual(parseWireQuestion({ name: 'a.local', type: 'A', class: 'IN' }), {
      name: 'a.local',
      type: 'A',
      qu: false,
    });
    assert.deepEqual(parseWireQuestion({ name: 'a.local', type: 'ANY', class: 'UNKNOWN_32769' }), {
      name: 'a.local',
      type: 'ANY',
      qu: true,
    });
    assert.equal(parseWireQuestion({ name: 'a.local', type: 'A', class: 'CH' }), undefined);
    assert.equal(parseWireQuestion({ name: 1, type: 'A', class: 'IN' }), undefined);
  });
});

describe('RecordCache (RFC 6762 §5.2, §10)', () => {
  const ptr = (data: string, ttl = 4500): MdnsRecord => ({
    name: '_edgectl._udp.local',
    type: 'PTR',
    ttl,
    data,
  });
  const txt = (v: string, flush = true, ttl = 4500): MdnsRecord => ({
    name: 'i._edgectl._udp.local',
    type: 'TXT',
    ttl,
    flush,
    data: [b(v)],
  });

  test('a record expires at its TTL; a refresh extends it', () => {
    const c = new RecordCache({ random: () => 0 });
    assert.equal(c.add({ name: 'h.local', type: 'A', ttl: 120, flush: true, data: '10.0.0.1' }, 0), 'added');
    assert.equal(c.lookup('H.LOCAL', 'A', 119_999).length, 1, 'names compare case-insensitively');
    assert.equal(c.lookup('h.local', 'A', 120_000).length, 0);
    assert.equal(
      c.add({ name: 'h.local', type: 'A', ttl: 120, flush: true, data: '10.0.0.1' }, 60_000),
      'refreshed',
    );
    assert.equal(c.nextDeadline(), 60_000 + 96_000, 'the next event is the first refresh point (80 %)');
    assert.equal(c.expire(179_999).length, 0);
    assert.equal(c.expire(180_000).length, 1);
    assert.equal(c.size, 0);
  });

  test('refresh points at 80, 85, 90 and 95 % of the TTL (plus up to 2 %), each once', () => {
    const c = new RecordCache({ random: () => 0.5 });
    c.add(ptr('a._edgectl._udp.local', 100), 0);
    const fired: number[] = [];
    for (let t = 0; t <= 100_000; t += 100) if (c.dueRefreshes(t).length > 0) fired.push(t);
    assert.deepEqual(fired, [81_000, 86_000, 91_000, 96_000]);
  });

  test('a goodbye (TTL 0) removes the record one second later; an unknown goodbye is ignored', () => {
    const c = new RecordCache();
    c.add(ptr('a._edgectl._udp.local'), 0);
    assert.equal(c.add(ptr('b._edgectl._udp.local', 0), 10), 'ignored');
    assert.equal(c.add(ptr('a._edgectl._udp.local', 0), 5000), 'goodbye');
    assert.equal(c.lookup('_edgectl._udp.local', 'PTR', 5999).length, 1);
    assert.equal(c.lookup('_edgectl._udp.local', 'PTR', 6000).length, 0);
    assert.equal(c.dueRefreshes(5500).length, 0, 'no refresh for a record that said goodbye');
    assert.equal(c.expire(6000).length, 1);
  });

  test('cache flush: records of the same name and type older than 1 s go 1 s later; newer ones stay', () => {
    const c = new RecordCache();
    c.add(txt('role=follower'), 0);
    c.add(txt('role=candidate', false), 9_500); // no flush bit: coexists
    c.add(txt('role=leader'), 10_000); // flush: evicts the one from t=0 only (t=9.5 s is < 1 s old)
    assert.deepEqual(
      c
        .lookup('i._edgectl._udp.local', 'TXT', 10_999)
        .map((e) => Buffer.from((e.record.data as Uint8Array[])[0]!).toString()),
      ['role=leader', 'role=candidate', 'role=follower'],
      'newest first; the flushed one lingers for one second',
    );
    assert.deepEqual(
      c
        .lookup('i._edgectl._udp.local', 'TXT', 11_000)
        .map((e) => Buffer.from((e.record.data as Uint8Array[])[0]!).toString()),
      ['role=leader', 'role=candidate'],
    );
  });

  test('each tier is bounded and evicts its least recently received record; tiers do not touch each other', () => {
    const c = new RecordCache({ limits: { member: 2, site: 2, other: 2 } });
    assert.equal(c.add(ptr('m._edgectl._udp.local'), 0, 'member'), 'added');
    assert.equal(c.add(ptr('a._edgectl._udp.local'), 1), 'added');
    assert.equal(c.add(ptr('b._edgectl._udp.local'), 2), 'added');
    assert.equal(c.add(ptr('c._edgectl._udp.local'), 3), 'added', 'a full tier makes room');
    assert.deepEqual(
      c.lookup('_edgectl._udp.local', 'PTR', 4).map((e) => e.record.data),
      ['c._edgectl._udp.local', 'b._edgectl._udp.local', 'm._edgectl._udp.local'],
      'the oldest junk went; the member record stayed',
    );
    assert.deepEqual(c.evictions, { member: 0, site: 0, other: 1 });
    for (let i = 0; i < 1000; i++) c.add(ptr(`j${i}._edgectl._udp.local`, 0x7fff_ffff), 10 + i);
    assert.deepEqual(c.counts(), { member: 1, site: 0, other: 2 }, 'a flood churns its own tier only');
    assert.equal(c.add(ptr('b._edgectl._udp.local'), 2000, 'member'), 'added');
    c.promote((rr) => rr.type === 'PTR' && rr.data === 'j999._edgectl._udp.local', 'member');
    assert.deepEqual(c.counts(), { member: 2, site: 0, other: 1 }, 'promotion moves a record up');
  });

  test('TTLs are capped: a record asking for 2^31 − 1 s is kept at most 4500 s', () => {
    const c = new RecordCache();
    c.add(ptr('a._edgectl._udp.local', 0x7fff_ffff), 0);
    assert.equal(c.lookup('_edgectl._udp.local', 'PTR', 4_499_999).length, 1);
    assert.equal(c.lookup('_edgectl._udp.local', 'PTR', 4_500_000).length, 0);
  });

  test('cache keys are fixed-size hashes, whatever the record holds', () => {
    const big: MdnsRecord = {
      name: 'i._edgectl._udp.local',
      type: 'TXT',
      ttl: 1,
      data: [Buffer.alloc(255, 0x61)],
    };
    assert.equal(recordKey(big).length, 22);
    assert.equal(recordKey(ptr('a._edgectl._udp.local')).length, 22);
    assert.notEqual(recordKey(big), recordKey({ ...big, data: [Buffer.alloc(255, 0x62)] }));
  });
});
