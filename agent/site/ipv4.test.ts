/** IPv4 math: examples, and properties checked against brute force over small blocks (fast-check). */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  blockSize,
  cidrContains,
  cidrsOverlap,
  cidrWithin,
  countOutside,
  formatCidr,
  formatIpv4,
  lastAddress,
  networkOf,
  parseCidr,
  parseIpv4,
  usableSpan,
  type Cidr,
} from './ipv4.ts';

const address = fc.integer({ min: 0, max: 2 ** 32 - 1 });
const cidr = fc
  .tuple(address, fc.integer({ min: 0, max: 32 }))
  .map(([a, p]): Cidr => ({ network: networkOf(a, p), prefix: p }));
/** Blocks inside one /24, so brute force over their addresses stays cheap. */
const smallCidr = fc
  .tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 24, max: 32 }))
  .map(([host, p]): Cidr => ({ network: networkOf(0xc0a83200 + host, p), prefix: p }));

describe('parseIpv4 / formatIpv4', () => {
  test('examples', () => {
    assert.equal(parseIpv4('192.168.50.1'), 0xc0a83201);
    assert.equal(parseIpv4('0.0.0.0'), 0);
    assert.equal(parseIpv4('255.255.255.255'), 2 ** 32 - 1);
    for (const bad of [
      '',
      '1.2.3',
      '1.2.3.4.5',
      '256.1.1.1',
      '01.2.3.4',
      '1.2.3.-1',
      ' 1.2.3.4',
      '1.2.3.4/24',
      'a.b.c.d',
    ])
      assert.equal(parseIpv4(bad), null, bad);
  });

  test('property: format then parse is the identity, and parse then format too', () => {
    fc.assert(
      fc.property(address, (a) => {
        assert.equal(parseIpv4(formatIpv4(a)), a);
        assert.equal(formatIpv4(parseIpv4(formatIpv4(a))!), formatIpv4(a));
      }),
    );
  });

  test('property: parsing agrees with the octets, read as base 256', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 4, maxLength: 4 }), (o) => {
        assert.equal(parseIpv4(o.join('.')), ((o[0]! * 256 + o[1]!) * 256 + o[2]!) * 256 + o[3]!);
      }),
    );
  });
});

describe('parseCidr', () => {
  test('examples', () => {
    assert.deepEqual(parseCidr('192.168.50.0/24'), { ok: true, cidr: { network: 0xc0a83200, prefix: 24 } });
    assert.deepEqual(parseCidr('0.0.0.0/0'), { ok: true, cidr: { network: 0, prefix: 0 } });
    assert.equal(parseCidr('192.168.50.0/33').ok, false);
    assert.equal(parseCidr('192.168.50.0').ok, false);
    assert.equal(parseCidr('192.168.50.0/024').ok, false);
    const hostBits = parseCidr('192.168.2.225/28');
    assert.equal(hostBits.ok, false);
    assert.equal(!hostBits.ok && hostBits.reason, 'host-bits');
    assert.equal(!hostBits.ok && formatIpv4(hostBits.network!), '192.168.2.224');
  });

  test('property: a formatted block parses back to itself; any address/prefix parses or names its network', () => {
    fc.assert(
      fc.property(cidr, (c) => {
        assert.deepEqual(parseCidr(formatCidr(c)), { ok: true, cidr: c });
      }),
    );
    fc.assert(
      fc.property(address, fc.integer({ min: 0, max: 32 }), (a, p) => {
        const r = parseCidr(`${formatIpv4(a)}/${p}`);
        if (r.ok) assert.equal(r.cidr.network, a);
        else assert.equal(r.network, networkOf(a, p));
      }),
    );
  });
});

describe('block relations', () => {
  test('property: a block holds exactly blockSize addresses from network to lastAddress', () => {
    fc.assert(
      fc.property(cidr, (c) => {
        assert.equal(lastAddress(c) - c.network + 1, blockSize(c.prefix));
        assert.ok(cidrContains(c, c.network) && cidrContains(c, lastAddress(c)));
        if (c.network > 0) assert.ok(!cidrContains(c, c.network - 1));
        if (lastAddress(c) < 2 ** 32 - 1) assert.ok(!cidrContains(c, lastAddress(c) + 1));
        assert.ok(lastAddress(c) <= 2 ** 32 - 1);
      }),
    );
  });

  test('property: overlap and within agree with brute force, and overlap is symmetric', () => {
    fc.assert(
      fc.property(smallCidr, smallCidr, (a, b) => {
        const addrs = (c: Cidr) => Array.from({ length: blockSize(c.prefix) }, (_, i) => c.network + i);
        const shared = addrs(a).filter((x) => cidrContains(b, x)).length;
        assert.equal(cidrsOverlap(a, b), shared > 0);
        assert.equal(cidrsOverlap(a, b), cidrsOverlap(b, a));
        assert.equal(cidrWithin(a, b), shared === blockSize(a.prefix));
        // CIDR blocks never partially overlap: they nest or are disjoint.
        if (cidrsOverlap(a, b)) assert.ok(cidrWithin(a, b) || cidrWithin(b, a));
      }),
    );
  });

  test('usableSpan leaves out network and broadcast, and is empty for /31 and /32', () => {
    assert.deepEqual(usableSpan({ network: 0xc0a83200, prefix: 24 }), {
      first: 0xc0a83201,
      last: 0xc0a832fe,
    });
    assert.deepEqual(usableSpan({ network: 0xc0a83200, prefix: 30 }), {
      first: 0xc0a83201,
      last: 0xc0a83202,
    });
    assert.equal(usableSpan({ network: 0xc0a83200, prefix: 31 }), null);
    assert.equal(usableSpan({ network: 0xc0a83200, prefix: 32 }), null);
  });

  test('property: countOutside agrees with brute force', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 255 }),
        fc.integer({ min: 0, max: 255 }),
        fc.array(smallCidr, { maxLength: 5 }),
        (x, y, holes) => {
          const span = { first: 0xc0a83200 + Math.min(x, y), last: 0xc0a83200 + Math.max(x, y) };
          let expected = 0;
          for (let a = span.first; a <= span.last; a++)
            if (!holes.some((h) => cidrContains(h, a))) expected++;
          assert.equal(countOutside(span, holes), expected);
        },
      ),
    );
  });
});
