/**
 * The authenticated wire codec of election datagrams (docs/protocol-wire.md has the full design).
 *
 * Frame, version 2. Integers are big-endian; `uint` is an unsigned LEB128 varint (minimal, at most
 * 2^53 − 1); `id` is a u8 length (1..63) and that many bytes of `[a-z0-9-]`; `ms` is a float64
 * (finite, ≥ 0); `flag` is a u8 that is 0 or 1.
 *
 *   offset   size  field
 *   0        2     magic 0xED 0x6C
 *   2        1     version = 2
 *   3        1     message type: 1 preVote, 2 preVoteResp, 3 vote, 4 voteResp, 5 append, 6 appendResp, 7 timeoutNow
 *   4        8     site tag: the first 8 bytes of SHA-256("edgectl-site\0" ‖ siteId)
 *   12       4     key generation: u32, which generation of the site's keys the MAC is made with
 *   16       4     incarnation: u32 the sender draws at random once per boot
 *   20       8     counter: u64 (≤ 2^53 − 1), strictly increasing per datagram within one incarnation
 *   28       1+n   sender: id. It is the message's `from`: `from` is not repeated in the body, so the
 *                  body cannot name anyone but the authenticated sender.
 *   29+n     …     body: the fields of the message type, in the order of BODY_LAYOUT below
 *   len−32   32    HMAC-SHA256(K, every byte before it)
 *
 * K is the key of the pair (sender, receiver) at that generation (agent/site-key.ts): a voter pair's
 * own key, or the worker's key between a worker and a voter. decode checks the length bounds and the
 * magic, version and site tag (plain comparisons), reads the claimed sender (a bounded id at a fixed
 * offset) and asks the receiver's keyring for the key of that sender and generation, checks the MAC
 * (constant-time), and only then parses the rest. A sender that is not a voter may send only
 * appendResp: its votes, Appends and TimeoutNow are refused even with a valid MAC. Every field is
 * validated, trailing bytes are refused and varints must be minimal, so the encoding is canonical: a
 * frame that decodes is byte for byte what encode produces for the decoded message and the same
 * context.
 */

import { isUtf8 } from 'node:buffer';
import { EdgeError } from '../errors.ts';
import { constantTimeEqual, HmacSha256, SHA256_BYTES, sha256Digest } from '../sha256.ts';
import type { EntryKind, LogEntry, Message, MessageType, NodeId } from '../../statecharts/messages.ts';
import type { ReplayWindow } from './replay.ts';

/** Largest datagram sent or accepted: fits the IPv6 minimum MTU (1280) minus IP and UDP headers. */
export const MAX_DATAGRAM_BYTES = 1200;
export const CODEC_VERSION = 2;
/** Keys are HMAC-SHA256 keys: shorter keys would weaken them below the 256-bit tag. */
export const MIN_SITE_KEY_BYTES = 32;
export const MAX_NODE_ID_BYTES = 63;

const MAGIC_0 = 0xed;
const MAGIC_1 = 0x6c;
const SITE_TAG_OFFSET = 4;
const SITE_TAG_BYTES = 8;
const GENERATION_OFFSET = 12;
const FIXED_HEADER_BYTES = 28; // magic, version, type, site tag, key generation, incarnation, counter
const MAC_BYTES = 32;
const MAX_VARINT_BYTES = 8; // 8 × 7 bits ≥ 53 bits
const MAX_COUNTER_HIGH_WORD = 0x1f_ffff; // the high 32 bits of 2^53 − 1

/** The shortest frame there is: a TimeoutNow between one-character ids at term < 128. */
const MIN_FRAME_BYTES = FIXED_HEADER_BYTES + 2 + 2 + 1 + MAC_BYTES;

/**
 * Worst-case size of an Append without its entries' data: 63-character ids and 8-byte varints
 * everywhere. Leaders pack entries with these bounds so that encode never has to refuse an Append:
 * an Append carrying E entries with D data bytes in total is at most
 * MAX_APPEND_FIXED_BYTES + E × MAX_ENTRY_OVERHEAD_BYTES + D bytes on the wire.
 */
export const MAX_APPEND_FIXED_BYTES =
  FIXED_HEADER_BYTES + (1 + MAX_NODE_ID_BYTES) * 2 + 4 * MAX_VARINT_BYTES + 8 + 2 + MAC_BYTES;
/** Per-entry worst case besides its data: term varint, kind byte, data length varint (< 2^14). */
export const MAX_ENTRY_OVERHEAD_BYTES = MAX_VARINT_BYTES + 1 + 2;

/** Why decode refused a datagram, in the order decode checks; metrics label drops with these. */
export const DROP_REASONS = [
  'oversized',
  'too-short',
  'bad-magic',
  'bad-version',
  'wrong-site',
  'unknown-key',
  'bad-mac',
  'unknown-type',
  'malformed',
  'not-permitted',
  'replay',
  'unconfirmed',
] as const;
export type DropReason = (typeof DROP_REASONS)[number];

/** A key as the keyring hands it out: its generation and its HMAC state (pads hashed once). */
export interface FrameKey {
  readonly generation: number;
  readonly mac: HmacSha256;
}

/** The key a frame from some sender must carry, and whether that sender votes. */
export interface ReceiveKey {
  readonly mac: HmacSha256;
  /** Senders that are not voters may send only appendResp. */
  readonly voter: boolean;
}

/**
 * KeyLookup: the receiver's keyring (agent/site-key.ts Keyring.receiveKey). undefined means no frame
 * from that sender at that generation can be genuine.
 */
export type KeyLookup = (sender: NodeId, generation: number) => ReceiveKey | undefined;

export interface EncodeContext {
  readonly siteId: string;
  /**
   * The key for this frame's (sender, receiver): the keyring's FrameKey, or raw bytes (at least
   * MIN_SITE_KEY_BYTES) used as generation 0 (tests and tools that hold one key).
   */
  readonly key: Uint8Array | FrameKey;
  /** Random u32 drawn once per boot (crypto.randomInt(2 ** 32)). */
  readonly incarnation: number;
  /** This datagram's counter: start at 0 each boot, add 1 per datagram sent to anyone. */
  readonly counter: number;
}

export interface DecodeContext {
  readonly siteId: string;
  /**
   * The receiver's keyring lookup, or raw key bytes that every sender uses at generation 0, each
   * sender counted as a voter (tests and tools that hold one key).
   */
  readonly key: Uint8Array | KeyLookup;
  /**
   * When given, an authenticated and well-formed datagram is checked against (and recorded in) this
   * window, and a repeat is dropped as 'replay'. Only datagrams that pass every other check reach it.
   */
  readonly replay?: ReplayWindow;
}

export type DecodeResult =
  | {
      readonly ok: true;
      readonly msg: Message;
      readonly sender: NodeId;
      readonly generation: number;
      readonly incarnation: number;
      readonly counter: number;
    }
  | { readonly ok: false; readonly reason: DropReason };

const TYPE_CODES: { readonly [T in MessageType]: number } = {
  preVote: 1,
  preVoteResp: 2,
  vote: 3,
  voteResp: 4,
  append: 5,
  appendResp: 6,
  timeoutNow: 7,
};
const TYPE_BY_CODE: readonly (MessageType | undefined)[] = (() => {
  const byCode: (MessageType | undefined)[] = new Array<MessageType | undefined>(256).fill(undefined);
  for (const [type, code] of Object.entries(TYPE_CODES)) byCode[code] = type as MessageType;
  return byCode;
})();

const ENTRY_KIND_CODES: { readonly [K in EntryKind]: number } = { noop: 0, site: 1, snapshot: 2 };
const ENTRY_KIND_BY_CODE: readonly EntryKind[] = ['noop', 'site', 'snapshot'];
/** The smallest encoded entry: 1-byte term, kind, 1-byte length of empty data. */
const MIN_ENTRY_BYTES = 3;

type FieldCodec = 'id' | 'uint' | 'ms' | 'flag' | 'entries';
type CodecFor<V> = V extends string
  ? 'id'
  : V extends number
    ? 'uint' | 'ms'
    : V extends boolean
      ? 'flag'
      : 'entries';
/** The fields of a message type that its body carries: all but `type` (the header) and `from` (the sender). */
type BodyKey<M> = Exclude<keyof M, 'type' | 'from'>;
type BodyField<M> = { [K in BodyKey<M>]: readonly [K, CodecFor<M[K]>] }[BodyKey<M>];

/**
 * The body of each message type, in wire order. One table drives both encode and decode, so the two
 * cannot disagree about a field. Changing it changes the wire format: bump CODEC_VERSION.
 */
const BODY_LAYOUT: { readonly [T in MessageType]: readonly BodyField<Extract<Message, { type: T }>>[] } = {
  preVote: [
    ['to', 'id'],
    ['term', 'uint'],
    ['lastIndex', 'uint'],
    ['lastTerm', 'uint'],
  ],
  preVoteResp: [
    ['to', 'id'],
    ['term', 'uint'],
    ['granted', 'flag'],
  ],
  vote: [
    ['to', 'id'],
    ['term', 'uint'],
    ['lastIndex', 'uint'],
    ['lastTerm', 'uint'],
    ['transfer', 'flag'],
  ],
  voteResp: [
    ['to', 'id'],
    ['term', 'uint'],
    ['granted', 'flag'],
  ],
  append: [
    ['to', 'id'],
    ['term', 'uint'],
    ['prevIndex', 'uint'],
    ['prevTerm', 'uint'],
    ['commit', 'uint'],
    ['sentAt', 'ms'],
    ['entries', 'entries'],
  ],
  appendResp: [
    ['to', 'id'],
    ['term', 'uint'],
    ['success', 'flag'],
    ['matchIndex', 'uint'],
    ['echo', 'ms'],
  ],
  timeoutNow: [
    ['to', 'id'],
    ['term', 'uint'],
  ],
};

// ---------------------------------------------------------------------------------------------------
// encode

/**
 * encode renders `msg` as one authenticated datagram. The sender is `msg.from`. It throws an
 * EdgeError when the message or the context is invalid (a bug or a bad config: nothing on the wire
 * could be decoded from it) and EDGE_DATAGRAM_TOO_LARGE when the frame would exceed
 * MAX_DATAGRAM_BYTES.
 */
export function encode(msg: Message, ctx: EncodeContext): Buffer {
  checkSiteContext(ctx);
  if (!isU32(ctx.incarnation)) {
    throw contextError(`incarnation must be an integer in [0, 2^32) (got ${String(ctx.incarnation)})`);
  }
  if (!isUint(ctx.counter)) {
    throw contextError(`counter must be a safe integer ≥ 0 (got ${String(ctx.counter)})`);
  }
  const layout = BODY_LAYOUT[msg?.type] as readonly (readonly [string, FieldCodec])[] | undefined;
  if (layout === undefined) throw messageError(`unknown message type ${JSON.stringify(msg?.type)}`);

  const w = new FrameWriter();
  w.u8(MAGIC_0);
  w.u8(MAGIC_1);
  w.u8(CODEC_VERSION);
  w.u8(TYPE_CODES[msg.type]);
  w.bytes(siteTag(ctx.siteId));
  const key = ctx.key instanceof Uint8Array ? { generation: 0, mac: keyedMac(ctx.key) } : ctx.key;
  w.u32(key.generation);
  w.u32(ctx.incarnation);
  w.u64(ctx.counter);
  writeId(w, 'from', msg.from);
  const fields = msg as unknown as Readonly<Record<string, unknown>>;
  for (const [name, codec] of layout) writeField(w, name, codec, fields[name]);
  if (msg.type === 'preVote' || msg.type === 'vote' || msg.type === 'appendResp') writeReplicaTail(w, fields);

  const size = w.length + MAC_BYTES;
  if (size > MAX_DATAGRAM_BYTES) {
    throw new EdgeError(
      'DATAGRAM_TOO_LARGE',
      `${msg.type} from ${msg.from} to ${String(fields.to)} would be ${size} bytes on the wire, over the ${MAX_DATAGRAM_BYTES}-byte datagram limit`,
      {
        hint:
          'send fewer or smaller log entries per Append: budget MAX_APPEND_FIXED_BYTES + MAX_ENTRY_OVERHEAD_BYTES per entry ' +
          'plus the data (agent/transport/codec.ts), and keep maxAppendBytes/maxEntryBytes in the timing profile within it',
      },
    );
  }
  const frame = Buffer.allocUnsafe(size);
  w.copyTo(frame);
  key.mac.macInto(frame.subarray(0, w.length), frame.subarray(w.length, w.length + MAC_BYTES));
  return frame;
}

function writeField(w: FrameWriter, name: string, codec: FieldCodec, value: unknown): void {
  switch (codec) {
    case 'id':
      return writeId(w, name, value);
    case 'uint':
      if (!isUint(value)) throw messageError(`${name} must be a safe integer ≥ 0 (got ${String(value)})`);
      return w.varint(value);
    case 'ms':
      if (!isMs(value)) {
        throw messageError(`${name} must be a finite number of ms ≥ 0 (got ${String(value)})`);
      }
      return w.f64(value);
    case 'flag':
      if (typeof value !== 'boolean') throw messageError(`${name} must be a boolean (got ${String(value)})`);
      return w.u8(value ? 1 : 0);
    case 'entries':
      return writeEntries(w, value);
  }
}

/**
 * The replica position a (pre)candidate campaigns with (docs/k3s.md "Replication"): an optional
 * tail of two uints after the body of preVote, vote and appendResp, written only when it is not (0, 0). A
 * campaign without a replica is byte for byte what it was before replication existed, so robots of
 * the previous version still vote for it during a rolling upgrade.
 */
function writeReplicaTail(w: FrameWriter, fields: Readonly<Record<string, unknown>>): void {
  const epoch = fields['replicaEpoch'] ?? 0;
  const rev = fields['replicaRev'] ?? 0;
  if (epoch === 0 && rev === 0) return;
  writeField(w, 'replicaEpoch', 'uint', epoch);
  writeField(w, 'replicaRev', 'uint', rev);
}

function writeId(w: FrameWriter, name: string, value: unknown): void {
  if (!isNodeId(value)) {
    throw messageError(
      `${name} must be a node id of 1 to ${MAX_NODE_ID_BYTES} characters [a-z0-9-] (got ${JSON.stringify(value)})`,
    );
  }
  w.u8(value.length);
  w.ascii(value);
}

function writeEntries(w: FrameWriter, value: unknown): void {
  if (!Array.isArray(value)) throw messageError('entries must be an array');
  const entries = value as readonly unknown[];
  w.varint(entries.length);
  entries.forEach((entry: unknown, i) => {
    const e = entry as Partial<LogEntry> | null;
    if (typeof e !== 'object' || e === null) throw messageError(`entries[${i}] must be an object`);
    if (!isUint(e.term)) {
      throw messageError(`entries[${i}].term must be a safe integer ≥ 0 (got ${String(e.term)})`);
    }
    const kindCode =
      typeof e.kind === 'string' && Object.hasOwn(ENTRY_KIND_CODES, e.kind)
        ? ENTRY_KIND_CODES[e.kind]
        : undefined;
    if (kindCode === undefined) {
      throw messageError(`entries[${i}].kind must be one of noop, site, snapshot (got ${String(e.kind)})`);
    }
    // A lone surrogate would be replaced by U+FFFD on the way out and come back as different data.
    if (typeof e.data !== 'string' || !e.data.isWellFormed()) {
      throw messageError(`entries[${i}].data must be a well-formed string (no lone surrogates)`);
    }
    w.varint(e.term);
    w.u8(kindCode);
    w.utf8(e.data);
  });
}

/**
 * FrameWriter appends to a buffer that grows as needed. encode checks the datagram limit once at the
 * end; the buffer is only scratch space, so an oversized message costs an allocation, not a bug.
 */
class FrameWriter {
  #buf = Buffer.allocUnsafe(256);
  #len = 0;

  get length(): number {
    return this.#len;
  }

  u8(v: number): void {
    this.#reserve(1);
    this.#buf[this.#len++] = v;
  }

  u32(v: number): void {
    this.#reserve(4);
    this.#len = this.#buf.writeUInt32BE(v, this.#len);
  }

  /** A safe integer as a u64: two u32 words, since Number has no 64-bit integer write. */
  u64(v: number): void {
    this.u32(Math.floor(v / 2 ** 32));
    this.u32(v % 2 ** 32);
  }

  varint(v: number): void {
    this.#reserve(MAX_VARINT_BYTES);
    while (v >= 0x80) {
      this.#buf[this.#len++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.#buf[this.#len++] = v;
  }

  f64(v: number): void {
    this.#reserve(8);
    this.#len = this.#buf.writeDoubleBE(v, this.#len);
  }

  bytes(b: Uint8Array): void {
    this.#reserve(b.length);
    this.#buf.set(b, this.#len);
    this.#len += b.length;
  }

  ascii(s: string): void {
    this.#reserve(s.length);
    this.#len += this.#buf.write(s, this.#len, 'latin1');
  }

  /** A varint byte length, then the UTF-8 bytes. */
  utf8(s: string): void {
    const n = Buffer.byteLength(s, 'utf8');
    this.varint(n);
    this.#reserve(n);
    this.#len += this.#buf.write(s, this.#len, 'utf8');
  }

  copyTo(target: Buffer): void {
    this.#buf.copy(target, 0, 0, this.#len);
  }

  #reserve(n: number): void {
    if (this.#len + n <= this.#buf.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.#buf.length * 2, this.#len + n));
    this.#buf.copy(grown, 0, 0, this.#len);
    this.#buf = grown;
  }
}

// ---------------------------------------------------------------------------------------------------
// decode

/**
 * decode authenticates and parses one datagram. It never throws on any `buf`: every defect is a
 * DropReason. It throws only when `ctx` itself is invalid (a short key), which is a config error the
 * transport should catch at startup, not per datagram.
 */
export function decode(buf: Uint8Array, ctx: DecodeContext): DecodeResult {
  checkSiteContext(ctx);
  if (!(buf instanceof Uint8Array)) return drop('malformed');
  const frame = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);

  if (frame.length > MAX_DATAGRAM_BYTES) return drop('oversized');
  if (frame.length < MIN_FRAME_BYTES) return drop('too-short');
  if (frame[0] !== MAGIC_0 || frame[1] !== MAGIC_1) return drop('bad-magic');
  if (frame[2] !== CODEC_VERSION) return drop('bad-version');
  // Checked before the MAC because it is cheap and tells operators that two sites share a network;
  // the MAC covers the tag, so it cannot be used to smuggle a frame from one site into another.
  if (!siteTag(ctx.siteId).equals(frame.subarray(SITE_TAG_OFFSET, SITE_TAG_OFFSET + SITE_TAG_BYTES))) {
    return drop('wrong-site');
  }
  const macOffset = frame.length - MAC_BYTES;
  // The claimed sender picks the key; it is read with the same bounds the body parser applies, and
  // nothing but the key lookup sees it before the MAC is checked.
  const head = new FrameReader(frame, GENERATION_OFFSET, macOffset);
  const generation = head.u32();
  head.skip(12); // incarnation, counter: read once authenticated
  const sender = head.id();
  if (head.failed) return drop('unknown-key');
  const key =
    ctx.key instanceof Uint8Array
      ? generation === 0
        ? { mac: keyedMac(ctx.key), voter: true }
        : undefined
      : ctx.key(sender, generation);
  if (key === undefined) return drop('unknown-key');
  key.mac.macInto(frame.subarray(0, macOffset), expectedMac);
  if (!constantTimeEqual(expectedMac, frame.subarray(macOffset))) {
    return drop('bad-mac');
  }

  // Authenticated from here on: what remains to catch is a peer with the key and a bug, or a newer
  // codec that added a message type without bumping the version.
  const type = TYPE_BY_CODE[frame[3]!];
  if (type === undefined) return drop('unknown-type');
  const r = new FrameReader(frame, GENERATION_OFFSET + 4, macOffset);
  const incarnation = r.u32();
  const counter = r.u64();
  r.id(); // the sender, read above
  const msg: Record<string, unknown> = { type, from: sender };
  const layout = BODY_LAYOUT[type] as readonly (readonly [string, FieldCodec])[];
  for (const [name, codec] of layout) msg[name] = readField(r, codec);
  if ((type === 'preVote' || type === 'vote' || type === 'appendResp') && r.remaining > 0 && !r.failed) {
    const replicaEpoch = r.varint();
    const replicaRev = r.varint();
    // Absent is the only encoding of "no replica": a present tail of zeros is not canonical.
    if (replicaEpoch === 0 && replicaRev === 0) r.fail();
    msg['replicaEpoch'] = replicaEpoch;
    msg['replicaRev'] = replicaRev;
  }
  if (r.failed || r.remaining !== 0) return drop('malformed');
  // A worker's key speaks for that worker only, and a worker only answers Appends: its key can
  // never cast a vote, lead, or make a voter campaign.
  if (!key.voter && type !== 'appendResp') return drop('not-permitted');

  if (ctx.replay !== undefined) {
    const verdict = ctx.replay.check(sender, incarnation, counter);
    if (verdict !== 'ok') return drop(verdict);
  }
  return { ok: true, msg: msg as unknown as Message, sender, generation, incarnation, counter };
}

function readField(r: FrameReader, codec: FieldCodec): unknown {
  switch (codec) {
    case 'id':
      return r.id();
    case 'uint':
      return r.varint();
    case 'ms':
      return r.ms();
    case 'flag':
      return r.flag();
    case 'entries':
      return readEntries(r);
  }
}

function readEntries(r: FrameReader): LogEntry[] {
  const count = r.varint();
  // Refuse a count the remaining bytes cannot hold before allocating anything for it.
  if (count * MIN_ENTRY_BYTES > r.remaining) {
    r.fail();
    return [];
  }
  const entries: LogEntry[] = [];
  for (let i = 0; i < count && !r.failed; i++) {
    const term = r.varint();
    const kind = ENTRY_KIND_BY_CODE[r.u8()];
    const data = r.utf8();
    if (kind === undefined) r.fail();
    else entries.push({ term, kind, data });
  }
  return entries;
}

/**
 * FrameReader reads the authenticated bytes [pos, end). It never throws: a read past `end` or an
 * invalid value sets the sticky `failed` flag and returns a placeholder, and decode checks the flag
 * once at the end, so the field code reads straight through without a check per field.
 */
class FrameReader {
  readonly #buf: Buffer;
  readonly #end: number;
  #pos: number;
  failed = false;

  constructor(buf: Buffer, pos: number, end: number) {
    this.#buf = buf;
    this.#pos = pos;
    this.#end = end;
  }

  get remaining(): number {
    return this.#end - this.#pos;
  }

  fail(): void {
    this.failed = true;
    this.#pos = this.#end;
  }

  skip(n: number): void {
    if (this.#pos + n > this.#end) this.fail();
    else this.#pos += n;
  }

  u8(): number {
    if (this.#pos >= this.#end) return this.#failed(0);
    return this.#buf[this.#pos++]!;
  }

  u32(): number {
    if (this.#pos + 4 > this.#end) return this.#failed(0);
    const v = this.#buf.readUInt32BE(this.#pos);
    this.#pos += 4;
    return v;
  }

  u64(): number {
    const high = this.u32();
    const low = this.u32();
    if (high > MAX_COUNTER_HIGH_WORD) return this.#failed(0);
    return high * 2 ** 32 + low;
  }

  /** A minimal unsigned LEB128 of at most 2^53 − 1. */
  varint(): number {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < MAX_VARINT_BYTES; i++) {
      const b = this.u8();
      if (this.failed) return 0;
      // Float sums are exact below 2^53 and a true sum ≥ 2^53 never rounds below it: the bound check is exact.
      value += (b & 0x7f) * scale;
      if (b < 0x80) {
        if (b === 0 && i > 0) return this.#failed(0); // a trailing zero group: not minimal
        if (value > Number.MAX_SAFE_INTEGER) return this.#failed(0);
        return value;
      }
      scale *= 0x80;
    }
    return this.#failed(0);
  }

  ms(): number {
    if (this.#pos + 8 > this.#end) return this.#failed(0);
    const v = this.#buf.readDoubleBE(this.#pos);
    this.#pos += 8;
    return isMs(v) ? v : this.#failed(0);
  }

  flag(): boolean {
    const b = this.u8();
    if (b > 1) return this.#failed(false);
    return b === 1;
  }

  id(): string {
    const n = this.u8();
    if (n === 0 || n > MAX_NODE_ID_BYTES || n > this.remaining) return this.#failed('');
    const start = this.#pos;
    for (let i = start; i < start + n; i++) {
      if (!isIdByte(this.#buf[i]!)) return this.#failed('');
    }
    this.#pos += n;
    return this.#buf.toString('latin1', start, start + n);
  }

  utf8(): string {
    const n = this.varint();
    if (this.failed || n > this.remaining) return this.#failed('');
    const bytes = this.#buf.subarray(this.#pos, this.#pos + n);
    // isUtf8 refuses overlong forms and encoded surrogates, so every accepted string re-encodes to the same bytes.
    if (!isUtf8(bytes)) return this.#failed('');
    this.#pos += n;
    return bytes.toString('utf8'); // keeps a leading U+FEFF, unlike TextDecoder by default
  }

  #failed<T>(placeholder: T): T {
    this.fail();
    return placeholder;
  }
}

function drop(reason: DropReason): DecodeResult {
  return { ok: false, reason };
}

// ---------------------------------------------------------------------------------------------------
// shared

let siteTagCache: { readonly siteId: string; readonly tag: Buffer } | undefined;

const textEncoder = new TextEncoder();

/** siteTag is cached because one agent serves one site: every datagram asks for the same tag. */
function siteTag(siteId: string): Buffer {
  if (siteTagCache?.siteId !== siteId) {
    const digest = sha256Digest(textEncoder.encode(`edgectl-site\0${siteId}`));
    siteTagCache = { siteId, tag: Buffer.from(digest.subarray(0, SITE_TAG_BYTES)) };
  }
  return siteTagCache.tag;
}

/** The MAC of the raw key last used, and a copy of that key. */
let macKey: { readonly bytes: Uint8Array; readonly mac: HmacSha256 } | undefined;
/** The tag decode computes for a frame, to compare with the one the frame carries. */
const expectedMac = new Uint8Array(SHA256_BYTES);

/**
 * keyedMac is HMAC-SHA256 (RFC 2104) under a raw key, with the key's pads hashed once per key
 * (agent/sha256.ts). The key is compared by contents, not identity, so a key buffer changed
 * in place is never served stale. codec.test.ts checks the frames' tags against createHmac.
 */
function keyedMac(key: Uint8Array): HmacSha256 {
  if (macKey === undefined || !constantTimeEqual(macKey.bytes, key))
    macKey = { bytes: Uint8Array.from(key), mac: new HmacSha256(key) };
  return macKey.mac;
}

function checkSiteContext(ctx: { readonly siteId: string; readonly key: unknown }): void {
  const k = ctx.key;
  const keyOk =
    k instanceof Uint8Array
      ? k.length >= MIN_SITE_KEY_BYTES
      : typeof k === 'function' ||
        (typeof k === 'object' &&
          k !== null &&
          (k as FrameKey).mac instanceof HmacSha256 &&
          isU32((k as FrameKey).generation));
  if (!keyOk) {
    throw new EdgeError('SITE_KEY_INVALID', `a frame key must be at least ${MIN_SITE_KEY_BYTES} bytes`, {
      hint: 'the agent takes its keys from its key file (agent/site-key.ts): run edgectl bootstrap site again',
    });
  }
  if (typeof ctx.siteId !== 'string' || ctx.siteId.length === 0 || !ctx.siteId.isWellFormed()) {
    throw contextError(`siteId must be a non-empty string (got ${JSON.stringify(ctx.siteId)})`);
  }
}

function messageError(problem: string): EdgeError {
  return new EdgeError('MESSAGE_INVALID', `cannot encode the message: ${problem}`, {
    hint: 'the election core produced an invalid message: this is a bug in edgectl, please report it',
  });
}

function contextError(problem: string): EdgeError {
  return new EdgeError('CODEC_CONTEXT_INVALID', `invalid codec context: ${problem}`, {
    hint: 'the transport passed a bad site id, incarnation or counter: this is a bug in edgectl, please report it',
  });
}

function isIdByte(b: number): boolean {
  return (b >= 0x61 && b <= 0x7a) || (b >= 0x30 && b <= 0x39) || b === 0x2d; // a-z, 0-9, '-'
}

/** isNodeId: 1..63 characters of [a-z0-9-], the NodeId contract of statecharts/messages.ts. */
export function isNodeId(value: unknown): value is NodeId {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_NODE_ID_BYTES) return false;
  for (let i = 0; i < value.length; i++) {
    if (!isIdByte(value.charCodeAt(i))) return false;
  }
  return true;
}

function isUint(v: unknown): v is number {
  return Number.isSafeInteger(v) && (v as number) >= 0;
}

function isU32(v: unknown): v is number {
  return Number.isInteger(v) && (v as number) >= 0 && (v as number) < 2 ** 32;
}

function isMs(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0;
}

// ---------------------------------------------------------------------------------------------------
// Incarnation challenges

/**
 * The transport's own frames, which confirm that an incarnation is alive before any datagram of it
 * is accepted (replay.ts). Same header, sender and MAC as every frame, message types 8 and 9, body
 * `to` (id) and `nonce` (u64). A receiver that meets an unconfirmed incarnation of a sender sends it
 * a `challenge` with a fresh random nonce; the sender's live process answers with an `answer`
 * carrying the nonce, and that answer (its incarnation and counter) confirms the incarnation. Nothing
 * else in it counts: decode() reports both types as 'unknown-type', so they never reach the election.
 */
export interface IncarnationFrame {
  readonly kind: 'challenge' | 'answer';
  readonly from: NodeId;
  readonly to: NodeId;
  /** 0 ≤ nonce ≤ 2^53 − 1; the challenger draws it at random. */
  readonly nonce: number;
}

const CHALLENGE_TYPE = 8;
const ANSWER_TYPE = 9;

export type IncarnationDecodeResult =
  | {
      readonly ok: true;
      readonly frame: IncarnationFrame;
      readonly sender: NodeId;
      readonly generation: number;
      readonly incarnation: number;
      readonly counter: number;
    }
  | { readonly ok: false; readonly reason: DropReason };

/**
 * encodeIncarnationFrame renders a challenge or an answer as one authenticated datagram, with the
 * same header as an election message (the key generation, then incarnation and counter) and the
 * key of its (sender, receiver) pair.
 */
export function encodeIncarnationFrame(f: IncarnationFrame, ctx: EncodeContext): Buffer {
  checkSiteContext(ctx);
  if (!isU32(ctx.incarnation) || !isUint(ctx.counter)) throw contextError('bad incarnation or counter');
  if (!isUint(f.nonce)) throw messageError(`nonce must be a safe integer ≥ 0 (got ${String(f.nonce)})`);
  const key = ctx.key instanceof Uint8Array ? { generation: 0, mac: keyedMac(ctx.key) } : ctx.key;
  const w = new FrameWriter();
  w.u8(MAGIC_0);
  w.u8(MAGIC_1);
  w.u8(CODEC_VERSION);
  w.u8(f.kind === 'challenge' ? CHALLENGE_TYPE : ANSWER_TYPE);
  w.bytes(siteTag(ctx.siteId));
  w.u32(key.generation);
  w.u32(ctx.incarnation);
  w.u64(ctx.counter);
  writeId(w, 'from', f.from);
  writeId(w, 'to', f.to);
  w.u64(f.nonce);
  const frame = Buffer.allocUnsafe(w.length + MAC_BYTES);
  w.copyTo(frame);
  key.mac.macInto(frame.subarray(0, w.length), frame.subarray(w.length));
  return frame;
}

/**
 * decodeIncarnationFrame authenticates and parses a challenge or an answer, with the same checks in
 * the same order as decode (the claimed sender and generation pick the key); any other datagram is
 * refused ('unknown-type' for an election message). A worker's key may carry both: a worker answers
 * a voter's challenge, and challenges a voter that rebooted.
 */
export function decodeIncarnationFrame(buf: Uint8Array, ctx: DecodeContext): IncarnationDecodeResult {
  checkSiteContext(ctx);
  if (!(buf instanceof Uint8Array)) return { ok: false, reason: 'malformed' };
  const frame = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (frame.length > MAX_DATAGRAM_BYTES) return { ok: false, reason: 'oversized' };
  if (frame.length < MIN_FRAME_BYTES) return { ok: false, reason: 'too-short' };
  if (frame[0] !== MAGIC_0 || frame[1] !== MAGIC_1) return { ok: false, reason: 'bad-magic' };
  if (frame[2] !== CODEC_VERSION) return { ok: false, reason: 'bad-version' };
  if (!siteTag(ctx.siteId).equals(frame.subarray(SITE_TAG_OFFSET, SITE_TAG_OFFSET + SITE_TAG_BYTES)))
    return { ok: false, reason: 'wrong-site' };
  const macOffset = frame.length - MAC_BYTES;
  const head = new FrameReader(frame, GENERATION_OFFSET, macOffset);
  const generation = head.u32();
  head.skip(12); // incarnation, counter: read once authenticated
  const sender = head.id();
  if (head.failed) return { ok: false, reason: 'unknown-key' };
  const key =
    ctx.key instanceof Uint8Array
      ? generation === 0
        ? { mac: keyedMac(ctx.key), voter: true }
        : undefined
      : ctx.key(sender, generation);
  if (key === undefined) return { ok: false, reason: 'unknown-key' };
  key.mac.macInto(frame.subarray(0, macOffset), expectedMac);
  if (!constantTimeEqual(expectedMac, frame.subarray(macOffset))) return { ok: false, reason: 'bad-mac' };
  const kind = frame[3] === CHALLENGE_TYPE ? 'challenge' : frame[3] === ANSWER_TYPE ? 'answer' : undefined;
  if (kind === undefined) return { ok: false, reason: 'unknown-type' };
  const r = new FrameReader(frame, GENERATION_OFFSET + 4, macOffset);
  const incarnation = r.u32();
  const counter = r.u64();
  const from = r.id();
  const to = r.id();
  const nonce = r.u64();
  if (r.failed || r.remaining !== 0) return { ok: false, reason: 'malformed' };
  return { ok: true, frame: { kind, from, to, nonce }, sender: from, generation, incarnation, counter };
}
