/**
 * The pure parts of edgectl's DNS-SD over mDNS (RFC 6762 / RFC 6763): names, the TXT schema, record
 * validation, raw rdata (for the §8.2 probe tie-break) and the TTL cache of the browser. Nothing here
 * does I/O or reads a clock: time is passed in as `now` (monotonic milliseconds). docs/discovery.md
 * has the design; agent/discovery/mdns.ts is the shell that puts these on the wire.
 */

import { isUtf8 } from 'node:buffer';
import { isIP } from 'node:net';
import { sha256Digest } from '../sha256.ts';
import { validateAdvertisement, type Advertisement, type Role } from './discovery.ts';

/** RFC 6763 §7: `_<service>._<proto>`; UDP because the election transport is UDP. */
export const SERVICE_TYPE = '_edgectl._udp';
export const DOMAIN = 'local';
export const SERVICE_FQDN = `${SERVICE_TYPE}.${DOMAIN}`;
/** RFC 6763 §9: service type enumeration. */
export const SERVICES_ENUM_FQDN = `_services._dns-sd._udp.${DOMAIN}`;
export const MDNS_PORT = 5353;
export const MDNS_GROUP_V4 = '224.0.0.251';
/** RFC 6762 §10: records that carry a host name (SRV, A) live 120 s; the others 75 minutes. */
export const TTL_HOST_RECORDS_S = 120;
export const TTL_OTHER_RECORDS_S = 4500;
/** RFC 6762 §6.7: TTLs in legacy unicast answers are capped at 10 s. */
export const TTL_LEGACY_UNICAST_CAP_S = 10;
/** RFC 6763 §6.7: version of our TXT schema, sent first. */
export const TXT_VERSION = '1';

/**
 * RFC 6762 §17: an mDNS message is at most 9000 bytes. A larger datagram is dropped whole, before
 * any of its records is looked at.
 */
export const MAX_MDNS_PACKET_BYTES = 9000;
/** Records per packet we look at; a 9000-byte packet of real records holds far fewer of ours. */
export const MAX_RECORDS_PER_PACKET = 128;
/**
 * The largest TXT rdata we keep (RFC 6763 §6.2: up to 1300 bytes fits one packet; ours is ~60).
 * A larger one is dropped and counted: a hostile host must not park 60 KB records in our cache.
 */
export const MAX_TXT_RDATA_BYTES = 1300;
/**
 * The longest TTL we honour. A record may ask for 2^31 − 1 s; we keep none longer than the
 * longest TTL a well-behaved responder uses (RFC 6762 §10), so junk cannot stay for good.
 */
export const MAX_CACHE_TTL_S = TTL_OTHER_RECORDS_S;

export const MAX_LABEL_BYTES = 63;
export const MAX_NAME_BYTES = 255;
/** Our labels stay this short so that a rename suffix (`-2` … `-9999`) always fits in 63 bytes. */
const BASE_LABEL_BYTES = 58;

// ---------------------------------------------------------------------------------------------
// Records

export type RecordType = 'A' | 'PTR' | 'SRV' | 'TXT';

interface RecordBase {
  readonly name: string;
  /** Seconds; 0 is a goodbye (RFC 6762 §10.1). */
  readonly ttl: number;
  /** The cache-flush bit (RFC 6762 §10.2): set on unique records only. */
  readonly flush?: boolean;
}
export interface ARecord extends RecordBase {
  readonly type: 'A';
  readonly data: string;
}
export interface PtrRecord extends RecordBase {
  readonly type: 'PTR';
  readonly data: string;
}
export interface SrvData {
  readonly priority: number;
  readonly weight: number;
  readonly port: number;
  readonly target: string;
}
export interface SrvRecord extends RecordBase {
  readonly type: 'SRV';
  readonly data: SrvData;
}
export interface TxtRecord extends RecordBase {
  readonly type: 'TXT';
  readonly data: readonly Uint8Array[];
}
/** The four record types edgectl publishes and caches. */
export type MdnsRecord = ARecord | PtrRecord | SrvRecord | TxtRecord;
/** Any other record type: kept only for conflict detection while probing (RFC 6762 §8.1). */
export interface OtherRecord extends RecordBase {
  readonly type: string;
  readonly data?: unknown;
}

export interface Question {
  readonly name: string;
  readonly type: string;
  /** RFC 6762 §5.4 unicast-response bit. */
  readonly qu: boolean;
}

/** Lower-cases an ASCII DNS name for comparison (DNS names compare case-insensitively). */
export function canonicalName(name: string): string {
  return HAS_UPPER.test(name) ? name.replace(/[A-Z]/g, (c) => c.toLowerCase()) : name;
}
const HAS_UPPER = /[A-Z]/;

export function sameName(a: string, b: string): boolean {
  return a.length === b.length && canonicalName(a) === canonicalName(b);
}

/** True for a name dns-packet can put on the wire: 1..63-byte labels, at most 255 bytes in all. */
export function isWireName(name: unknown): name is string {
  if (typeof name !== 'string' || name.length === 0 || name.length > MAX_NAME_BYTES) return false;
  if (!isUtf8(Buffer.from(name, 'utf8'))) return false;
  const labels = name.split('.');
  let total = 1;
  for (const label of labels) {
    const n = Buffer.byteLength(label, 'utf8');
    if (n === 0 || n > MAX_LABEL_BYTES) return false;
    total += n + 1;
  }
  return total <= MAX_NAME_BYTES;
}

function isTtl(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0x7fff_ffff;
}

function isU16(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffff;
}

export type ParsedRecord =
  | { readonly kind: 'record'; readonly record: MdnsRecord }
  | { readonly kind: 'other'; readonly record: OtherRecord }
  | { readonly kind: 'oversize'; readonly record: OtherRecord }
  | { readonly kind: 'malformed'; readonly reason: string };

/**
 * parseWireRecord validates one resource record as multicast-dns/dns-packet decoded it. Nothing is
 * trusted: a record for a type we use whose fields are off is 'malformed'; a well-formed record of
 * another type or class is 'other'.
 */
export function parseWireRecord(raw: unknown): ParsedRecord {
  if (typeof raw !== 'object' || raw === null) return { kind: 'malformed', reason: 'not an object' };
  const r = raw as {
    name?: unknown;
    type?: unknown;
    ttl?: unknown;
    class?: unknown;
    flush?: unknown;
    data?: unknown;
  };
  if (typeof r.name !== 'string' || r.name.length > MAX_NAME_BYTES * 4)
    return { kind: 'malformed', reason: 'bad name' };
  if (typeof r.type !== 'string') return { kind: 'malformed', reason: 'bad type' };
  const flush = r.flush === true;
  const name = r.name;
  const type = r.type;
  if (r.class !== 'IN' || (type !== 'A' && type !== 'PTR' && type !== 'SRV' && type !== 'TXT')) {
    // Another type or class (AAAA, NSEC, OPT, …): not ours to validate; kept for conflict checks.
    return { kind: 'other', record: { name, type, ttl: isTtl(r.ttl) ? r.ttl : 0, flush, data: r.data } };
  }
  if (!isTtl(r.ttl)) return { kind: 'malformed', reason: 'bad ttl' };
  const ttl = r.ttl;
  if (!isWireName(name)) return { kind: 'malformed', reason: `bad ${type} owner name` };
  switch (type) {
    case 'A':
      if (typeof r.data !== 'string' || isIP(r.data) !== 4)
        return { kind: 'malformed', reason: 'bad A rdata' };
      return { kind: 'record', record: { name, type, ttl, flush, data: r.data } };
    case 'PTR':
      if (!isWireName(r.data)) return { kind: 'malformed', reason: 'bad PTR rdata' };
      return { kind: 'record', record: { name, type, ttl, flush, data: r.data } };
    case 'SRV': {
      const d = r.data as { priority?: unknown; weight?: unknown; port?: unknown; target?: unknown } | null;
      if (typeof d !== 'object' || d === null) return { kind: 'malformed', reason: 'bad SRV rdata' };
      if (!isU16(d.priority) || !isU16(d.weight) || !isU16(d.port) || !isWireName(d.target))
        return { kind: 'malformed', reason: 'bad SRV rdata' };
      const data: SrvData = { priority: d.priority, weight: d.weight, port: d.port, target: d.target };
      return { kind: 'record', record: { name, type, ttl, flush, data } };
    }
    case 'TXT': {
      if (!Array.isArray(r.data)) return { kind: 'malformed', reason: 'bad TXT rdata' };
      const strings: Uint8Array[] = [];
      let bytes = 0;
      for (const s of r.data as unknown[]) {
        if (!(s instanceof Uint8Array) || s.length > 255)
          return { kind: 'malformed', reason: 'bad TXT string' };
        strings.push(s);
        bytes += 1 + s.length;
      }
      // Well-formed but more than any real service needs: not kept (it still counts for conflicts).
      if (bytes > MAX_TXT_RDATA_BYTES) return { kind: 'oversize', record: { name, type, ttl, flush } };
      return { kind: 'record', record: { name, type, ttl, flush, data: strings } };
    }
  }
  return { kind: 'malformed', reason: 'unreachable' };
}

/** parseWireQuestion validates one question; dns-packet reports a set QU bit as class `UNKNOWN_32769`. */
export function parseWireQuestion(raw: unknown): Question | undefined {
  if (typeof raw !== 'object' || raw === null) return undefined;
  const q = raw as { name?: unknown; type?: unknown; class?: unknown };
  if (typeof q.name !== 'string' || q.name.length > MAX_NAME_BYTES * 4 || typeof q.type !== 'string')
    return undefined;
  let qu = false;
  if (q.class === 'UNKNOWN_32769') qu = true;
  else if (q.class !== 'IN' && q.class !== 'ANY' && q.class !== 'UNKNOWN_33023') return undefined;
  if (q.class === 'UNKNOWN_33023') qu = true; // ANY | QU
  return { name: q.name, type: q.type, qu };
}

// ---------------------------------------------------------------------------------------------
// Raw rdata and the probe tie-break (RFC 6762 §8.2)

const TYPE_CODES: Readonly<Record<string, number>> = {
  A: 1,
  PTR: 12,
  TXT: 16,
  AAAA: 28,
  SRV: 33,
  NSEC: 47,
  ANY: 255,
};

export function typeCode(type: string): number {
  const known = TYPE_CODES[type];
  if (known !== undefined) return known;
  const m = /^UNKNOWN_(\d+)$/.exec(type);
  return m ? Number(m[1]) : 0xffff;
}

/** The uncompressed wire form of a domain name. */
export function encodeName(name: string): Buffer {
  const parts: Buffer[] = [];
  for (const label of name.replace(/^\.|\.$/g, '').split('.')) {
    if (label.length === 0) continue;
    const b = Buffer.from(label, 'utf8');
    parts.push(Buffer.from([b.length]), b);
  }
  parts.push(Buffer.from([0]));
  return Buffer.concat(parts);
}

/** rdataBytes is a record's raw rdata, names uncompressed: what §8.2.1 compares octet by octet. */
export function rdataBytes(rr: MdnsRecord | OtherRecord): Buffer {
  switch (rr.type) {
    case 'A':
      return Buffer.from(String(rr.data).split('.').map(Number));
    case 'PTR':
      return encodeName(String(rr.data));
    case 'SRV': {
      const d = rr.data as SrvData;
      const head = Buffer.alloc(6);
      head.writeUInt16BE(d.priority, 0);
      head.writeUInt16BE(d.weight, 2);
      head.writeUInt16BE(d.port, 4);
      return Buffer.concat([head, encodeName(d.target)]);
    }
    case 'TXT': {
      const strings = rr.data as readonly Uint8Array[];
      if (strings.length === 0) return Buffer.from([0]);
      return Buffer.concat(strings.flatMap((s) => [Buffer.from([s.length]), Buffer.from(s)]));
    }
    default:
      // Types we do not publish: a stable stand-in so that the order is at least deterministic.
      return Buffer.from(JSON.stringify(rr.data ?? null) ?? '', 'utf8');
  }
}

const keyEncoder = new TextEncoder();
/** Scratch space for recordKey: a key's input is at most a name, a type and one packet's rdata. */
let keyScratch = new Uint8Array(2048);

/**
 * A stable identity for (name, type, rdata); the cache and the duplicate checks key on it. A hash
 * (128 bits of SHA-256, base64): every key is 22 characters whatever a record holds, so a map keyed
 * on it costs the same per entry for a hostile record as for ours.
 */
export function recordKey(rr: MdnsRecord | OtherRecord): string {
  const rdata = rdataBytes(rr);
  const head = `${canonicalName(rr.name)}|${rr.type}|`;
  const need = head.length * 3 + rdata.length;
  if (keyScratch.length < need) keyScratch = new Uint8Array(need);
  const { written } = keyEncoder.encodeInto(head, keyScratch);
  keyScratch.set(rdata, written);
  const digest = sha256Digest(keyScratch.subarray(0, written + rdata.length));
  return Buffer.from(digest.buffer, digest.byteOffset, 16).toString('base64url');
}

/** Same name, type and rdata (the TTL and the cache-flush bit do not matter). */
export function sameRecord(a: MdnsRecord | OtherRecord, b: MdnsRecord | OtherRecord): boolean {
  return a.type === b.type && sameName(a.name, b.name) && rdataBytes(a).equals(rdataBytes(b));
}

/** §8.2.1: class first (all ours are IN), then type, then the raw rdata as unsigned octets. */
export function compareRecords(a: MdnsRecord | OtherRecord, b: MdnsRecord | OtherRecord): number {
  const t = typeCode(a.type) - typeCode(b.type);
  if (t !== 0) return Math.sign(t);
  return Buffer.compare(rdataBytes(a), rdataBytes(b));
}

/**
 * compareProbeSets implements the simultaneous-probe tie-break of RFC 6762 §8.2: each host's
 * proposed records for the contested name are sorted, then compared pairwise; the first difference
 * decides, and a list that is a prefix of the other is the earlier one. Returns > 0 when `ours` is
 * lexicographically later (we win), < 0 when we lose, 0 when the sets are identical (no conflict:
 * typically our own probe looped back).
 */
export function compareProbeSets(
  ours: readonly (MdnsRecord | OtherRecord)[],
  theirs: readonly (MdnsRecord | OtherRecord)[],
): number {
  const a = [...ours].sort(compareRecords);
  const b = [...theirs].sort(compareRecords);
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const c = compareRecords(a[i]!, b[i]!);
    if (c !== 0) return c;
  }
  return Math.sign(a.length - b.length);
}

// ---------------------------------------------------------------------------------------------
// Names

/**
 * escapeInstanceLabel renders a service instance label in presentation format (RFC 6763 §4.3):
 * a literal dot becomes `\.` and a backslash `\\`, so that the label survives being joined with
 * the `<Service>.<Domain>` part. Every other UTF-8 character stays as it is.
 */
export function escapeInstanceLabel(label: string): string {
  return label.replace(/[\\.]/g, (c) => `\\${c}`);
}

/** unescapeInstanceLabel reverses escapeInstanceLabel; it also accepts `\DDD` decimal escapes. */
export function unescapeInstanceLabel(text: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c !== '\\') {
      bytes.push(...Buffer.from(c, 'utf8'));
      continue;
    }
    const digits = /^\d{3}/.exec(text.slice(i + 1));
    if (digits && Number(digits[0]) <= 255) {
      bytes.push(Number(digits[0]));
      i += 3;
    } else if (i + 1 < text.length) {
      bytes.push(...Buffer.from(text[i + 1]!, 'utf8'));
      i += 1;
    } else {
      bytes.push(0x5c);
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

/**
 * splitServiceInstanceName splits a presentation-format name `<Instance>.<Service>.<Domain>` into
 * its unescaped instance label and the rest, honouring `\.` escapes; undefined when the name does
 * not end with `.<serviceFqdn>`.
 */
export function splitServiceInstanceName(
  name: string,
  serviceFqdn: string = SERVICE_FQDN,
): { instance: string; service: string } | undefined {
  const suffix = `.${serviceFqdn}`;
  if (name.length <= suffix.length || !sameName(name.slice(-suffix.length), suffix)) return undefined;
  const escaped = name.slice(0, -suffix.length);
  return { instance: unescapeInstanceLabel(escaped), service: name.slice(-serviceFqdn.length) };
}

/** Lower-case `[a-z0-9-]` only, no leading/trailing `-`: safe in both labels and host names. */
export function sanitizeLabelPart(s: string): string {
  const out = s
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '');
  return out.length > 0 ? out : 'x';
}

function joinLimited(first: string, second: string): string {
  // The first part is the one that must survive (the node id); the second is truncated first.
  const room = BASE_LABEL_BYTES - first.length - 1;
  if (room <= 0) return first.slice(0, BASE_LABEL_BYTES);
  const tail = second.slice(0, room).replace(/-+$/, '');
  return tail.length > 0 ? `${first}-${tail}` : first;
}

/**
 * instanceLabel is the service instance label `<siteId>-<nodeId>` (sanitized, at most 58 bytes so
 * that a rename suffix fits; the site part is truncated first). `n` ≥ 2 appends the RFC 6762 §9
 * rename suffix `-n`. The label is a convenience for humans: peers identify each other by the TXT
 * keys `site`/`node`, never by the instance name, which may change on a conflict.
 */
export function instanceLabel(siteId: string, nodeId: string, n = 1): string {
  const node = sanitizeLabelPart(nodeId);
  const site = sanitizeLabelPart(siteId);
  const room = BASE_LABEL_BYTES - node.length - 1;
  const base =
    room <= 0 ? node.slice(0, BASE_LABEL_BYTES) : `${site.slice(0, room).replace(/-+$/, '')}-${node}`;
  return n >= 2 ? `${base}-${n}` : base;
}

/**
 * hostLabel is the host name label `<nodeId>-<siteId>` (then `.local`): unique per node, never the
 * machine's hostname (network namespaces share the UTS hostname, and several agents can run on one
 * machine in tests).
 */
export function hostLabel(nodeId: string, siteId: string, n = 1): string {
  const base = joinLimited(sanitizeLabelPart(nodeId), sanitizeLabelPart(siteId));
  return n >= 2 ? `${base}-${n}` : base;
}

export function instanceFqdn(label: string): string {
  return `${label}.${SERVICE_FQDN}`;
}

export function hostFqdn(label: string): string {
  return `${label}.${DOMAIN}`;
}

// ---------------------------------------------------------------------------------------------
// TXT schema (RFC 6763 §6)

/**
 * The keys we publish (TXT schema version 1): only what a peer needs to find us. Our role, term,
 * version and capability are not advertised: TXT records are readable (and forgeable) by anyone on
 * the link, and peers learn all of that over the authenticated transport.
 */
export const TXT_KEYS = ['txtvers', 'site', 'node', 'port'] as const;
/** Keys earlier agents published: still read (validated when present), never required or sent. */
export const TXT_LEGACY_KEYS = ['ver', 'role', 'term', 'srv'] as const;

/**
 * encodeTxt renders the TXT record strings for an advertisement, `txtvers` first (RFC 6763 §6.7).
 * Nothing secret ever goes here, and nothing that changes with the election.
 */
export function encodeTxt(ad: Advertisement): Buffer[] {
  return [`txtvers=${TXT_VERSION}`, `site=${ad.siteId}`, `node=${ad.nodeId}`, `port=${ad.port}`].map((s) =>
    Buffer.from(s, 'utf8'),
  );
}

export type TxtDecodeResult =
  | { readonly ok: true; readonly advertisement: Advertisement }
  | { readonly ok: false; readonly reason: string; readonly siteId?: string };

/**
 * parseTxtAttributes applies RFC 6763 §6.3–§6.5: a key is everything before the first `=`, keys
 * compare case-insensitively, a string without `=` is a boolean attribute (value undefined), and
 * only the first occurrence of a key counts. Strings with an empty key are ignored (§6.4).
 */
export function parseTxtAttributes(strings: readonly Uint8Array[]): Map<string, string | undefined> {
  const out = new Map<string, string | undefined>();
  for (const raw of strings) {
    const s = Buffer.from(raw);
    const eq = s.indexOf(0x3d);
    const keyBytes = eq === -1 ? s : s.subarray(0, eq);
    if (keyBytes.length === 0) continue;
    let printable = true;
    for (const b of keyBytes) if (b < 0x20 || b > 0x7e) printable = false;
    if (!printable) continue;
    const key = keyBytes.toString('latin1').toLowerCase();
    if (out.has(key)) continue;
    out.set(key, eq === -1 ? undefined : s.subarray(eq + 1).toString('utf8'));
  }
  return out;
}

/**
 * decodeTxt turns TXT strings back into an Advertisement, validating every key. An unknown
 * `txtvers` is refused (a later schema may change meanings); unknown extra keys are ignored.
 * `siteId` is reported even on failure when present, so that callers can count other sites.
 */
export function decodeTxt(strings: readonly Uint8Array[]): TxtDecodeResult {
  for (const s of strings) if (!isUtf8(s)) return { ok: false, reason: 'TXT string is not UTF-8' };
  const kv = parseTxtAttributes(strings);
  const site = kv.get('site');
  const fail = (reason: string): TxtDecodeResult =>
    site === undefined ? { ok: false, reason } : { ok: false, reason, siteId: site };
  if (kv.get('txtvers') !== TXT_VERSION)
    return fail(`unsupported txtvers ${JSON.stringify(kv.get('txtvers'))}`);
  for (const key of TXT_KEYS) if (kv.get(key) === undefined) return fail(`missing key ${key}`);
  // What an earlier agent also published: checked when there, defaults when not.
  const term = kv.get('term') ?? '0';
  const port = kv.get('port')!;
  const srv = kv.get('srv') ?? '0';
  if (!/^(0|[1-9][0-9]{0,15})$/.test(term) || !Number.isSafeInteger(Number(term))) return fail('bad term');
  if (!/^[1-9][0-9]{0,4}$/.test(port)) return fail('bad port');
  if (srv !== '0' && srv !== '1') return fail('bad srv');
  const ad: Advertisement = {
    siteId: site!,
    nodeId: kv.get('node')!,
    agentVersion: kv.get('ver') ?? 'unknown',
    role: (kv.get('role') ?? 'starting') as Role,
    term: Number(term),
    port: Number(port),
    serverCapable: srv === '1',
  };
  const problems = validateAdvertisement(ad);
  if (problems.length > 0) return fail(problems.join('; '));
  return { ok: true, advertisement: ad };
}

// ---------------------------------------------------------------------------------------------
// The browser's record cache (RFC 6762 §5.2, §10)

/**
 * Which part of the cache a record lives in. `member`: records of a robot the config names (a voter
 * or a seed); `site`: records of another robot of our site; `other`: everything else (other sites,
 * other services' junk, instances whose TXT we have not seen yet). Each part has its own bound and
 * evicts its own oldest record when full, so a flood of one kind cannot push out another.
 */
export type CacheTier = 'member' | 'site' | 'other';
export const CACHE_TIERS: readonly CacheTier[] = ['member', 'site', 'other'];
const TIER_RANK: Readonly<Record<CacheTier, number>> = { other: 0, site: 1, member: 2 };

/** Records per tier and interface. Small: an idle agent's memory is tight, and a site has tens of robots. */
export const DEFAULT_CACHE_LIMITS: Readonly<Record<CacheTier, number>> = {
  member: 64,
  site: 64,
  other: 128,
};

export interface CacheEntry {
  readonly key: string;
  record: MdnsRecord;
  /** canonicalName(record.name), computed once. */
  readonly cname: string;
  tier: CacheTier;
  /** Monotonic ms when the record was last received. */
  receivedAt: number;
  /** Monotonic ms when it expires: receivedAt + TTL, or 1 s after a goodbye or a cache flush. */
  expiresAt: number;
  /** Remaining refresh points (RFC 6762 §5.2: 80%, 85%, 90%, 95% of the TTL plus 0–2%). */
  refreshAt: number[];
  /** Set by a goodbye (TTL 0): the entry is on its one-second way out. */
  goodbye: boolean;
}

export type CacheAddResult = 'added' | 'refreshed' | 'goodbye' | 'ignored';

/**
 * RecordCache is the TTL-honouring cache of one interface. It implements:
 * - expiry at the TTL, capped at MAX_CACHE_TTL_S;
 * - goodbye (TTL 0): the record is kept for one more second, then removed (§10.1);
 * - cache flush (§10.2): a unique record with the cache-flush bit evicts, one second later, every
 *   other record of the same name and type that was received more than one second ago;
 * - refresh points at 80/85/90/95 % of the TTL (§5.2), which the browser turns into queries.
 * It is bounded per tier (`limits`): a full tier evicts its least recently received record, so a
 * chatty or hostile LAN can churn the `other` tier but never grow the cache or reach the records of
 * our own site's robots. `evictions` counts what went (monotonic, per tier). Lookups go through
 * indexes (by name and type, by SRV target), so a packet costs the same however full the cache is.
 */
export class RecordCache {
  readonly #entries = new Map<string, CacheEntry>();
  /** Per tier, least recently received first (a refresh moves an entry to the end). */
  readonly #tiers: Record<CacheTier, Map<string, CacheEntry>> = {
    member: new Map(),
    site: new Map(),
    other: new Map(),
  };
  readonly #byNameType = new Map<string, Set<CacheEntry>>();
  readonly #bySrvTarget = new Map<string, Set<CacheEntry>>();
  readonly #limits: Readonly<Record<CacheTier, number>>;
  readonly #random: () => number;
  readonly evictions: Record<CacheTier, number> = { member: 0, site: 0, other: 0 };

  constructor(opts: { limits?: Partial<Record<CacheTier, number>>; random?: () => number } = {}) {
    this.#limits = { ...DEFAULT_CACHE_LIMITS, ...opts.limits };
    this.#random = opts.random ?? Math.random;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** Entries per tier now. */
  counts(): Record<CacheTier, number> {
    return { member: this.#tiers.member.size, site: this.#tiers.site.size, other: this.#tiers.other.size };
  }

  add(rr: MdnsRecord, now: number, tier: CacheTier = 'other'): CacheAddResult {
    const key = recordKey(rr);
    const existing = this.#entries.get(key);
    if (rr.ttl === 0) {
      if (!existing) return 'ignored';
      existing.expiresAt = Math.min(existing.expiresAt, now + 1000);
      existing.refreshAt = [];
      existing.goodbye = true;
      return 'goodbye';
    }
    const ttl = Math.min(rr.ttl, MAX_CACHE_TTL_S);
    const cname = existing?.cname ?? canonicalName(rr.name);
    if (rr.flush) {
      for (const e of this.#byNameType.get(`${cname}|${rr.type}`) ?? []) {
        if (e.key !== key && e.receivedAt < now - 1000) {
          e.expiresAt = Math.min(e.expiresAt, now + 1000);
          e.refreshAt = [];
        }
      }
    }
    if (existing) {
      existing.record = rr;
      existing.receivedAt = now;
      existing.expiresAt = now + ttl * 1000;
      existing.refreshAt = this.#refreshPoints(now, ttl);
      existing.goodbye = false;
      const to = TIER_RANK[tier] > TIER_RANK[existing.tier] ? tier : existing.tier;
      this.#tiers[existing.tier].delete(key);
      existing.tier = to;
      this.#makeRoom(to);
      this.#tiers[to].set(key, existing);
      return 'refreshed';
    }
    this.#makeRoom(tier);
    const e: CacheEntry = {
      key,
      record: rr,
      cname,
      tier,
      receivedAt: now,
      expiresAt: now + ttl * 1000,
      refreshAt: this.#refreshPoints(now, ttl),
      goodbye: false,
    };
    this.#entries.set(key, e);
    this.#tiers[tier].set(key, e);
    addTo(this.#byNameType, `${cname}|${rr.type}`, e);
    if (rr.type === 'SRV') addTo(this.#bySrvTarget, canonicalName(rr.data.target), e);
    return 'added';
  }

  /** Moves the entries `match` selects up to `tier` (never down): their instance turned out to be ours. */
  promote(match: (rr: MdnsRecord) => boolean, tier: CacheTier): void {
    for (const t of CACHE_TIERS) {
      if (TIER_RANK[t] >= TIER_RANK[tier]) continue;
      for (const e of [...this.#tiers[t].values()]) {
        if (!match(e.record)) continue;
        this.#tiers[t].delete(e.key);
        e.tier = tier;
        this.#makeRoom(tier);
        this.#tiers[tier].set(e.key, e);
      }
    }
  }

  /** Live entries of a name and type, newest first. */
  lookup(name: string, type: RecordType, now: number): CacheEntry[] {
    const out: CacheEntry[] = [];
    for (const e of this.#byNameType.get(`${canonicalName(name)}|${type}`) ?? [])
      if (e.expiresAt > now) out.push(e);
    return out.length > 1 ? out.sort((a, b) => b.receivedAt - a.receivedAt) : out;
  }

  /** Live SRV entries whose target is `host`. */
  srvsTargeting(host: string, now: number): CacheEntry[] {
    const out: CacheEntry[] = [];
    for (const e of this.#bySrvTarget.get(canonicalName(host)) ?? []) if (e.expiresAt > now) out.push(e);
    return out;
  }

  /** Every live entry (any name and type). */
  live(now: number): CacheEntry[] {
    return [...this.#entries.values()].filter((e) => e.expiresAt > now);
  }

  /** Live entries of the `member` and `site` tiers: our site's robots. */
  liveSite(now: number): CacheEntry[] {
    const out: CacheEntry[] = [];
    for (const t of ['member', 'site'] as const)
      for (const e of this.#tiers[t].values()) if (e.expiresAt > now) out.push(e);
    return out;
  }

  /** Removes and returns the entries whose time is up. */
  expire(now: number): CacheEntry[] {
    const gone: CacheEntry[] = [];
    for (const e of this.#entries.values()) {
      if (e.expiresAt <= now) {
        this.#remove(e);
        gone.push(e);
      }
    }
    return gone;
  }

  /** Entries that passed a refresh point since the last call (each point fires once). */
  dueRefreshes(now: number): CacheEntry[] {
    const due: CacheEntry[] = [];
    for (const e of this.#entries.values()) {
      if (e.refreshAt.length > 0 && e.refreshAt[0]! <= now && e.expiresAt > now) {
        while (e.refreshAt.length > 0 && e.refreshAt[0]! <= now) e.refreshAt.shift();
        due.push(e);
      }
    }
    return due;
  }

  /** The earliest expiry or refresh point, for the one maintenance timer. */
  nextDeadline(): number | undefined {
    let next: number | undefined;
    for (const e of this.#entries.values()) {
      const t = Math.min(e.expiresAt, e.refreshAt[0] ?? Infinity);
      if (next === undefined || t < next) next = t;
    }
    return next;
  }

  delete(key: string): void {
    const e = this.#entries.get(key);
    if (e) this.#remove(e);
  }

  clear(): void {
    this.#entries.clear();
    for (const t of CACHE_TIERS) this.#tiers[t].clear();
    this.#byNameType.clear();
    this.#bySrvTarget.clear();
  }

  #remove(e: CacheEntry): void {
    this.#entries.delete(e.key);
    this.#tiers[e.tier].delete(e.key);
    removeFrom(this.#byNameType, `${e.cname}|${e.record.type}`, e);
    if (e.record.type === 'SRV') removeFrom(this.#bySrvTarget, canonicalName(e.record.data.target), e);
  }

  /** Evicts the least recently received entries of `tier` until one more fits. */
  #makeRoom(tier: CacheTier): void {
    const t = this.#tiers[tier];
    while (t.size >= this.#limits[tier]) {
      const oldest = t.values().next().value as CacheEntry | undefined;
      if (!oldest) return;
      this.#remove(oldest);
      this.evictions[tier]++;
    }
  }

  #refreshPoints(now: number, ttlS: number): number[] {
    const ttlMs = ttlS * 1000;
    return [0.8, 0.85, 0.9, 0.95].map((f) => now + ttlMs * (f + this.#random() * 0.02));
  }
}

function addTo<K, V>(index: Map<K, Set<V>>, k: K, v: V): void {
  const set = index.get(k);
  if (set) set.add(v);
  else index.set(k, new Set([v]));
}

function removeFrom<K, V>(index: Map<K, Set<V>>, k: K, v: V): void {
  const set = index.get(k);
  if (!set) return;
  set.delete(v);
  if (set.size === 0) index.delete(k);
}
