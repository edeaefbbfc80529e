/**
 * Fuzz test of decode. Default: 1,000,000 inputs plus a shrinking fast-check property, sized for CI.
 * EDGECTL_FUZZ_LONG=1 runs 20,000,000. Each run draws a fresh seed and prints it; set
 * EDGECTL_FUZZ_SEED=<seed> to replay a run. A failure also prints the failing input in hex.
 *
 * Most mutated frames die at the MAC, which says nothing about the body parser. So nearly half the
 * inputs are mutated *and then re-MACed* with the key, the way a buggy or hostile key holder
 * would send them: those reach every field check.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createHmac, createSecretKey, randomInt } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import {
  decode,
  encode,
  DROP_REASONS,
  MAX_DATAGRAM_BYTES,
  type DecodeResult,
  type DropReason,
  type EncodeContext,
} from './codec.ts';
import type { EntryKind, LogEntry, Message } from '../../statecharts/messages.ts';

const LONG = process.env.EDGECTL_FUZZ_LONG === '1';
const INPUTS = LONG ? 20_000_000 : 1_000_000;
const PROPERTY_RUNS = LONG ? 1_000_000 : 20_000;
const SEED =
  process.env.EDGECTL_FUZZ_SEED === undefined
    ? randomInt(2 ** 32)
    : Number(process.env.EDGECTL_FUZZ_SEED) >>> 0;

const SITE = 'fuzz-site';
const KEY = Buffer.alloc(32, 0x3c);
const HMAC_KEY = createSecretKey(KEY);
const CTX = { siteId: SITE, key: KEY };
/** Magic, version 2, type 1, the site tag and key generation 0 (the one a raw key stands for). */
const HEADER_PREFIX = Buffer.concat([
  Buffer.from([0xed, 0x6c, 2, 1]),
  createHash('sha256').update(`edgectl-site\0${SITE}`).digest().subarray(0, 8),
  Buffer.alloc(4),
]);
const MAC_BYTES = 32;
/**
 * Where the header's authenticated-only fields start: key generation, incarnation, counter, sender,
 * then the body. A mutated generation finds no key (unknown-key), which the oracle accepts as a drop.
 */
const SIGNED_FIELDS_OFFSET = 12;
const MAX_INPUT_BYTES = 1400;
const KNOWN_REASONS: ReadonlySet<string> = new Set(DROP_REASONS);

/** Rng: mulberry32, small and seedable. Math.random is neither, so failures could not be replayed. */
class Rng {
  #state: number;
  constructor(seed: number) {
    this.#state = seed >>> 0;
  }
  u32(): number {
    this.#state = (this.#state + 0x6d2b79f5) | 0;
    let t = Math.imul(this.#state ^ (this.#state >>> 15), 1 | this.#state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return (t ^ (t >>> 14)) >>> 0;
  }
  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor((this.u32() / 2 ** 32) * n);
  }
  chance(p: number): boolean {
    return this.u32() / 2 ** 32 < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
  bytes(n: number): Buffer {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i += 4) {
      const word = this.u32();
      for (let j = 0; j < 4 && i + j < n; j++) b[i + j] = (word >>> (8 * j)) & 0xff;
    }
    return b;
  }
}

// ---------------------------------------------------------------------------------------------------
// valid messages

const ID_CHARS = 'abcdefghijklmnopqrstuvwxyz0123456789-';
const EDGE_UINTS = [
  0,
  1,
  127,
  128,
  16_383,
  16_384,
  2 ** 31 - 1,
  2 ** 31,
  2 ** 32 - 1,
  2 ** 32,
  2 ** 49 - 1,
  2 ** 49,
  Number.MAX_SAFE_INTEGER,
];
const EDGE_MS = [0, -0, Number.MIN_VALUE, 0.5, 1e15 + 0.5, 2 ** 53, 2 ** 64, Number.MAX_VALUE];
const DATA_CHARS = [
  'a',
  'Z',
  ' ',
  '\n',
  '\u0000',
  '\u007f',
  'é',
  'ß',
  '€',
  '北',
  '\uFEFF',
  '\uFFFD',
  '🤖',
  '\u{10FFFF}',
  '"',
  '\\',
];
const KINDS: readonly EntryKind[] = ['noop', 'site', 'snapshot'];

function randomId(rng: Rng): string {
  const r = rng.int(100);
  const length = r < 70 ? 1 + rng.int(10) : r < 95 ? 1 + rng.int(63) : 63;
  let s = '';
  for (let i = 0; i < length; i++) s += ID_CHARS[rng.int(ID_CHARS.length)];
  return s;
}

function randomUint(rng: Rng): number {
  const r = rng.int(10);
  if (r < 5) return rng.int(300);
  if (r < 7) return rng.pick(EDGE_UINTS);
  if (r < 9) return rng.u32();
  return (rng.u32() & 0x1f_ffff) * 2 ** 32 + rng.u32();
}

function randomMs(rng: Rng): number {
  const r = rng.int(10);
  if (r < 4) return rng.u32() * 64;
  if (r < 7) return rng.u32() / 1000;
  if (r < 8) return rng.pick(EDGE_MS);
  const v = Math.abs(rng.bytes(8).readDoubleBE(0)); // any bit pattern: subnormals, huge exponents
  return Number.isFinite(v) ? v : 0;
}

function randomData(rng: Rng): string {
  const length = rng.chance(0.9) ? rng.int(40) : rng.int(300);
  let s = '';
  for (let i = 0; i < length; i++) s += rng.pick(DATA_CHARS);
  return s;
}

function randomMessage(rng: Rng): Message {
  const from = randomId(rng);
  const to = randomId(rng);
  const term = randomUint(rng);
  switch (rng.int(7)) {
    case 0:
      return { type: 'preVote', from, to, term, lastIndex: randomUint(rng), lastTerm: randomUint(rng) };
    case 1:
      return { type: 'preVoteResp', from, to, term, granted: rng.chance(0.5) };
    case 2:
      return {
        type: 'vote',
        from,
        to,
        term,
        lastIndex: randomUint(rng),
        lastTerm: randomUint(rng),
        transfer: rng.chance(0.5),
      };
    case 3:
      return { type: 'voteResp', from, to, term, granted: rng.chance(0.5) };
    case 4: {
      const entries: LogEntry[] = Array.from({ length: rng.int(6) }, () => ({
        term: randomUint(rng),
        kind: rng.pick(KINDS),
        data: randomData(rng),
      }));
      return {
        type: 'append',
        from,
        to,
        term,
        prevIndex: randomUint(rng),
        prevTerm: randomUint(rng),
        entries,
        commit: randomUint(rng),
        sentAt: randomMs(rng),
      };
    }
    case 5:
      return {
        type: 'appendResp',
        from,
        to,
        term,
        success: rng.chance(0.5),
        matchIndex: randomUint(rng),
        echo: randomMs(rng),
      };
    default:
      return { type: 'timeoutNow', from, to, term };
  }
}

interface ValidFrame {
  readonly msg: Message;
  readonly frame: Buffer;
}

function randomValidFrame(rng: Rng): ValidFrame {
  for (;;) {
    const msg = randomMessage(rng);
    const ctx: EncodeContext = { ...CTX, incarnation: rng.u32(), counter: randomUint(rng) };
    try {
      return { msg, frame: encode(msg, ctx) };
    } catch (err) {
      if ((err as { code?: string }).code !== 'EDGE_DATAGRAM_TOO_LARGE') throw err;
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// mutations

const INTERESTING_BYTES = [
  0x00, 0x01, 0x02, 0x03, 0x07, 0x08, 0x3f, 0x40, 0x7f, 0x80, 0x81, 0xc0, 0xed, 0xfe, 0xff,
];

function remac(frame: Buffer): Buffer {
  if (frame.length >= MAC_BYTES) {
    createHmac('sha256', HMAC_KEY)
      .update(frame.subarray(0, frame.length - MAC_BYTES))
      .digest()
      .copy(frame, frame.length - MAC_BYTES);
  }
  return frame;
}

/** Changes 1..8 bytes at random within [from, to): a random value, a bit flip, ±1 or an interesting byte. */
function mutateBytes(rng: Rng, frame: Buffer, from: number, to: number): Buffer {
  const out = Buffer.from(frame);
  if (to <= from) return out;
  const count = 1 + rng.int(8);
  for (let i = 0; i < count; i++) {
    const at = from + rng.int(to - from);
    switch (rng.int(4)) {
      case 0:
        out[at] = rng.u32() & 0xff;
        break;
      case 1:
        out[at]! ^= 1 << rng.int(8);
        break;
      case 2:
        out[at] = (out[at]! + (rng.chance(0.5) ? 1 : 255)) & 0xff;
        break;
      default:
        out[at] = rng.pick(INTERESTING_BYTES);
    }
  }
  return out;
}

/** Deletes, inserts or duplicates a range after the site tag, so lengths and field boundaries shift. */
function spliceBody(rng: Rng, frame: Buffer): Buffer {
  const signed = frame.subarray(0, frame.length - MAC_BYTES);
  const at = SIGNED_FIELDS_OFFSET + rng.int(signed.length - SIGNED_FIELDS_OFFSET);
  const span = 1 + rng.int(rng.chance(0.8) ? 4 : 64);
  let body: Buffer;
  switch (rng.int(3)) {
    case 0:
      body = Buffer.concat([signed.subarray(0, at), signed.subarray(Math.min(signed.length, at + span))]);
      break;
    case 1:
      body = Buffer.concat([signed.subarray(0, at), rng.bytes(span), signed.subarray(at)]);
      break;
    default:
      body = Buffer.concat([signed.subarray(0, at), signed.subarray(at, at + span), signed.subarray(at)]);
  }
  if (rng.chance(0.1)) body[3] = rng.int(10);
  return remac(Buffer.concat([body, Buffer.alloc(MAC_BYTES)]));
}

const STRATEGIES = [
  'random',
  'random-header',
  'mutate',
  'truncate',
  'extend',
  'remac-mutate',
  'remac-splice',
  'valid',
] as const;
type Strategy = (typeof STRATEGIES)[number];
/** Cumulative weights out of 100, in STRATEGIES order. */
const STRATEGY_WEIGHTS = [10, 15, 35, 40, 45, 70, 90, 100];

interface FuzzInput {
  readonly strategy: Strategy;
  readonly input: Buffer;
  /** The message the input must decode to if it decodes at all; undefined when the input was re-MACed or random. */
  readonly original: ValidFrame | undefined;
}

function nextInput(rng: Rng, pool: readonly ValidFrame[]): FuzzInput {
  const roll = rng.int(100);
  const strategy = STRATEGIES[STRATEGY_WEIGHTS.findIndex((w) => roll < w)]!;
  const base = rng.pick(pool);
  const f = base.frame;
  switch (strategy) {
    case 'random':
      return { strategy, input: rng.bytes(rng.int(MAX_INPUT_BYTES + 1)), original: undefined };
    case 'random-header':
      return {
        strategy,
        input: Buffer.concat([HEADER_PREFIX, rng.bytes(rng.int(MAX_DATAGRAM_BYTES - HEADER_PREFIX.length))]),
        original: undefined,
      };
    case 'mutate':
      return { strategy, input: mutateBytes(rng, f, 0, f.length), original: base };
    case 'truncate':
      return { strategy, input: f.subarray(0, rng.int(f.length)), original: base };
    case 'extend':
      return {
        strategy,
        input: Buffer.concat([f, rng.bytes(1 + rng.int(MAX_INPUT_BYTES - f.length))]),
        original: base,
      };
    case 'remac-mutate': {
      // Magic, version and site tag are refused before the MAC whatever the MAC says: 'mutate' covers them.
      const input = mutateBytes(rng, f, SIGNED_FIELDS_OFFSET, f.length - MAC_BYTES);
      if (rng.chance(0.1)) input[3] = rng.int(10); // another (or no) message type over this body
      return { strategy, input: remac(input), original: undefined };
    }
    case 'remac-splice':
      return { strategy, input: spliceBody(rng, f), original: undefined };
    case 'valid':
      return { strategy, input: f, original: base };
  }
}

// ---------------------------------------------------------------------------------------------------
// the oracle

/** check asserts what must hold for every input; it returns the result for the statistics. */
function check(input: Buffer, original: ValidFrame | undefined, describeInput: () => string): DecodeResult {
  const fail = (problem: string, cause?: unknown): never => {
    throw new assert.AssertionError({
      message: `${problem}\n${describeInput()}${cause === undefined ? '' : `\ncause: ${String((cause as Error)?.stack ?? cause)}`}`,
    });
  };
  let result: DecodeResult;
  try {
    result = decode(input, CTX);
  } catch (err) {
    return fail('decode threw', err);
  }
  if (!result.ok) {
    if (!KNOWN_REASONS.has(result.reason)) fail(`unknown drop reason ${JSON.stringify(result.reason)}`);
    if (original !== undefined && input.equals(original.frame)) {
      fail(`a valid frame was dropped as ${result.reason}`);
    }
    return result;
  }
  // Accepted: the encoding is canonical, so the message must re-encode to exactly these bytes...
  let again: Buffer;
  try {
    again = encode(result.msg, { ...CTX, incarnation: result.incarnation, counter: result.counter });
  } catch (err) {
    return fail('decode accepted a message that encode refuses', err);
  }
  if (!again.equals(input)) {
    fail(`accepted frame is not canonical: it re-encodes to ${again.toString('hex')}`);
  }
  // ...and a frame nobody re-MACed can only be accepted unchanged, as the message it was made from.
  if (original !== undefined) {
    if (!input.equals(original.frame)) fail('a frame changed without the key was accepted');
    if (!isDeepStrictEqual(result.msg, original.msg)) fail('decoded to another message than was encoded');
  }
  return result;
}

test(`decode fuzz: ${INPUTS.toLocaleString('en')} random, mutated and re-MACed inputs (seed ${SEED})`, (t) => {
  t.diagnostic(`seed ${SEED} (replay with EDGECTL_FUZZ_SEED=${SEED})`);
  const rng = new Rng(SEED);
  const pool: ValidFrame[] = Array.from({ length: 256 }, () => randomValidFrame(rng));
  const outcomes = new Map<string, number>(); // `${strategy} ${ok | reason}` → count
  const started = performance.now();

  for (let i = 0; i < INPUTS; i++) {
    if (i % 64 === 0) pool[rng.int(pool.length)] = randomValidFrame(rng);
    const { strategy, input, original } = nextInput(rng, pool);
    const result = check(
      input,
      original,
      () => `seed ${SEED}, input ${i}, strategy ${strategy}: ${input.toString('hex')}`,
    );
    const key = `${strategy} ${result.ok ? 'ok' : result.reason}`;
    outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
  }

  const seconds = (performance.now() - started) / 1000;
  t.diagnostic(`${INPUTS} inputs in ${seconds.toFixed(1)} s: ${Math.round(INPUTS / seconds)} inputs/s`);
  for (const [key, count] of [...outcomes].sort()) t.diagnostic(`  ${key}: ${count}`);

  // The mix must reach past the MAC into the body parser, both to accept and to refuse.
  const count = (strategy: Strategy, outcome: DropReason | 'ok'): number =>
    outcomes.get(`${strategy} ${outcome}`) ?? 0;
  for (const strategy of ['remac-mutate', 'remac-splice'] as const) {
    assert.ok(count(strategy, 'malformed') > INPUTS / 100, `${strategy} reaches field validation`);
    assert.ok(count(strategy, 'ok') > INPUTS / 1000, `${strategy} produces accepted frames too`);
  }
  assert.ok(count('remac-splice', 'unknown-type') > 0);
  assert.ok(count('random-header', 'bad-mac') > 0);
});

test('decode of arbitrary authenticated bodies (fast-check, shrinks a failure to a minimal body)', () => {
  // Bodies are sequences of plausible field encodings, so most inputs get past the first few fields.
  const varint = (n: number): Buffer => {
    const bytes: number[] = [];
    for (; n >= 0x80; n = Math.floor(n / 0x80)) bytes.push((n % 0x80) | 0x80);
    bytes.push(n);
    return Buffer.from(bytes);
  };
  const nodeId = fc
    .stringMatching(/^[a-z0-9-]{1,63}$/)
    .map((s) => Buffer.concat([Buffer.from([s.length]), Buffer.from(s)]));
  const field = fc.oneof(
    nodeId,
    fc.nat(300).map(varint),
    fc.maxSafeNat().map(varint),
    fc.double().map((v) => {
      const b = Buffer.alloc(8);
      b.writeDoubleBE(v);
      return b;
    }),
    fc.constantFrom(0, 1, 2, 3).map((b) => Buffer.from([b])),
    fc
      .string({ unit: 'binary', maxLength: 20 })
      .map((s) => Buffer.concat([varint(Buffer.byteLength(s)), Buffer.from(s)])),
    fc.uint8Array({ maxLength: 4 }).map((b) => Buffer.from(b)),
  );
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 9 }),
      fc.uint8Array({ minLength: 12, maxLength: 12 }), // incarnation and counter
      nodeId,
      fc.array(field, { maxLength: 24 }),
      (typeCode, incarnationAndCounter, sender, fields) => {
        const input = Buffer.concat([
          HEADER_PREFIX,
          incarnationAndCounter,
          sender,
          ...fields,
          Buffer.alloc(MAC_BYTES),
        ]);
        if (input.length > MAX_DATAGRAM_BYTES) return;
        input[3] = typeCode;
        check(remac(input), undefined, () => input.toString('hex'));
      },
    ),
    { numRuns: PROPERTY_RUNS, seed: SEED | 0 },
  );
});
