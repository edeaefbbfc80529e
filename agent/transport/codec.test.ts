import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createHmac } from 'node:crypto';
import fc from 'fast-check';
import {
  decode,
  encode,
  isNodeId,
  DROP_REASONS,
  MAX_APPEND_FIXED_BYTES,
  MAX_DATAGRAM_BYTES,
  MAX_ENTRY_OVERHEAD_BYTES,
  type DecodeResult,
  type DropReason,
  type EncodeContext,
} from './codec.ts';
import { ReplayWindow } from './replay.ts';
import { HmacSha256 } from '../sha256.ts';
import { fleetTiming } from '../../statecharts/timing.ts';
import type { Append, LogEntry, Message } from '../../statecharts/messages.ts';

const SITE = 'depot-1';
const KEY = Buffer.alloc(32, 0x5a);
const CTX: EncodeContext & { readonly key: Buffer } = {
  siteId: SITE,
  key: KEY,
  incarnation: 0xdeadbeef,
  counter: 42,
};
const MAX_ID = 'r'.repeat(63);
const MAX_UINT = Number.MAX_SAFE_INTEGER;

const MESSAGES: readonly Message[] = [
  { type: 'preVote', from: 'robot-1', to: 'robot-2', term: 8, lastIndex: 120, lastTerm: 7 },
  { type: 'preVoteResp', from: 'robot-2', to: 'robot-1', term: 8, granted: true },
  { type: 'preVoteResp', from: 'robot-2', to: 'robot-1', term: 9, granted: false },
  { type: 'vote', from: 'robot-1', to: 'robot-3', term: 8, lastIndex: 120, lastTerm: 7, transfer: false },
  { type: 'vote', from: 'robot-1', to: 'robot-3', term: 8, lastIndex: 0, lastTerm: 0, transfer: true },
  { type: 'voteResp', from: 'robot-3', to: 'robot-1', term: 8, granted: true },
  { type: 'voteResp', from: 'robot-3', to: 'robot-1', term: 8, granted: false },
  {
    type: 'append',
    from: 'robot-1',
    to: 'robot-2',
    term: 8,
    prevIndex: 120,
    prevTerm: 7,
    entries: [],
    commit: 119,
    sentAt: 123456.789,
  },
  {
    type: 'append',
    from: 'robot-1',
    to: 'robot-2',
    term: 8,
    prevIndex: 120,
    prevTerm: 7,
    entries: [
      { term: 8, kind: 'noop', data: '' },
      { term: 8, kind: 'site', data: 'name: dépôt-北 🤖\u0000\n' },
      { term: 8, kind: 'snapshot', data: '\uFEFFleading BOM, \u{10FFFF} and \u{1F600}' },
    ],
    commit: 120,
    sentAt: 0,
  },
  {
    type: 'appendResp',
    from: 'robot-2',
    to: 'robot-1',
    term: 8,
    success: true,
    matchIndex: 123,
    echo: 123456.789,
  },
  {
    type: 'appendResp',
    from: 'robot-2',
    to: 'robot-1',
    term: 8,
    success: false,
    matchIndex: 0,
    echo: 2 ** 60,
  },
  { type: 'timeoutNow', from: 'robot-1', to: 'robot-2', term: 8 },
  { type: 'timeoutNow', from: '0', to: '-', term: 0 },
  {
    type: 'vote',
    from: MAX_ID,
    to: MAX_ID,
    term: MAX_UINT,
    lastIndex: MAX_UINT,
    lastTerm: MAX_UINT,
    transfer: true,
  },
  {
    type: 'appendResp',
    from: MAX_ID,
    to: 'a',
    term: MAX_UINT,
    success: true,
    matchIndex: MAX_UINT,
    echo: Number.MAX_VALUE,
  },
  {
    type: 'append',
    from: 'a',
    to: 'b',
    term: 1,
    prevIndex: 0,
    prevTerm: 0,
    entries: [],
    commit: 0,
    sentAt: Number.MIN_VALUE,
  },
  {
    type: 'vote',
    from: 'robot-1',
    to: 'robot-3',
    term: 8,
    lastIndex: 3,
    lastTerm: 2,
    transfer: false,
    replicaEpoch: 2,
    replicaRev: 51,
  },
  {
    type: 'preVote',
    from: 'robot-1',
    to: 'robot-2',
    term: 8,
    lastIndex: 120,
    lastTerm: 7,
    replicaEpoch: 0,
    replicaRev: 9,
  },
  {
    type: 'appendResp',
    from: 'robot-2',
    to: 'robot-1',
    term: 9,
    success: true,
    matchIndex: 4,
    echo: 12.5,
    replicaEpoch: 8,
    replicaRev: 7000,
  },
];

/** Byte offsets of the version 2 header (docs/protocol-wire.md). */
const OFFSET = {
  magic: 0,
  version: 2,
  type: 3,
  siteTag: 4,
  generation: 12,
  incarnation: 16,
  counter: 20,
  sender: 28,
} as const;
const MAC_BYTES = 32;

function siteTag(siteId: string): Buffer {
  return createHash('sha256').update(`edgectl-site\0${siteId}`).digest().subarray(0, 8);
}

/** remac replaces a frame's MAC with a valid one: what only a holder of the key can do. */
function remac(frame: Buffer, key: Buffer = KEY): Buffer {
  const out = Buffer.from(frame);
  createHmac('sha256', key)
    .update(out.subarray(0, out.length - MAC_BYTES))
    .digest()
    .copy(out, out.length - MAC_BYTES);
  return out;
}

function varint(n: number): Buffer {
  const bytes: number[] = [];
  while (n >= 0x80) {
    bytes.push((n % 0x80) | 0x80);
    n = Math.floor(n / 0x80);
  }
  bytes.push(n);
  return Buffer.from(bytes);
}

function id(s: string): Buffer {
  return Buffer.concat([Buffer.from([Buffer.byteLength(s, 'latin1')]), Buffer.from(s, 'latin1')]);
}

function f64(v: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeDoubleBE(v);
  return b;
}

/** frame builds an authenticated frame by hand from the documented layout, body bytes and all. */
function frame(opts: {
  typeCode: number;
  body: Buffer;
  sender?: string;
  version?: number;
  siteId?: string;
  incarnation?: number;
  counter?: Buffer;
  generation?: number;
}): Buffer {
  const header = Buffer.alloc(28);
  header[0] = 0xed;
  header[1] = 0x6c;
  header[OFFSET.version] = opts.version ?? 2;
  header.writeUInt32BE(opts.generation ?? 0, OFFSET.generation);
  header[OFFSET.type] = opts.typeCode;
  siteTag(opts.siteId ?? SITE).copy(header, OFFSET.siteTag);
  header.writeUInt32BE(opts.incarnation ?? CTX.incarnation, OFFSET.incarnation);
  (opts.counter ?? Buffer.from([0, 0, 0, 0, 0, 0, 0, 42])).copy(header, OFFSET.counter);
  return remac(Buffer.concat([header, id(opts.sender ?? 'robot-1'), opts.body, Buffer.alloc(MAC_BYTES)]));
}

function expectDrop(result: DecodeResult, reason: DropReason, what = ''): void {
  assert.deepEqual(result, { ok: false, reason }, what);
}

function expectEdgeError(f: () => unknown, code: string): void {
  assert.throws(f, (err: unknown) => {
    assert.equal((err as { code?: unknown }).code, code);
    assert.ok((err as { hint?: string }).hint, 'an EdgeError names its fix');
    return true;
  });
}

const ENCODED = MESSAGES.map((msg, i) => ({ msg, frame: encode(msg, { ...CTX, counter: i }) }));

describe('round trip', () => {
  test('every message type decodes to the message it was encoded from', () => {
    const types = new Set<string>();
    ENCODED.forEach(({ msg, frame: f }, i) => {
      const result = decode(f, CTX);
      assert.deepEqual(result, {
        ok: true,
        msg,
        sender: msg.from,
        generation: 0,
        incarnation: CTX.incarnation,
        counter: i,
      });
      assert.ok(f.length <= MAX_DATAGRAM_BYTES);
      types.add(msg.type);
    });
    assert.equal(types.size, 7, 'MESSAGES covers every message type');
  });

  test('the wire format is stable (golden frame)', () => {
    const vote: Message = {
      type: 'vote',
      from: 'robot-1',
      to: 'robot-2',
      term: 7,
      lastIndex: 300,
      lastTerm: 6,
      transfer: true,
    };
    // A keyring's key of generation 3 (the same bytes as KEY): remac checks the tag with createHmac.
    const golden = encode(vote, { ...CTX, key: { generation: 3, mac: new HmacSha256(KEY) } });
    assert.deepEqual(golden, remac(golden));
    assert.equal(
      golden.toString('hex'),
      'ed6c0203' + // magic, version 2, type 3 (vote)
        '9a51a43f8db9598a' + // site tag of depot-1
        '00000003' + // key generation 3
        'deadbeef' + // incarnation
        '000000000000002a' + // counter 42
        '07726f626f742d31' + // sender robot-1
        '07726f626f742d32' + // to robot-2
        '07' + // term 7
        'ac02' + // lastIndex 300
        '06' + // lastTerm 6
        '01' + // transfer
        '818d95fa6b728e1bac190e28de8e7ce2d00228e013d5b86c1b22eca0052a7967', // HMAC-SHA256
    );
  });

  test('a frame built by hand from docs/protocol-wire.md equals the encoder output', () => {
    const msg = MESSAGES[8] as Append;
    const entries = msg.entries.map((e) =>
      Buffer.concat([
        varint(e.term),
        Buffer.from([['noop', 'site', 'snapshot'].indexOf(e.kind)]),
        varint(Buffer.byteLength(e.data)),
        Buffer.from(e.data),
      ]),
    );
    const body = Buffer.concat([
      id(msg.to),
      varint(msg.term),
      varint(msg.prevIndex),
      varint(msg.prevTerm),
      varint(msg.commit),
      f64(msg.sentAt),
      varint(msg.entries.length),
      ...entries,
    ]);
    assert.deepEqual(
      frame({ typeCode: 5, body, counter: Buffer.from([0, 0, 0, 0, 0, 0, 0, 8]) }),
      ENCODED[8]!.frame,
    );
  });

  test('a plain Uint8Array, also a view into a larger buffer, decodes like a Buffer', () => {
    const { msg, frame: f } = ENCODED[0]!;
    const copy = new Uint8Array(f);
    assert.equal(Buffer.isBuffer(copy), false);
    assert.deepEqual(decode(copy, CTX), decode(f, CTX));
    const big = new Uint8Array(f.length + 20);
    big.set(f, 10);
    const view = big.subarray(10, 10 + f.length);
    const result = decode(view, CTX);
    assert.ok(result.ok);
    assert.deepEqual(result.msg, msg);
  });

  test('the counter round-trips up to 2^53 - 1 and the incarnation over the whole u32 range', () => {
    for (const [incarnation, counter] of [
      [0, 0],
      [2 ** 32 - 1, MAX_UINT],
      [1, 2 ** 32],
      [2 ** 31, 2 ** 32 - 1],
    ] as const) {
      const result = decode(encode(MESSAGES[0]!, { ...CTX, incarnation, counter }), CTX);
      assert.ok(result.ok);
      assert.equal(result.incarnation, incarnation);
      assert.equal(result.counter, counter);
    }
  });

  test('arbitrary messages round-trip (fast-check)', () => {
    const nodeId = fc.stringMatching(/^[a-z0-9-]{1,63}$/);
    const uint = fc.oneof(fc.nat(300), fc.maxSafeNat());
    const ms = fc.oneof(fc.nat(), fc.double({ min: 0, noNaN: true, noDefaultInfinity: true }));
    const entry: fc.Arbitrary<LogEntry> = fc.record({
      term: uint,
      kind: fc.constantFrom('noop', 'site', 'snapshot'),
      data: fc.string({ unit: 'binary', maxLength: 60 }),
    });
    const message: fc.Arbitrary<Message> = fc.oneof(
      fc.record({
        type: fc.constant('preVote'),
        from: nodeId,
        to: nodeId,
        term: uint,
        lastIndex: uint,
        lastTerm: uint,
      }),
      fc.record({
        type: fc.constant('preVoteResp'),
        from: nodeId,
        to: nodeId,
        term: uint,
        granted: fc.boolean(),
      }),
      fc.record({
        type: fc.constant('vote'),
        from: nodeId,
        to: nodeId,
        term: uint,
        lastIndex: uint,
        lastTerm: uint,
        transfer: fc.boolean(),
      }),
      fc.record({
        type: fc.constant('voteResp'),
        from: nodeId,
        to: nodeId,
        term: uint,
        granted: fc.boolean(),
      }),
      fc.record({
        type: fc.constant('append'),
        from: nodeId,
        to: nodeId,
        term: uint,
        prevIndex: uint,
        prevTerm: uint,
        entries: fc.array(entry, { maxLength: 6 }),
        commit: uint,
        sentAt: ms,
      }),
      fc.record({
        type: fc.constant('appendResp'),
        from: nodeId,
        to: nodeId,
        term: uint,
        success: fc.boolean(),
        matchIndex: uint,
        echo: ms,
      }),
      fc.record({ type: fc.constant('timeoutNow'), from: nodeId, to: nodeId, term: uint }),
    );
    fc.assert(
      fc.property(message, fc.nat({ max: 2 ** 32 - 1 }), fc.maxSafeNat(), (msg, incarnation, counter) => {
        const result = decode(encode(msg, { ...CTX, incarnation, counter }), CTX);
        // structuredClone: fc.record builds null-prototype objects, decode builds plain ones.
        assert.deepEqual(result, {
          ok: true,
          msg: structuredClone(msg),
          sender: msg.from,
          generation: 0,
          incarnation,
          counter,
        });
      }),
      { numRuns: 3000 },
    );
  });
});

describe('datagram size', () => {
  function worstCaseAppend(data: string): Append {
    return {
      type: 'append',
      from: MAX_ID,
      to: MAX_ID,
      term: MAX_UINT,
      prevIndex: MAX_UINT,
      prevTerm: MAX_UINT,
      entries: [{ term: MAX_UINT, kind: 'site', data }],
      commit: MAX_UINT,
      sentAt: 1e12,
    };
  }

  test('the largest Append that fits is exactly 1200 bytes, and one more byte of data is refused', () => {
    // The fixed bound budgets a 2-byte entry count (up to 16383 entries); one entry needs 1 byte.
    const fits = MAX_DATAGRAM_BYTES - (MAX_APPEND_FIXED_BYTES - 1) - MAX_ENTRY_OVERHEAD_BYTES;
    const data = '€'.repeat(Math.floor(fits / 3)) + 'x'.repeat(fits % 3); // '€' is 3 bytes of UTF-8
    assert.equal(Buffer.byteLength(data), fits);
    const largest = worstCaseAppend(data);
    const f = encode(largest, CTX);
    assert.equal(f.length, MAX_DATAGRAM_BYTES);
    assert.deepEqual(decode(f, CTX), {
      ok: true,
      msg: largest,
      sender: MAX_ID,
      generation: 0,
      incarnation: CTX.incarnation,
      counter: CTX.counter,
    });
    expectEdgeError(() => encode(worstCaseAppend(data + 'x'), CTX), 'EDGE_DATAGRAM_TOO_LARGE');
  });

  test('the exported worst-case overheads bound every Append', () => {
    for (const entryCount of [0, 1, 10, 60]) {
      const entries = Array.from({ length: entryCount }, (_, i) => ({
        term: MAX_UINT,
        kind: 'site' as const,
        data: 'é'.repeat(i % 4),
      }));
      const append: Append = { ...worstCaseAppend(''), entries };
      const dataBytes = entries.reduce((sum, e) => sum + Buffer.byteLength(e.data), 0);
      const bound = MAX_APPEND_FIXED_BYTES + entryCount * MAX_ENTRY_OVERHEAD_BYTES + dataBytes;
      const size = encode(append, CTX).length;
      assert.ok(size <= bound, `${entryCount} entries: ${size} bytes, bound ${bound}`);
    }
  });

  test('the fleet timing budget fits even with the largest header', () => {
    assert.ok(
      encode(worstCaseAppend('x'.repeat(fleetTiming.maxAppendBytes)), CTX).length <= MAX_DATAGRAM_BYTES,
    );
  });

  test('too many small entries are refused with DATAGRAM_TOO_LARGE, not truncated', () => {
    const entries = Array.from({ length: 400 }, () => ({ term: 1, kind: 'noop' as const, data: '' }));
    expectEdgeError(() => encode({ ...(MESSAGES[7] as Append), entries }, CTX), 'EDGE_DATAGRAM_TOO_LARGE');
  });

  test('anything over 1200 bytes is dropped as oversized before anything else', () => {
    for (const f of [
      Buffer.alloc(MAX_DATAGRAM_BYTES + 1),
      Buffer.concat([ENCODED[8]!.frame, Buffer.alloc(1200)]),
      Buffer.alloc(65_507),
    ]) {
      expectDrop(decode(f, CTX), 'oversized');
    }
  });

  test('anything shorter than the shortest frame is too-short', () => {
    const shortest = encode({ type: 'timeoutNow', from: 'a', to: 'b', term: 0 }, CTX);
    assert.ok(decode(shortest, CTX).ok);
    for (let n = 0; n < shortest.length; n++)
      expectDrop(decode(shortest.subarray(0, n), CTX), 'too-short', `length ${n}`);
  });
});

describe('authentication', () => {
  const { frame: valid } = ENCODED[3]!;

  test('a forged MAC is dropped as bad-mac', () => {
    const zeroed = Buffer.from(valid);
    zeroed.fill(0, zeroed.length - MAC_BYTES);
    expectDrop(decode(zeroed, CTX), 'bad-mac');
    const flipped = Buffer.from(valid);
    flipped[flipped.length - 1]! ^= 1;
    expectDrop(decode(flipped, CTX), 'bad-mac');
  });

  test('a frame made with another key is dropped as bad-mac', () => {
    const otherKey = Buffer.alloc(32, 0xa5);
    expectDrop(decode(valid, { siteId: SITE, key: otherKey }), 'bad-mac');
    expectDrop(decode(encode(MESSAGES[3]!, { ...CTX, key: otherKey }), CTX), 'bad-mac');
    const longer = Buffer.concat([KEY, Buffer.from([1])]);
    expectDrop(decode(valid, { siteId: SITE, key: longer }), 'bad-mac');
  });

  test('the MAC is HMAC-SHA256 for keys shorter, as long as and longer than a SHA-256 block', () => {
    // A key longer than the 64-byte block is hashed first (RFC 2104); 131 bytes is RFC 4231's long key.
    // remac (createHmac) recomputes the MAC of the frame, so it must leave the frame as it is.
    for (const size of [32, 63, 64, 65, 131]) {
      const key = Buffer.alloc(size, 0xaa);
      for (const m of MESSAGES) {
        const f = encode(m, { ...CTX, key });
        assert.deepEqual(f, remac(f, key), `${size}-byte key, ${m.type}`);
        assert.ok(decode(f, { siteId: SITE, key }).ok);
      }
    }
  });

  test('the key cache notices a key buffer changed in place', () => {
    const key = Buffer.from(KEY);
    const f = encode(MESSAGES[0]!, { ...CTX, key });
    key[0]! ^= 1;
    expectDrop(decode(f, { siteId: SITE, key }), 'bad-mac');
    key[0]! ^= 1;
    assert.ok(decode(f, { siteId: SITE, key }).ok);
  });

  test('a frame of another site is dropped as wrong-site, even when both sites share a key', () => {
    expectDrop(decode(valid, { siteId: 'depot-2', key: KEY }), 'wrong-site');
    expectDrop(decode(encode(MESSAGES[3]!, { ...CTX, siteId: 'depot-2' }), CTX), 'wrong-site');
  });

  test('every truncation of every valid frame is dropped', () => {
    for (const { frame: f } of ENCODED) {
      for (let n = 0; n < f.length; n++) {
        const result = decode(f.subarray(0, n), CTX);
        assert.equal(result.ok, false, `truncated to ${n} bytes`);
        // A cut inside the sender leaves no sender to look a key up for: unknown-key.
        assert.ok(
          !result.ok && ['too-short', 'bad-mac', 'unknown-key'].includes(result.reason),
          `truncated to ${n}: ${JSON.stringify(result)}`,
        );
      }
    }
  });

  test('appending bytes to a valid frame is dropped as bad-mac', () => {
    for (const { frame: f } of ENCODED) {
      for (const tail of [Buffer.alloc(1), Buffer.from([0xff, 0xff]), f.subarray(0, 32)]) {
        if (f.length + tail.length <= MAX_DATAGRAM_BYTES)
          expectDrop(decode(Buffer.concat([f, tail]), CTX), 'bad-mac');
      }
    }
  });

  test('flipping any bit of any valid frame is dropped, with the reason of the field it hit', () => {
    for (const { msg, frame: f } of ENCODED) {
      const senderEnd = OFFSET.sender + 1 + msg.from.length;
      for (let i = 0; i < f.length; i++) {
        for (let bit = 0; bit < 8; bit++) {
          const flipped = Buffer.from(f);
          flipped[i]! ^= 1 << bit;
          // The sender picks the key: a flip that leaves no valid id there finds none (unknown-key),
          // one that names another robot checks the MAC with that robot's key (bad-mac).
          const senderStillAnId = isNodeId(
            flipped.toString('latin1', OFFSET.sender + 1, OFFSET.sender + 1 + flipped[OFFSET.sender]!),
          );
          const expected: DropReason =
            i < 2
              ? 'bad-magic'
              : i === 2
                ? 'bad-version'
                : i >= OFFSET.siteTag && i < OFFSET.generation
                  ? 'wrong-site'
                  : i >= OFFSET.generation && i < OFFSET.incarnation
                    ? 'unknown-key' // this context holds generation 0 only
                    : i >= OFFSET.sender && i < senderEnd && !senderStillAnId
                      ? 'unknown-key'
                      : 'bad-mac';
          expectDrop(decode(flipped, CTX), expected, `byte ${i} bit ${bit}`);
        }
      }
    }
  });

  test('the sender is authenticated: changing it without the key is bad-mac, and the body has no other from', () => {
    const { msg, frame: f } = ENCODED[0]!;
    const renamed = Buffer.from(f);
    renamed[OFFSET.sender + 1] = 'x'.charCodeAt(0); // robot-1 -> xobot-1
    expectDrop(decode(renamed, CTX), 'bad-mac');
    // With the key the header sender is the message's from: there is no second from to disagree with.
    const result = decode(remac(renamed), CTX);
    assert.ok(result.ok);
    assert.equal(result.sender, 'xobot-1');
    assert.deepEqual(result.msg, { ...msg, from: 'xobot-1' });
    for (const { frame: g } of ENCODED) {
      const r = decode(g, CTX);
      assert.ok(r.ok && r.msg.from === r.sender);
    }
  });

  test('bad magic and unknown versions are dropped before the MAC is checked', () => {
    const f = Buffer.from(valid);
    f.write('GET ', 0, 'latin1');
    expectDrop(decode(f, CTX), 'bad-magic');
    expectDrop(decode(frame({ typeCode: 3, version: 1, body: Buffer.alloc(10) }), CTX), 'bad-version');
    expectDrop(decode(frame({ typeCode: 3, version: 3, body: Buffer.alloc(10) }), CTX), 'bad-version');
  });
});

describe('authenticated but malformed frames', () => {
  // A well-formed TimeoutNow body, for cases about the header.
  const timeoutNowBody = Buffer.concat([id('robot-2'), varint(8)]);

  test('unknown message types are dropped as unknown-type', () => {
    for (const typeCode of [0, 8, 9, 0x7f, 0xff])
      expectDrop(decode(frame({ typeCode, body: timeoutNowBody }), CTX), 'unknown-type', `type ${typeCode}`);
    assert.ok(decode(frame({ typeCode: 7, body: timeoutNowBody }), CTX).ok);
  });

  test('an invalid sender id names no key (unknown-key); an invalid recipient id is malformed', () => {
    for (const bad of ['', 'Robot-1', 'robot_1', 'robot.1', 'röbot', ' ', 'r'.repeat(64), 'a\u0000']) {
      expectDrop(
        decode(frame({ typeCode: 7, sender: bad, body: timeoutNowBody }), CTX),
        'unknown-key',
        `sender ${JSON.stringify(bad)}`,
      );
      expectDrop(
        decode(frame({ typeCode: 7, body: Buffer.concat([id(bad), varint(8)]) }), CTX),
        'malformed',
        `to ${JSON.stringify(bad)}`,
      );
    }
    // A length byte that runs past the body.
    expectDrop(decode(frame({ typeCode: 7, body: Buffer.from([60, 0x61]) }), CTX), 'malformed');
  });

  test('counters above 2^53 - 1 are malformed', () => {
    const over = Buffer.from([0, 0x20, 0, 0, 0, 0, 0, 0]);
    expectDrop(decode(frame({ typeCode: 7, body: timeoutNowBody, counter: over }), CTX), 'malformed');
    const max = Buffer.from([0, 0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    const result = decode(frame({ typeCode: 7, body: timeoutNowBody, counter: max }), CTX);
    assert.ok(result.ok && result.counter === MAX_UINT);
  });

  test('varints must be minimal, at most 8 bytes and at most 2^53 - 1', () => {
    const cases: [string, Buffer][] = [
      ['non-minimal zero', Buffer.from([0x80, 0x00])],
      ['non-minimal 1', Buffer.from([0x81, 0x00])],
      ['2^53', varint(2 ** 53)],
      ['2^56 - 1', Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f])],
      ['9 bytes', Buffer.from([0x81, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00])],
      ['unterminated', Buffer.from([0x81])],
    ];
    for (const [what, term] of cases) {
      expectDrop(
        decode(frame({ typeCode: 7, body: Buffer.concat([id('robot-2'), term]) }), CTX),
        'malformed',
        what,
      );
    }
    const max = decode(frame({ typeCode: 7, body: Buffer.concat([id('robot-2'), varint(MAX_UINT)]) }), CTX);
    assert.ok(max.ok && max.msg.term === MAX_UINT);
  });

  test('flags must be 0 or 1', () => {
    const body = (flag: number): Buffer => Buffer.concat([id('robot-1'), varint(8), Buffer.from([flag])]);
    assert.ok(decode(frame({ typeCode: 2, body: body(1) }), CTX).ok);
    for (const flag of [2, 0x80, 0xff])
      expectDrop(decode(frame({ typeCode: 2, body: body(flag) }), CTX), 'malformed', `flag ${flag}`);
  });

  test('times must be finite and not negative', () => {
    const body = (echo: number): Buffer =>
      Buffer.concat([id('robot-1'), varint(8), Buffer.from([1]), varint(3), f64(echo)]);
    assert.ok(decode(frame({ typeCode: 6, body: body(1.5) }), CTX).ok);
    for (const echo of [NaN, Infinity, -Infinity, -1, -Number.MIN_VALUE]) {
      expectDrop(decode(frame({ typeCode: 6, body: body(echo) }), CTX), 'malformed', `echo ${echo}`);
    }
  });

  function appendBody(entries: Buffer, count?: number): Buffer {
    return Buffer.concat([
      id('robot-2'),
      varint(8),
      varint(1),
      varint(1),
      varint(1),
      f64(5),
      varint(count ?? 1),
      entries,
    ]);
  }
  function entry(kind: number, data: Buffer): Buffer {
    return Buffer.concat([varint(8), Buffer.from([kind]), varint(data.length), data]);
  }

  test('entry kinds other than noop, site and snapshot are malformed', () => {
    for (const kind of [0, 1, 2])
      assert.ok(decode(frame({ typeCode: 5, body: appendBody(entry(kind, Buffer.from('x'))) }), CTX).ok);
    for (const kind of [3, 0xff])
      expectDrop(
        decode(frame({ typeCode: 5, body: appendBody(entry(kind, Buffer.from('x'))) }), CTX),
        'malformed',
      );
  });

  test('entry data must be valid UTF-8', () => {
    const invalid: [string, number[]][] = [
      ['overlong NUL', [0xc0, 0x80]],
      ['encoded surrogate', [0xed, 0xa0, 0x80]],
      ['lone continuation', [0x80]],
      ['truncated sequence', [0xe2, 0x82]],
      ['above U+10FFFF', [0xf4, 0x90, 0x80, 0x80]],
      ['0xff', [0xff]],
    ];
    for (const [what, bytes] of invalid) {
      expectDrop(
        decode(frame({ typeCode: 5, body: appendBody(entry(1, Buffer.from(bytes))) }), CTX),
        'malformed',
        what,
      );
    }
  });

  test('entry counts and lengths beyond the frame are malformed', () => {
    expectDrop(
      decode(frame({ typeCode: 5, body: appendBody(entry(1, Buffer.from('x')), 1000) }), CTX),
      'malformed',
      'count',
    );
    expectDrop(
      decode(frame({ typeCode: 5, body: appendBody(entry(1, Buffer.from('x')), MAX_UINT) }), CTX),
      'malformed',
      'huge count',
    );
    const longer = Buffer.concat([varint(8), Buffer.from([1]), varint(50), Buffer.from('short')]);
    expectDrop(decode(frame({ typeCode: 5, body: appendBody(longer) }), CTX), 'malformed', 'length');
  });

  test('trailing bytes after the body, and missing fields, are malformed', () => {
    expectDrop(
      decode(frame({ typeCode: 7, body: Buffer.concat([timeoutNowBody, Buffer.from([0])]) }), CTX),
      'malformed',
      'trailing',
    );
    expectDrop(
      decode(frame({ typeCode: 1, body: timeoutNowBody }), CTX),
      'malformed',
      'preVote without lastIndex',
    );
    expectDrop(
      decode(frame({ typeCode: 5, body: appendBody(Buffer.alloc(0), 0).subarray(0, -1) }), CTX),
      'malformed',
      'no entry count',
    );
  });

  test('decode never throws on values that are not bytes', () => {
    for (const junk of [null, undefined, 'frame', 42, {}, [0xed, 0x6c], new ArrayBuffer(100)]) {
      expectDrop(decode(junk as unknown as Uint8Array, CTX), 'malformed');
    }
  });
});

describe('replay window in decode', () => {
  test('an unconfirmed sender is refused; once confirmed, a second copy of a datagram is a replay', () => {
    const replay = new ReplayWindow();
    const { msg, frame: f } = ENCODED[1]!; // counter 1
    expectDrop(decode(f, { ...CTX, replay }), 'unconfirmed');
    replay.confirm(msg.from, CTX.incarnation); // what an answer to a challenge does (udp.ts)
    assert.ok(decode(f, { ...CTX, replay }).ok);
    expectDrop(decode(f, { ...CTX, replay }), 'replay');
    const other = ENCODED.find((e, i) => i > 1 && e.msg.from === msg.from);
    if (other) assert.ok(decode(other.frame, { ...CTX, replay }).ok, 'another counter of the same sender');
  });

  test('forged and malformed frames do not touch the window', () => {
    const replay = new ReplayWindow();
    const forged = Buffer.from(ENCODED[0]!.frame);
    forged[forged.length - 1]! ^= 1;
    expectDrop(decode(forged, { ...CTX, replay }), 'bad-mac');
    const malformed = frame({
      typeCode: 7,
      body: Buffer.concat([id('robot-2'), varint(8), Buffer.from([0])]),
    });
    expectDrop(decode(malformed, { ...CTX, replay }), 'malformed');
    assert.equal(replay.size, 0);
    expectDrop(decode(ENCODED[0]!.frame, { ...CTX, replay }), 'unconfirmed');
    assert.equal(replay.size, 0, 'an unconfirmed sender is not recorded either');
  });
});

describe('encode refuses what decode would refuse', () => {
  const base = MESSAGES[9]!; // appendResp

  test('invalid ids', () => {
    for (const bad of ['', 'Robot', 'robot_1', 'r'.repeat(64), 'ünï', 7]) {
      expectEdgeError(() => encode({ ...base, from: bad } as Message, CTX), 'EDGE_MESSAGE_INVALID');
      expectEdgeError(() => encode({ ...base, to: bad } as Message, CTX), 'EDGE_MESSAGE_INVALID');
      assert.equal(isNodeId(bad), false);
    }
    assert.ok(isNodeId('0') && isNodeId('-') && isNodeId(MAX_ID));
  });

  test('invalid numbers, flags and types', () => {
    for (const term of [-1, 1.5, NaN, Infinity, 2 ** 53, '1', undefined]) {
      expectEdgeError(() => encode({ ...base, term } as unknown as Message, CTX), 'EDGE_MESSAGE_INVALID');
    }
    for (const echo of [-1, NaN, Infinity, '5']) {
      expectEdgeError(() => encode({ ...base, echo } as unknown as Message, CTX), 'EDGE_MESSAGE_INVALID');
    }
    expectEdgeError(() => encode({ ...base, success: 1 } as unknown as Message, CTX), 'EDGE_MESSAGE_INVALID');
    expectEdgeError(
      () => encode({ ...base, type: 'gossip' } as unknown as Message, CTX),
      'EDGE_MESSAGE_INVALID',
    );
  });

  test('invalid entries', () => {
    const append = MESSAGES[7] as Append;
    const bad: unknown[] = [
      { term: 1, kind: 'config', data: '' },
      { term: 1, kind: 'toString', data: '' },
      { term: -1, kind: 'noop', data: '' },
      { term: 1, kind: 'site', data: 'lone \uD800 surrogate' },
      { term: 1, kind: 'site', data: 5 },
      null,
    ];
    for (const e of bad) {
      expectEdgeError(
        () => encode({ ...append, entries: [e] } as unknown as Message, CTX),
        'EDGE_MESSAGE_INVALID',
      );
    }
    expectEdgeError(
      () => encode({ ...append, entries: 'none' } as unknown as Message, CTX),
      'EDGE_MESSAGE_INVALID',
    );
  });

  test('invalid contexts', () => {
    expectEdgeError(() => encode(base, { ...CTX, key: Buffer.alloc(31) }), 'EDGE_SITE_KEY_INVALID');
    expectEdgeError(
      () => decode(ENCODED[0]!.frame, { siteId: SITE, key: Buffer.alloc(16) }),
      'EDGE_SITE_KEY_INVALID',
    );
    expectEdgeError(() => encode(base, { ...CTX, siteId: '' }), 'EDGE_CODEC_CONTEXT_INVALID');
    for (const incarnation of [-1, 2 ** 32, 0.5])
      expectEdgeError(() => encode(base, { ...CTX, incarnation }), 'EDGE_CODEC_CONTEXT_INVALID');
    for (const counter of [-1, 2 ** 53, 0.5])
      expectEdgeError(() => encode(base, { ...CTX, counter }), 'EDGE_CODEC_CONTEXT_INVALID');
  });
});

test('DROP_REASONS lists each reason once', () => {
  assert.equal(new Set(DROP_REASONS).size, DROP_REASONS.length);
  assert.deepEqual([...DROP_REASONS].sort(), [
    'bad-mac',
    'bad-magic',
    'bad-version',
    'malformed',
    'not-permitted',
    'oversized',
    'replay',
    'too-short',
    'unconfirmed',
    'unknown-key',
    'unknown-type',
    'wrong-site',
  ]);
});

test('the replica position rides as an optional tail of preVote and vote; absent when there is none', () => {
  const pv: Message = { type: 'preVote', from: 'a', to: 'b', term: 3, lastIndex: 7, lastTerm: 2 };
  const withReplica: Message = { ...pv, replicaEpoch: 2, replicaRev: 5000 };
  const plain = encode(pv, CTX);
  const tail = encode(withReplica, CTX);
  assert.equal(tail.length - plain.length, 1 + 2, 'epoch 2 (1 byte), revision 5000 (2 bytes)');
  const back = decode(tail, CTX);
  assert.ok(back.ok);
  assert.deepEqual(back.msg, withReplica);
  const none = decode(plain, CTX);
  assert.ok(none.ok);
  assert.deepEqual(none.msg, pv);
  // (0, 0) is written as no tail, so one message has one encoding.
  assert.deepEqual(encode({ ...pv, replicaEpoch: 0, replicaRev: 0 }, CTX), plain);
});
