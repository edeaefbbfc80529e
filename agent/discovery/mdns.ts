/**
 * MdnsDiscovery: Discovery over Multicast DNS / DNS-SD (RFC 6762, RFC 6763), IPv4 only.
 *
 * multicast-dns is only the socket and the codec (one instance per interface, bound to 0.0.0.0:5353
 * with IP_MULTICAST_IF set to the interface address, because on Linux a socket bound to the unicast
 * address receives no multicast). On top of it this file is a small responder and browser of our
 * own, because bonjour-service is not compliant (no cache-flush bit, no Authority section in
 * probes, no renaming, no TXT updates, goodbyes that wipe host records):
 *
 * - responder: probing (§8.1) with the §8.2 tie-break, renaming on conflict (§9), announcing (§8.3)
 *   with the cache-flush bit on unique records (§10.2), answers with additional records (RFC 6763
 *   §12), known-answer suppression (§7.1), legacy unicast answers (§6.7), TXT updates (§8.4) and
 *   goodbyes (§10.1) for the names we own only;
 * - browser: PTR queries with exponential back-off (§5.2), a per-interface TTL cache with goodbye and
 *   cache-flush handling and refresh queries at 80–95 % of the TTL, follow-up SRV/TXT/A queries for
 *   instances known only by PTR, filtering by source subnet, by site and out of ourselves.
 *
 * Everything that comes from the network is validated and counted; no packet can throw out of a
 * handler. Clock, randomness, timers, the interface list and the socket are injectable for tests.
 * docs/discovery.md describes the design and the RFC rules with their section numbers.
 */

import os from 'node:os';
import dgram from 'node:dgram';
import { isIP } from 'node:net';
import makeMdns from 'multicast-dns';
import { EdgeError } from '../errors.ts';
import {
  PeerListeners,
  applyChange,
  checkedAdvertisement,
  closedError,
  sortPeers,
  type Advertisement,
  type Discovery,
  type PeerRecord,
} from './discovery.ts';
import {
  MAX_MDNS_PACKET_BYTES,
  MAX_RECORDS_PER_PACKET,
  MDNS_GROUP_V4,
  MDNS_PORT,
  RecordCache,
  SERVICES_ENUM_FQDN,
  SERVICE_FQDN,
  TTL_HOST_RECORDS_S,
  TTL_LEGACY_UNICAST_CAP_S,
  TTL_OTHER_RECORDS_S,
  canonicalName,
  compareProbeSets,
  decodeTxt,
  encodeTxt,
  escapeInstanceLabel,
  hostFqdn,
  hostLabel,
  instanceFqdn,
  instanceLabel,
  parseWireQuestion,
  parseWireRecord,
  recordKey,
  sameName,
  sameRecord,
  type CacheEntry,
  type CacheTier,
  type MdnsRecord,
  type OtherRecord,
  type Question,
  type SrvRecord,
  type TxtDecodeResult,
  type TxtRecord,
} from './dnssd.ts';
import { monotonicMs } from '../clock.ts';

// ---------------------------------------------------------------------------------------------
// Transport seam

/** One IPv4 interface discovery runs on. */
export interface MdnsInterface {
  readonly name: string;
  readonly address: string;
  readonly netmask: string;
}

export interface WireAddress {
  readonly address: string;
  readonly port: number;
}

export interface OutgoingQuestion {
  readonly name: string;
  readonly type: string;
}

/** A packet to send. Records use the dnssd.ts shapes; the socket encodes them. */
export interface OutgoingPacket {
  readonly id?: number;
  readonly type: 'query' | 'response';
  readonly questions?: readonly OutgoingQuestion[];
  readonly answers?: readonly MdnsRecord[];
  readonly authorities?: readonly MdnsRecord[];
  readonly additionals?: readonly MdnsRecord[];
}

export interface MdnsSocketHandlers {
  /**
   * A decoded packet (as dns-packet decodes it: nothing about it is trusted), its source and, when
   * the socket knows it, the datagram's size in bytes.
   */
  packet(packet: unknown, from: WireAddress, bytes?: number): void;
  /** A datagram that could not be decoded. */
  malformed(err: unknown): void;
  /** A datagram dropped undecoded for its size or record count (MAX_MDNS_PACKET_BYTES, §17). */
  oversize?(): void;
  /** A socket-level problem that is not fatal (send failure, membership error…). */
  warning(err: unknown): void;
}

export interface MdnsSocket {
  /** Multicasts to 224.0.0.251:5353, or unicasts to `to`. Rejects when the datagram was not sent. */
  send(packet: OutgoingPacket, to?: WireAddress): Promise<void>;
  close(): Promise<void>;
}

/** Opens the socket of one interface; resolves once it is bound and has joined the group. */
export type MdnsSocketFactory = (iface: MdnsInterface, handlers: MdnsSocketHandlers) => Promise<MdnsSocket>;

const AUTHORITATIVE_ANSWER = 1 << 10;

function isSocketError(err: unknown): boolean {
  return typeof err === 'object' && err !== null && 'syscall' in err;
}

function toWireRecord(rr: MdnsRecord): Record<string, unknown> {
  const data = rr.type === 'TXT' ? rr.data.map((s) => Buffer.from(s)) : rr.data;
  return { name: rr.name, type: rr.type, ttl: rr.ttl, class: 'IN', flush: rr.flush === true, data };
}

/**
 * The real socket: one multicast-dns instance bound to 0.0.0.0:5353 (SO_REUSEADDR, so several
 * responders can share the port), joined to 224.0.0.251 on this interface only, sending through it
 * (IP_MULTICAST_IF), TTL 255, loopback on (other local responders must hear us).
 */
export const multicastDnsSocketFactory: MdnsSocketFactory = (iface, handlers) =>
  new Promise<MdnsSocket>((resolve, reject) => {
    let settled = false;
    let m: ReturnType<typeof makeMdns>;
    const socket = dgram.createSocket({ type: 'udp4', reuseAddr: true });
    try {
      m = makeMdns({
        socket,
        interface: iface.address,
        bind: '0.0.0.0',
        port: MDNS_PORT,
        ip: MDNS_GROUP_V4,
        ttl: 255,
        reuseAddr: true,
        loopback: true,
      });
    } catch (err) {
      reject(err as Error);
      return;
    }
    // multicast-dns decodes every datagram before we see it. Screen the raw bytes first, so that a
    // flood of oversized packets costs a length check, not a decode: its own 'message' listener runs
    // only for what passes.
    const decodeAndEmit = socket.listeners('message')[0] as (msg: Buffer, rinfo: dgram.RemoteInfo) => void;
    socket.removeAllListeners('message');
    socket.on('message', (msg: Buffer, rinfo: dgram.RemoteInfo) => {
      if (msg.length > MAX_MDNS_PACKET_BYTES || headerRecordCount(msg) > MAX_RECORDS_PER_PACKET) {
        handlers.oversize?.();
        return;
      }
      decodeAndEmit(msg, rinfo);
    });
    m.on('packet', (packet: unknown, rinfo: { address: string; port: number; size?: number }) => {
      try {
        handlers.packet(packet, { address: rinfo.address, port: rinfo.port }, rinfo.size);
      } catch (err) {
        handlers.warning(err);
      }
    });
    m.on('warning', (err: unknown) => {
      if (isSocketError(err)) handlers.warning(err);
      else handlers.malformed(err);
    });
    m.on('error', (err: unknown) => {
      if (!settled) {
        settled = true;
        m.destroy();
        reject(err as Error);
      } else handlers.warning(err);
    });
    m.once('ready', () => {
      if (settled) return;
      settled = true;
      try {
        // Room for a burst (a blocked event loop, a flood) before the kernel drops our peers' packets.
        socket.setRecvBufferSize(1 << 20);
      } catch {
        // The kernel caps it (net.core.rmem_max); the default still works.
      }
      resolve({
        send: (packet, to) =>
          new Promise<void>((res, rej) => {
            const wire = {
              id: packet.id ?? 0,
              type: packet.type,
              flags: packet.type === 'response' ? AUTHORITATIVE_ANSWER : 0,
              questions: (packet.questions ?? []).map((q) => ({ name: q.name, type: q.type, class: 'IN' })),
              answers: (packet.answers ?? []).map(toWireRecord),
              authorities: (packet.authorities ?? []).map(toWireRecord),
              additionals: (packet.additionals ?? []).map(toWireRecord),
            };
            const cb = (err: Error | null): void => (err ? rej(err) : res());
            // The codec throws synchronously on an unencodable packet: that becomes a rejection.
            const raw = m as unknown as { send(v: unknown, r: unknown, cb: (e: Error | null) => void): void };
            raw.send(wire, to ? { address: to.address, port: to.port } : null, cb);
          }),
        close: () => new Promise<void>((res) => m.destroy(() => res())),
      });
    });
  });

/**
 * decodeTxt of a TXT rdata, once per rdata: a record's TXT is read to pick its cache tier, to count
 * it and to build the peer list, and a flood must not pay for that three times.
 */
const decodedTxts = new WeakMap<readonly Uint8Array[], TxtDecodeResult>();
function decodedTxt(data: readonly Uint8Array[]): TxtDecodeResult {
  let dec = decodedTxts.get(data);
  if (dec === undefined) {
    dec = decodeTxt(data);
    decodedTxts.set(data, dec);
  }
  return dec;
}

/** The four section counts of a DNS header, summed (0 when the datagram is too short to have one). */
function headerRecordCount(msg: Buffer): number {
  if (msg.length < 12) return 0;
  return msg.readUInt16BE(4) + msg.readUInt16BE(6) + msg.readUInt16BE(8) + msg.readUInt16BE(10);
}

// ---------------------------------------------------------------------------------------------
// Interfaces

type InterfaceTable = NodeJS.Dict<os.NetworkInterfaceInfo[]>;

function ipv4ToInt(a: string): number {
  const p = a.split('.').map(Number);
  return (((p[0]! << 24) >>> 0) + (p[1]! << 16) + (p[2]! << 8) + p[3]!) >>> 0;
}

/** Is `address` on the interface's subnet? Used to drop packets that came in on another NIC. */
export function onSubnet(address: string, iface: MdnsInterface): boolean {
  if (isIP(address) !== 4) return false;
  const mask = ipv4ToInt(iface.netmask);
  return (ipv4ToInt(address) & mask) >>> 0 === (ipv4ToInt(iface.address) & mask) >>> 0;
}

/**
 * selectInterfaces picks the IPv4 interfaces to run on: the named ones (a named interface may be
 * internal, e.g. `lo` in a test), or by default every non-internal interface with an IPv4 address.
 * One address per interface (the first). Throws EDGE_DISCOVERY_NO_INTERFACE when nothing fits.
 */
export function selectInterfaces(
  names: readonly string[] | undefined,
  table: InterfaceTable,
): MdnsInterface[] {
  const out: MdnsInterface[] = [];
  const pick = (name: string, allowInternal: boolean): MdnsInterface | undefined => {
    const info = (table[name] ?? []).find((i) => i.family === 'IPv4' && (allowInternal || !i.internal));
    return info ? { name, address: info.address, netmask: info.netmask } : undefined;
  };
  if (names && names.length > 0) {
    const missing: string[] = [];
    for (const n of names) {
      const i = pick(n, true);
      if (i) out.push(i);
      else missing.push(n);
    }
    if (missing.length > 0)
      throw new EdgeError(
        'DISCOVERY_NO_INTERFACE',
        `discovery interface(s) ${missing.join(', ')} not found or without an IPv4 address`,
        {
          hint: `set network.interfaces to interfaces that have IPv4 addresses (have: ${Object.keys(table).join(', ') || 'none'})`,
        },
      );
    return out;
  }
  for (const name of Object.keys(table)) {
    const i = pick(name, false);
    if (i) out.push(i);
  }
  if (out.length === 0)
    throw new EdgeError(
      'DISCOVERY_NO_INTERFACE',
      'no non-loopback interface with an IPv4 address for mDNS discovery',
      {
        hint: 'bring the robot network up, or name the interface in network.interfaces',
      },
    );
  return out;
}

// ---------------------------------------------------------------------------------------------
// MdnsDiscovery

export interface MdnsDiscoveryOptions {
  advertisement: Advertisement;
  /** Interface names (e.g. the Wi-Fi NIC `wlan0`). Default: every non-loopback IPv4 interface. */
  interfaces?: readonly string[];
  /** Re-read the interfaces this often and follow address changes (default 10 s; 0: never). */
  interfaceRescanMs?: number;
  /** Monotonic clock in ms (default monotonicMs, agent/clock.ts). */
  now?: () => number;
  /** Uniform [0, 1) (default Math.random). */
  random?: () => number;
  setTimeout?: (fn: () => void, ms: number) => unknown;
  clearTimeout?: (handle: unknown) => void;
  /** Default: multicastDnsSocketFactory. */
  socketFactory?: MdnsSocketFactory;
  /** Default: os.networkInterfaces. */
  networkInterfaces?: () => InterfaceTable;
  /** Told about non-fatal problems (send errors, renames, socket warnings…). Default: nothing. */
  onWarning?: (message: string, err?: unknown) => void;
  /** Told when an onChange listener throws (default: onWarning). */
  onListenerError?: (err: unknown) => void;
  /** Bounds of each interface's record cache, per tier (default DEFAULT_CACHE_LIMITS, dnssd.ts). */
  cacheLimits?: Partial<Record<CacheTier, number>>;
  /**
   * Node ids the config names (voters and seeds). Their records get the `member` part of the cache,
   * which records of other robots cannot take: a flood of forged peers cannot hide them.
   */
  members?: readonly string[];
  /** Probe rounds lost to conflicts before we stop trying to advertise (default 16; §9 renames). */
  maxRenames?: number;
  /** How long to stay silent after giving up before probing again (default 60 s). */
  readvertiseAfterMs?: number;
  /** Legacy unicast answers allowed per second and interface (default 2; §6.7). */
  legacyAnswersPerSecond?: number;
}

/** Counters; all monotonic. */
export interface MdnsStats {
  /** Datagrams received (decodable or not). */
  received: number;
  /** Datagrams that did not decode or held a record we could not validate: dropped. */
  malformed: number;
  /** TXT records of our service type received from agents of another site. */
  ignoredOtherSite: number;
  /** Our TXT records that we could not parse (wrong txtvers, bad value…). */
  badTxt: number;
  /** Datagrams from outside the interface's subnet (Linux delivers other NICs' multicast too). */
  ignoredForeignSubnet: number;
  /** Not mDNS per §18: non-zero opcode or rcode, or a response from a port other than 5353. */
  ignoredNotMdns: number;
  /** Name conflicts seen (while probing or after, §9). */
  conflicts: number;
  /** Times we renamed ourselves after a conflict. */
  renames: number;
  /** Simultaneous-probe tie-breaks lost (§8.2): we deferred one second. */
  probeTieBreaksLost: number;
  probesSent: number;
  announcementsSent: number;
  queriesSent: number;
  /** Responses to queries (multicast or unicast). */
  answersSent: number;
  /** Queries we did not answer because the querier already knew the answer (§7.1). */
  knownAnswerSuppressed: number;
  goodbyesReceived: number;
  sendErrors: number;
  socketWarnings: number;
  listenerErrors: number;
  /** Bugs caught at a handler boundary (should stay 0). */
  internalErrors: number;
  /** Datagrams over 9000 bytes or 128 records, and TXT records over 1300 bytes: dropped (§17). */
  oversize: number;
  /** Records evicted from a full cache tier (least recently received first); mostly `other`. */
  cacheEvictions: number;
  /** Evictions from the `member` and `site` tiers: a flood that forges our own site's robots. */
  siteCacheEvictions: number;
  /** A records whose address is outside the interface's subnet: a peer cannot live there. */
  ignoredForeignAddress: number;
  /** Records of robots the config does not name dropped because this second's budget was spent. */
  floodDrops: number;
  /** Legacy unicast queries not answered because the per-second budget was spent (§6.7). */
  legacyUnicastLimited: number;
  /** Times we stopped advertising because every name we probed was claimed (we still browse). */
  advertisingGivenUp: number;
}

function zeroStats(): MdnsStats {
  return {
    received: 0,
    malformed: 0,
    ignoredOtherSite: 0,
    badTxt: 0,
    ignoredForeignSubnet: 0,
    ignoredNotMdns: 0,
    conflicts: 0,
    renames: 0,
    probeTieBreaksLost: 0,
    probesSent: 0,
    announcementsSent: 0,
    queriesSent: 0,
    answersSent: 0,
    knownAnswerSuppressed: 0,
    goodbyesReceived: 0,
    sendErrors: 0,
    socketWarnings: 0,
    listenerErrors: 0,
    internalErrors: 0,
    oversize: 0,
    cacheEvictions: 0,
    siteCacheEvictions: 0,
    ignoredForeignAddress: 0,
    floodDrops: 0,
    legacyUnicastLimited: 0,
    advertisingGivenUp: 0,
  };
}

interface Link {
  readonly iface: MdnsInterface;
  socket: MdnsSocket | undefined;
  readonly cache: RecordCache;
  /** Record key → when we last multicast it on this link (§6: at most once a second). */
  readonly lastMulticast: Map<string, number>;
  /** Legacy unicast answers left in this second's budget, and when the budget refills. */
  legacyBudget: number;
  legacyBudgetAt: number;
  /** Records of the `other` and `site` tiers the cache still takes this second (see FLOOD_RECORDS_PER_SECOND). */
  floodBudget: number;
  floodBudgetAt: number;
  closed: boolean;
}

interface ParsedPacket {
  readonly id: number;
  readonly type: 'query' | 'response';
  readonly questions: Question[];
  readonly answers: (MdnsRecord | OtherRecord)[];
  readonly authorities: (MdnsRecord | OtherRecord)[];
  readonly additionals: (MdnsRecord | OtherRecord)[];
  /** Only the records of the types we use, all sections. */
  readonly records: MdnsRecord[];
  /** TXT records dropped for their size. */
  readonly oversize: number;
}

function isOurType(rr: MdnsRecord | OtherRecord): rr is MdnsRecord {
  return rr.type === 'A' || rr.type === 'PTR' || rr.type === 'SRV' || rr.type === 'TXT';
}

/** Validates a decoded packet; a string says why it is malformed, oversize or not mDNS. */
function parsePacket(raw: unknown): ParsedPacket | 'malformed' | 'not-mdns' | 'oversize' {
  if (typeof raw !== 'object' || raw === null) return 'malformed';
  const p = raw as Record<string, unknown>;
  if (p.type !== 'query' && p.type !== 'response') return 'malformed';
  // §18.3 / §18.11: messages with a non-zero opcode or rcode are silently ignored.
  if (p.opcode !== undefined && p.opcode !== 'QUERY') return 'not-mdns';
  if (p.rcode !== undefined && p.rcode !== 'NOERROR') return 'not-mdns';
  const sections = [p.questions, p.answers, p.authorities, p.additionals];
  if (!sections.every((s) => s === undefined || Array.isArray(s))) return 'malformed';
  const count = sections.reduce<number>((n, s) => n + ((s as unknown[] | undefined)?.length ?? 0), 0);
  if (count > MAX_RECORDS_PER_PACKET) return 'oversize';
  const questions: Question[] = [];
  for (const q of (p.questions as unknown[] | undefined) ?? []) {
    const parsed = parseWireQuestion(q);
    if (!parsed) return 'malformed';
    questions.push(parsed);
  }
  const records: MdnsRecord[] = [];
  let oversize = 0;
  const section = (list: unknown): (MdnsRecord | OtherRecord)[] | undefined => {
    const out: (MdnsRecord | OtherRecord)[] = [];
    for (const r of (list as unknown[] | undefined) ?? []) {
      const parsed = parseWireRecord(r);
      if (parsed.kind === 'malformed') return undefined;
      if (parsed.kind === 'oversize') oversize++;
      out.push(parsed.record);
      if (parsed.kind === 'record') records.push(parsed.record);
    }
    return out;
  };
  const answers = section(p.answers);
  const authorities = section(p.authorities);
  const additionals = section(p.additionals);
  if (!answers || !authorities || !additionals) return 'malformed';
  const id = typeof p.id === 'number' && Number.isInteger(p.id) && p.id >= 0 && p.id <= 0xffff ? p.id : 0;
  return { id, type: p.type, questions, answers, authorities, additionals, records, oversize };
}

/** Roughly what fits a 1500-byte Ethernet frame after IP/UDP headers, with margin (§17). */
const MAX_KNOWN_ANSWER_BYTES = 1200;
/** How long an rdata we sent counts as ours when it echoes back (after a TXT update, say). */
const OWN_ECHO_WINDOW_MS = 10_000;
const PROBE_INTERVAL_MS = 250;
const PROBE_COUNT = 3;
const ANNOUNCE_COUNT = 2;
const ANNOUNCE_INTERVAL_MS = 1000;
const BROWSE_FIRST_MS = 1000;
const BROWSE_MAX_MS = 60_000;
/**
 * The browse interval while a robot the config names is not seen. Its announcements may have been
 * lost (a receive buffer overflowing in a flood, a Wi-Fi burst), and the 60 s cap of §5.2 would
 * leave it unseen for a minute; known answers keep every robot already seen silent.
 */
const MISSING_MEMBER_BROWSE_MS = 4_000;
const RESOLVE_MAX_MS = 60_000;
/**
 * Records of robots the config does not name (the `site` and `other` tiers) the cache takes per
 * second and interface; the rest is dropped before it is hashed or stored (`floodDrops`). A site's
 * own traffic is a few records a second; a flood is thousands, and this keeps its cost to a decode.
 * The robots the config names are never limited.
 */
const FLOOD_RECORDS_PER_SECOND = 200;
/** Questions per query we send: junk instances in the cache must not turn into a query storm. */
const MAX_QUESTIONS_PER_QUERY = 16;
const TIER_RANK: Readonly<Record<CacheTier, number>> = { other: 0, site: 1, member: 2 };

/**
 * Where an MdnsDiscovery is: probing until its names are its own, then announced. `silent`: every
 * name we probed was claimed by someone else, so we browse without advertising for a while.
 */
export type MdnsPhase = 'new' | 'starting' | 'probing' | 'announced' | 'silent' | 'closed';

/**
 * MdnsDiscovery implements Discovery with mDNS/DNS-SD on one or more IPv4 interfaces.
 *
 * start() resolves after probing (≈ 0.25–1 s) and the first announcement. Peers appear when their
 * PTR, SRV, TXT and A records are all in the cache (usually from one announcement or one answer);
 * they disappear one second after their goodbye, or when their SRV or A record expires (120 s
 * after the last answer) if they vanish without one.
 */
export class MdnsDiscovery implements Discovery {
  readonly #now: () => number;
  readonly #random: () => number;
  readonly #setTimeout: (fn: () => void, ms: number) => unknown;
  readonly #clearTimeout: (handle: unknown) => void;
  readonly #factory: MdnsSocketFactory;
  readonly #networkInterfaces: () => InterfaceTable;
  readonly #interfaceNames: readonly string[] | undefined;
  readonly #rescanMs: number;
  readonly #onWarning: (message: string, err?: unknown) => void;
  readonly #cacheLimits: Partial<Record<CacheTier, number>> | undefined;
  readonly #members: ReadonlySet<string> | undefined;
  readonly #maxRenames: number;
  readonly #readvertiseAfterMs: number;
  readonly #legacyPerSecond: number;
  /** Probe rounds lost to conflicts since the name was last ours. */
  #renamesInRow = 0;
  #recomputePending = false;
  readonly #listeners: PeerListeners;
  readonly #stats = zeroStats();
  readonly #timers = new Set<unknown>();
  readonly #recentlySent = new Map<string, number>();
  readonly #resolveThrottle = new Map<string, { nextAt: number; intervalMs: number }>();
  #ad: Advertisement;
  #links: Link[] = [];
  #phase: MdnsPhase = 'new';
  #instanceN = 1;
  #hostN = 1;
  #probeGen = 0;
  #updateGen = 0;
  #conflictTimes: number[] = [];
  #browseDelay = BROWSE_FIRST_MS;
  #browseTimer: unknown;
  /** When the pending browse query is due (monotonic ms). */
  #browseAt = Infinity;
  /** Robots the config names that no link currently shows us. */
  #missingMembers = 0;
  #maintTimer: unknown;
  #maintAt = Infinity;
  #peers: PeerRecord[] = [];
  #startPromise: Promise<void> | undefined;
  #closePromise: Promise<void> | undefined;
  #startWaiter: { resolve: () => void; reject: (err: unknown) => void } | undefined;

  constructor(opts: MdnsDiscoveryOptions) {
    this.#ad = checkedAdvertisement(opts.advertisement);
    this.#now = opts.now ?? monotonicMs;
    this.#random = opts.random ?? Math.random;
    this.#setTimeout = opts.setTimeout ?? ((fn, ms) => setTimeout(fn, ms));
    this.#clearTimeout = opts.clearTimeout ?? ((h) => clearTimeout(h as ReturnType<typeof setTimeout>));
    this.#factory = opts.socketFactory ?? multicastDnsSocketFactory;
    this.#networkInterfaces = opts.networkInterfaces ?? (() => os.networkInterfaces());
    this.#interfaceNames = opts.interfaces && opts.interfaces.length > 0 ? [...opts.interfaces] : undefined;
    this.#rescanMs = opts.interfaceRescanMs ?? 10_000;
    this.#onWarning = opts.onWarning ?? (() => {});
    this.#cacheLimits = opts.cacheLimits;
    this.#members = opts.members ? new Set(opts.members) : undefined;
    this.#missingMembers = [...(this.#members ?? [])].filter((id) => id !== opts.advertisement.nodeId).length;
    this.#maxRenames = opts.maxRenames ?? 16;
    this.#readvertiseAfterMs = opts.readvertiseAfterMs ?? 60_000;
    this.#legacyPerSecond = opts.legacyAnswersPerSecond ?? 2;
    this.#listeners = new PeerListeners(
      () => this.peers(),
      (err) => {
        this.#stats.listenerErrors++;
        if (opts.onListenerError) {
          try {
            opts.onListenerError(err);
          } catch {
            // never into discovery
          }
        } else this.#warn('a discovery onChange listener threw', err);
      },
    );
  }

  // ----- public API ---------------------------------------------------------------------------

  start(): Promise<void> {
    this.#startPromise ??= this.#start();
    return this.#startPromise;
  }

  async update(change: Partial<Pick<Advertisement, 'role' | 'term'>>): Promise<void> {
    if (this.#phase === 'closed') throw closedError('update');
    const next = applyChange(this.#ad, change);
    const sameTxt = Buffer.concat(encodeTxt(next)).equals(Buffer.concat(encodeTxt(this.#ad)));
    this.#ad = next;
    // Role and term are not advertised (dnssd.ts, TXT_KEYS): nothing to announce.
    if (sameTxt) return;
    if (this.#phase !== 'announced') return; // probing: the next probe/announcement carries it
    // §8.4: a changed record is announced again, like a new one, with the cache-flush bit.
    const gen = ++this.#updateGen;
    const announceTxt = (): Promise<void> =>
      this.#sendAllLinks((link) => ({ type: 'response', answers: [this.#records(link).txt] }));
    await announceTxt();
    this.#stats.announcementsSent++;
    this.#after(ANNOUNCE_INTERVAL_MS, () => {
      if (gen !== this.#updateGen || this.#phase !== 'announced') return;
      this.#stats.announcementsSent++;
      void announceTxt();
    });
  }

  peers(): PeerRecord[] {
    if (this.#phase === 'closed') return [];
    return this.#peers.map((p) => ({ ...p, addresses: [...p.addresses] }));
  }

  onChange(listener: (peers: PeerRecord[]) => void): () => void {
    return this.#listeners.add(listener);
  }

  close(): Promise<void> {
    this.#closePromise ??= this.#close();
    return this.#closePromise;
  }

  /** Counters for metrics and tests. */
  stats(): MdnsStats {
    return { ...this.#stats };
  }

  /** Records in the caches now, per tier, summed over the interfaces (each tier is bounded). */
  cacheSizes(): Record<CacheTier, number> {
    const sum: Record<CacheTier, number> = { member: 0, site: 0, other: 0 };
    for (const l of this.#links) {
      const c = l.cache.counts();
      sum.member += c.member;
      sum.site += c.site;
      sum.other += c.other;
    }
    return sum;
  }

  /** Our current names, in presentation format (they change on a conflict). */
  names(): { instance: string; host: string } {
    return {
      instance: `${escapeInstanceLabel(instanceLabel(this.#ad.siteId, this.#ad.nodeId, this.#instanceN))}.${SERVICE_FQDN}`,
      host: this.#hostName(),
    };
  }

  /** Where the responder is: `probing` until the name is ours, then `announced`. */
  get phase(): MdnsPhase {
    return this.#phase;
  }

  /** The interfaces in use (address and netmask). */
  interfaces(): MdnsInterface[] {
    return this.#links.map((l) => ({ ...l.iface }));
  }

  // ----- lifecycle ----------------------------------------------------------------------------

  async #start(): Promise<void> {
    if (this.#phase === 'closed') throw closedError('start');
    this.#phase = 'starting';
    const ifaces = selectInterfaces(this.#interfaceNames, this.#readInterfaces());
    try {
      for (const iface of ifaces) await this.#openLink(iface);
    } catch (err) {
      await this.#closeLinks();
      if (this.#isClosed()) throw closedError('start');
      this.#phase = 'new';
      this.#startPromise = undefined;
      throw new EdgeError(
        'DISCOVERY_SOCKET',
        `cannot open the mDNS socket: ${(err as Error)?.message ?? String(err)}`,
        {
          cause: err,
          hint: 'another program may hold UDP 5353 without SO_REUSEADDR, or the interface went away',
        },
      );
    }
    if (this.#isClosed()) {
      await this.#closeLinks();
      throw closedError('start');
    }
    const announced = new Promise<void>((resolve, reject) => {
      this.#startWaiter = { resolve, reject };
    });
    this.#startBrowsing();
    this.#startProbing(this.#random() * 250);
    if (this.#rescanMs > 0) this.#scheduleRescan();
    await announced;
  }

  async #close(): Promise<void> {
    const owned = this.#phase === 'announced';
    this.#phase = 'closed';
    this.#listeners.close();
    for (const t of this.#timers) this.#clearTimeout(t);
    this.#timers.clear();
    this.#startWaiter?.reject(closedError('start'));
    this.#startWaiter = undefined;
    if (owned) {
      // §10.1: goodbye = our records with TTL 0; only for the names we own (we are announced).
      // A real-time guard: a send that never completes must not hold close() up.
      let guard: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        Promise.all(
          this.#links.map((link) => {
            const r = this.#records(link);
            const answers = [r.ptr, r.srv, r.txt, r.a].map((rr) => ({ ...rr, ttl: 0 }) as MdnsRecord);
            return this.#send(link, { type: 'response', answers });
          }),
        ),
        new Promise<void>((res) => {
          guard = setTimeout(res, 1000);
          guard.unref();
        }),
      ]);
      clearTimeout(guard);
    }
    await this.#closeLinks();
    this.#peers = [];
  }

  async #openLink(iface: MdnsInterface): Promise<Link> {
    const link: Link = {
      iface,
      socket: undefined,
      cache: new RecordCache({
        ...(this.#cacheLimits ? { limits: this.#cacheLimits } : {}),
        random: this.#random,
      }),
      lastMulticast: new Map(),
      legacyBudget: this.#legacyPerSecond,
      legacyBudgetAt: -Infinity,
      floodBudget: FLOOD_RECORDS_PER_SECOND,
      floodBudgetAt: -Infinity,
      closed: false,
    };
    const socket = await this.#factory(iface, {
      packet: (packet, from, bytes) => this.#onPacket(link, packet, from, bytes),
      malformed: (err) => {
        this.#stats.received++;
        this.#stats.malformed++;
        this.#debugDrop('undecodable datagram', err);
      },
      oversize: () => {
        this.#stats.received++;
        this.#stats.oversize++;
      },
      warning: (err) => {
        this.#stats.socketWarnings++;
        this.#warn(`mDNS socket warning on ${iface.name}`, err);
      },
    });
    link.socket = socket;
    this.#links.push(link);
    return link;
  }

  async #closeLinks(links: Link[] = this.#links): Promise<void> {
    await Promise.allSettled(
      links.map(async (l) => {
        l.closed = true;
        const s = l.socket;
        l.socket = undefined;
        l.cache.clear();
        if (s) await s.close();
      }),
    );
    this.#links = this.#links.filter((l) => !links.includes(l));
  }

  #readInterfaces(): InterfaceTable {
    try {
      return this.#networkInterfaces();
    } catch (err) {
      this.#warn('cannot list network interfaces', err);
      return {};
    }
  }

  /** Follows interface changes (a robot's Wi-Fi reconnects with another address…). */
  #scheduleRescan(): void {
    this.#after(this.#rescanMs, () => {
      void this.#rescan().finally(() => {
        if (this.#phase !== 'closed') this.#scheduleRescan();
      });
    });
  }

  async #rescan(): Promise<void> {
    let wanted: MdnsInterface[];
    try {
      wanted = selectInterfaces(this.#interfaceNames, this.#readInterfaces());
    } catch {
      wanted = [];
    }
    const same = (a: MdnsInterface, b: MdnsInterface): boolean =>
      a.name === b.name && a.address === b.address && a.netmask === b.netmask;
    const gone = this.#links.filter((l) => !wanted.some((w) => same(w, l.iface)));
    const added = wanted.filter((w) => !this.#links.some((l) => same(w, l.iface)));
    if (gone.length === 0 && added.length === 0) return;
    await this.#closeLinks(gone);
    for (const iface of added) {
      if (this.#phase === 'closed') return;
      try {
        await this.#openLink(iface);
      } catch (err) {
        this.#warn(`cannot open mDNS on ${iface.name}`, err);
      }
    }
    if (this.#phase === 'closed') return;
    this.#recompute();
    // §8.3 / §13: after a link change, probe and announce again, and query afresh.
    if (this.#phase === 'probing' || this.#phase === 'announced') this.#startProbing(this.#random() * 250);
    this.#startBrowsing();
  }

  /** A method, so that TypeScript does not narrow the phase across awaits. */
  #isClosed(): boolean {
    return this.#phase === 'closed';
  }

  // ----- names and records --------------------------------------------------------------------

  #instanceName(): string {
    return instanceFqdn(instanceLabel(this.#ad.siteId, this.#ad.nodeId, this.#instanceN));
  }

  #hostName(): string {
    return hostFqdn(hostLabel(this.#ad.nodeId, this.#ad.siteId, this.#hostN));
  }

  #records(link: Link): {
    ptr: MdnsRecord;
    srv: SrvRecord;
    txt: TxtRecord;
    a: MdnsRecord;
    enumPtr: MdnsRecord;
  } {
    const instance = this.#instanceName();
    const host = this.#hostName();
    return {
      ptr: { name: SERVICE_FQDN, type: 'PTR', ttl: TTL_OTHER_RECORDS_S, data: instance },
      srv: {
        name: instance,
        type: 'SRV',
        ttl: TTL_HOST_RECORDS_S,
        flush: true,
        data: { priority: 0, weight: 0, port: this.#ad.port, target: host },
      },
      txt: { name: instance, type: 'TXT', ttl: TTL_OTHER_RECORDS_S, flush: true, data: encodeTxt(this.#ad) },
      a: { name: host, type: 'A', ttl: TTL_HOST_RECORDS_S, flush: true, data: link.iface.address },
      enumPtr: { name: SERVICES_ENUM_FQDN, type: 'PTR', ttl: TTL_OTHER_RECORDS_S, data: SERVICE_FQDN },
    };
  }

  /** Is this record one of ours echoing back (loopback, or an older version we sent)? */
  #isOwnEcho(rr: MdnsRecord | OtherRecord): boolean {
    if (!isOurType(rr)) return false;
    for (const link of this.#links) {
      const r = this.#records(link);
      if ([r.srv, r.txt, r.a].some((own) => sameRecord(own, rr))) return true;
    }
    const sentAt = this.#recentlySent.get(recordKey(rr));
    return sentAt !== undefined && this.#now() - sentAt < OWN_ECHO_WINDOW_MS;
  }

  // ----- responder: probing, announcing, conflicts --------------------------------------------

  #startProbing(delayMs: number): void {
    const gen = ++this.#probeGen;
    this.#phase = 'probing';
    this.#after(delayMs, () => this.#probeStep(gen, 1));
  }

  #probeStep(gen: number, n: number): void {
    if (gen !== this.#probeGen || this.#phase !== 'probing') return;
    if (n > PROBE_COUNT) {
      this.#announce(gen);
      return;
    }
    // §8.1: ANY questions for every name we want, our proposed records in the Authority section.
    this.#stats.probesSent++;
    void this.#sendAllLinks((link) => {
      const r = this.#records(link);
      return {
        type: 'query',
        questions: [
          { name: this.#instanceName(), type: 'ANY' },
          { name: this.#hostName(), type: 'ANY' },
        ],
        authorities: [r.srv, r.txt, r.a],
      };
    });
    this.#after(PROBE_INTERVAL_MS, () => this.#probeStep(gen, n + 1));
  }

  #announce(gen: number): void {
    this.#phase = 'announced';
    this.#renamesInRow = 0;
    // §8.3: all our records, unique ones with the cache-flush bit, at least twice, 1 s apart.
    const send = (): Promise<void> =>
      this.#sendAllLinks((link) => {
        const r = this.#records(link);
        return { type: 'response', answers: [r.ptr, r.srv, r.txt, r.a] };
      });
    const first = send();
    this.#stats.announcementsSent++;
    for (let i = 1; i < ANNOUNCE_COUNT; i++) {
      this.#after(ANNOUNCE_INTERVAL_MS * i, () => {
        if (gen !== this.#probeGen || this.#phase !== 'announced') return;
        this.#stats.announcementsSent++;
        void send();
      });
    }
    void first.then(() => {
      const w = this.#startWaiter;
      this.#startWaiter = undefined;
      w?.resolve();
    });
  }

  /** §8.2: another host probes for one of our names at the same time. */
  #checkSimultaneousProbe(link: Link, pkt: ParsedPacket): void {
    const r = this.#records(link);
    const contested: [string, (MdnsRecord | OtherRecord)[]][] = [
      [this.#instanceName(), [r.srv, r.txt]],
      [this.#hostName(), [r.a]],
    ];
    for (const [name, ours] of contested) {
      const theirs = pkt.authorities.filter((rr) => sameName(rr.name, name));
      if (theirs.length === 0 || theirs.every((rr) => this.#isOwnEcho(rr))) continue;
      const cmp = compareProbeSets(ours, theirs);
      if (cmp >= 0) continue; // identical (our own probe looped back) or we win
      // We lose: defer one second, then probe again (the winner will then defend its name, and
      // that conflict makes us rename).
      this.#stats.probeTieBreaksLost++;
      this.#startProbing(1000);
      return;
    }
  }

  /** §8.1 (while probing) and §9 (after): a response claims one of our names with other data. */
  #checkConflicts(pkt: ParsedPacket): void {
    if (this.#phase !== 'probing' && this.#phase !== 'announced') return;
    const instance = this.#instanceName();
    const host = this.#hostName();
    for (const rr of [...pkt.answers, ...pkt.authorities, ...pkt.additionals]) {
      if (rr.ttl === 0) continue; // a goodbye claims nothing
      const isInstance = sameName(rr.name, instance);
      const isHost = !isInstance && sameName(rr.name, host);
      if (!isInstance && !isHost) continue;
      if (this.#isOwnEcho(rr)) continue;
      if (this.#phase === 'announced') {
        const sameType = isInstance ? rr.type === 'SRV' || rr.type === 'TXT' : rr.type === 'A';
        if (!sameType) continue;
      }
      this.#onConflict(isInstance ? 'instance' : 'host');
      return;
    }
  }

  #onConflict(which: 'instance' | 'host'): void {
    const now = this.#now();
    this.#stats.conflicts++;
    this.#conflictTimes = this.#conflictTimes.filter((t) => t > now - 10_000);
    this.#conflictTimes.push(now);
    if (this.#phase === 'announced') {
      // §9: reset to probing; if the other host still holds the name, the probe loses and we rename.
      this.#warn(`mDNS conflict on our ${which} name after announcing: probing again`);
      this.#startProbing(0);
      return;
    }
    if (++this.#renamesInRow > this.#maxRenames) {
      this.#giveUpAdvertising();
      return;
    }
    // §9: choose a new name and probe again. Never a goodbye for the old name: it is not ours.
    if (which === 'instance') this.#instanceN++;
    else this.#hostN++;
    this.#stats.renames++;
    this.#warn(
      `mDNS name conflict: renamed to ${which === 'instance' ? this.#instanceName() : this.#hostName()}`,
    );
    // §8.1: after 15 conflicts within 10 s, wait 5 s before each further probe.
    const delay = this.#conflictTimes.length >= 15 ? 5000 : this.#random() * 250;
    this.#startProbing(delay);
  }

  /**
   * Someone claims every name we try (a host that answers every probe): stop probing so start()
   * resolves and browsing goes on, and try again, from our first names, after a quiet while. Peers
   * still reach us through their seeds and our own datagrams, which tell them where we are.
   */
  #giveUpAdvertising(): void {
    this.#probeGen++;
    this.#phase = 'silent';
    this.#renamesInRow = 0;
    this.#stats.advertisingGivenUp++;
    this.#warn(
      `mDNS: gave up advertising ${this.#ad.nodeId} after ${this.#maxRenames} name conflicts in a row: ` +
        `another host claims every name we probe; browsing goes on, advertising is retried in ${Math.round(this.#readvertiseAfterMs / 1000)} s`,
    );
    const w = this.#startWaiter;
    this.#startWaiter = undefined;
    w?.resolve();
    const gen = this.#probeGen;
    this.#after(this.#readvertiseAfterMs, () => {
      if (gen !== this.#probeGen || this.#phase !== 'silent') return;
      this.#instanceN = 1;
      this.#hostN = 1;
      this.#startProbing(this.#random() * 250);
    });
  }

  // ----- responder: answering -----------------------------------------------------------------

  #onQuery(link: Link, pkt: ParsedPacket, from: WireAddress): void {
    const isProbe = pkt.authorities.length > 0;
    if (this.#phase === 'probing' && isProbe) this.#checkSimultaneousProbe(link, pkt);
    if (this.#phase !== 'announced') return;
    const r = this.#records(link);
    const instance = canonicalName(this.#instanceName());
    const host = canonicalName(this.#hostName());
    const answers: MdnsRecord[] = [];
    const additionals: MdnsRecord[] = [];
    const answered: Question[] = [];
    for (const q of pkt.questions) {
      const n = canonicalName(q.name);
      const any = q.type === 'ANY';
      const before = answers.length;
      if (n === SERVICE_FQDN && (q.type === 'PTR' || any)) {
        answers.push(r.ptr);
        additionals.push(r.srv, r.txt, r.a); // RFC 6763 §12.1
      } else if (n === SERVICES_ENUM_FQDN && (q.type === 'PTR' || any)) {
        answers.push(r.enumPtr);
      } else if (n === instance) {
        if (q.type === 'SRV' || any) {
          answers.push(r.srv);
          additionals.push(r.a); // RFC 6763 §12.2
        }
        if (q.type === 'TXT' || any) answers.push(r.txt);
      } else if (n === host && (q.type === 'A' || any)) {
        answers.push(r.a);
      }
      if (answers.length > before) answered.push(q);
    }
    if (answers.length === 0) return;

    // §7.1 known-answer suppression (not for probes: a probe's records are proposals, not answers).
    const known = isProbe ? [] : pkt.answers.filter(isOurType);
    const isKnown = (rr: MdnsRecord): boolean => known.some((k) => sameRecord(k, rr) && k.ttl >= rr.ttl / 2);
    const dedupe = (list: MdnsRecord[]): MdnsRecord[] => {
      const seen = new Set<string>();
      return list.filter((rr) => {
        const k = recordKey(rr);
        if (seen.has(k)) return false;
        seen.add(k);
        return true;
      });
    };
    let outAnswers = dedupe(answers).filter((rr) => !isKnown(rr));
    if (outAnswers.length === 0) {
      this.#stats.knownAnswerSuppressed++;
      return;
    }
    const answerKeys = new Set(outAnswers.map(recordKey));
    let outAdditionals = dedupe(additionals).filter((rr) => !answerKeys.has(recordKey(rr)) && !isKnown(rr));

    if (from.port !== MDNS_PORT) {
      // §6.7 legacy unicast: a plain DNS resolver asked. Answer it directly, echo id and each
      // question once, TTL at most 10 s, no cache-flush bit. The source address is not checked by
      // anyone (UDP), so the answer could be aimed at a victim: it carries no additional records,
      // and a small per-second budget bounds what a stream of spoofed queries can make us send.
      const now = this.#now();
      if (now - link.legacyBudgetAt >= 1000) {
        link.legacyBudget = this.#legacyPerSecond;
        link.legacyBudgetAt = now;
      }
      if (link.legacyBudget <= 0) {
        this.#stats.legacyUnicastLimited++;
        return;
      }
      link.legacyBudget--;
      const legacy = (rr: MdnsRecord): MdnsRecord =>
        ({ ...rr, ttl: Math.min(rr.ttl, TTL_LEGACY_UNICAST_CAP_S), flush: false }) as MdnsRecord;
      const echoed = new Map<string, OutgoingQuestion>();
      for (const q of answered)
        echoed.set(`${canonicalName(q.name)}|${q.type}`, { name: q.name, type: q.type });
      this.#stats.answersSent++;
      void this.#send(
        link,
        { id: pkt.id, type: 'response', questions: [...echoed.values()], answers: outAnswers.map(legacy) },
        from,
      );
      return;
    }

    // §6: multicast a record at most once per second (a probe may be defended every 250 ms).
    const now = this.#now();
    const minGap = isProbe ? 250 : 1000;
    const recent = (rr: MdnsRecord): boolean =>
      now - (link.lastMulticast.get(recordKey(rr)) ?? -Infinity) < minGap;
    outAnswers = outAnswers.filter((rr) => !recent(rr));
    if (outAnswers.length === 0) return;
    outAdditionals = outAdditionals.filter((rr) => !recent(rr));
    // §6: unique answers go out at once; shared ones (the PTR) after 20–120 ms, so that several
    // responders' answers spread out.
    const shared = outAnswers.some((rr) => rr.flush !== true);
    const delay = shared && !isProbe ? 20 + this.#random() * 100 : 0;
    const gen = this.#probeGen;
    const send = (): void => {
      if (this.#phase !== 'announced' || gen !== this.#probeGen || link.closed) return;
      this.#stats.answersSent++;
      void this.#send(link, { type: 'response', answers: outAnswers, additionals: outAdditionals });
    };
    if (delay === 0) send();
    else this.#after(delay, send);
  }

  // ----- browser ------------------------------------------------------------------------------

  #startBrowsing(): void {
    this.#browseDelay = BROWSE_FIRST_MS;
    // §5.2: the first query after a random 20–120 ms, then 1 s, 2 s, 4 s … up to 60 s.
    this.#scheduleBrowse(20 + this.#random() * 100);
  }

  #scheduleBrowse(delayMs: number): void {
    if (this.#browseTimer !== undefined) {
      this.#clearTimeout(this.#browseTimer);
      this.#timers.delete(this.#browseTimer);
    }
    this.#browseAt = this.#now() + delayMs;
    this.#browseTimer = this.#after(delayMs, () => this.#browseQuery());
  }

  /** The longest browse interval now: short while a robot the config names is missing. */
  #browseCapMs(): number {
    return this.#missingMembers > 0 ? MISSING_MEMBER_BROWSE_MS : BROWSE_MAX_MS;
  }

  #browseQuery(): void {
    const now = this.#now();
    this.#stats.queriesSent++;
    void this.#sendAllLinks((link) => {
      // §7.1: list the PTRs we already know with more than half their TTL left.
      const known: MdnsRecord[] = [];
      let bytes = 0;
      const own =
        this.#phase === 'announced'
          ? [{ rr: this.#records(link).ptr, at: now, ttl: TTL_OTHER_RECORDS_S }]
          : [];
      // Our site's first: a flood of forged PTRs must not crowd them out of the known answers.
      const cached = link.cache
        .lookup(SERVICE_FQDN, 'PTR', now)
        .sort((a, b) => TIER_RANK[b.tier] - TIER_RANK[a.tier])
        .map((e) => ({
          rr: e.record,
          at: e.receivedAt,
          ttl: Math.floor((e.expiresAt - now) / 1000),
        }));
      for (const { rr, ttl } of [...own, ...cached]) {
        if (ttl * 2 < rr.ttl) continue;
        const size = 20 + Buffer.byteLength(String(rr.data));
        if (bytes + size > MAX_KNOWN_ANSWER_BYTES) break; // no multi-packet known answers (TC)
        bytes += size;
        known.push({ ...rr, ttl } as MdnsRecord);
      }
      return { type: 'query', questions: [{ name: SERVICE_FQDN, type: 'PTR' }], answers: known };
    });
    const cap = this.#browseCapMs();
    const d = Math.min(this.#browseDelay, cap);
    this.#browseDelay = Math.min(d * 2, BROWSE_MAX_MS);
    // Jitter while asking often, so that the robots of a site do not query in lockstep.
    this.#scheduleBrowse(cap < BROWSE_MAX_MS ? d * (0.8 + 0.4 * this.#random()) : d);
  }

  /** The cache tier of a TXT record: `member` for a robot the config names, `site` for another of ours. */
  #txtTier(rr: TxtRecord): CacheTier {
    const dec = decodedTxt(rr.data);
    if (
      !dec.ok ||
      dec.advertisement.siteId !== this.#ad.siteId ||
      dec.advertisement.nodeId === this.#ad.nodeId
    )
      return 'other';
    return !this.#members || this.#members.has(dec.advertisement.nodeId) ? 'member' : 'site';
  }

  #onResponse(link: Link, pkt: ParsedPacket): void {
    this.#checkConflicts(pkt);
    const now = this.#now();
    const suffix = `.${SERVICE_FQDN}`;
    const isInstanceName = (name: string): boolean =>
      name.length > suffix.length && canonicalName(name).endsWith(suffix);
    const higher = (a: CacheTier | undefined, b: CacheTier): CacheTier =>
      a === undefined || TIER_RANK[b] > TIER_RANK[a] ? b : a;
    // Which tier each instance's records go to: by its TXT, in this packet or cached.
    const instanceTier = new Map<string, CacheTier>();
    for (const rr of pkt.records)
      if (rr.type === 'TXT' && rr.ttl > 0 && isInstanceName(rr.name))
        instanceTier.set(
          canonicalName(rr.name),
          higher(instanceTier.get(canonicalName(rr.name)), this.#txtTier(rr)),
        );
    const tierOf = (instance: string): CacheTier =>
      instanceTier.get(canonicalName(instance)) ??
      link.cache.lookup(instance, 'TXT', now)[0]?.tier ??
      'other';
    // A records are cached when an SRV of our service (in this packet or cached) points at them,
    // in the tier of that SRV's instance.
    const targets = new Map<string, CacheTier>();
    for (const rr of pkt.records)
      if (rr.type === 'SRV' && isInstanceName(rr.name)) {
        const t = canonicalName(rr.data.target);
        targets.set(t, higher(targets.get(t), tierOf(rr.name)));
      }
    const targetTier = (host: string): CacheTier | undefined => {
      let tier = targets.get(canonicalName(host));
      for (const e of link.cache.srvsTargeting(host, now)) tier = higher(tier, e.tier);
      return tier;
    };
    let touched = false;
    let touchedSite = false;
    const evictedBefore = { ...link.cache.evictions };
    const ownInstance = this.#instanceName();
    const ownHost = this.#hostName();
    for (const rr of pkt.records) {
      if (sameName(rr.name, ownInstance) || sameName(rr.name, ownHost)) continue; // ourselves
      if (rr.type === 'PTR' && sameName(rr.data, ownInstance)) continue;
      let tier: CacheTier | undefined;
      switch (rr.type) {
        case 'PTR':
          if (canonicalName(rr.name) === SERVICE_FQDN && isInstanceName(rr.data)) tier = tierOf(rr.data);
          break;
        case 'SRV':
          if (isInstanceName(rr.name)) tier = tierOf(rr.name);
          break;
        case 'TXT':
          if (isInstanceName(rr.name)) tier = rr.ttl > 0 ? this.#txtTier(rr) : tierOf(rr.name);
          break;
        case 'A':
          tier = targetTier(rr.name);
          // A peer of ours lives on this link's subnet; an address elsewhere would only aim our
          // datagrams at some other host.
          if (tier !== undefined && rr.ttl > 0 && !onSubnet(rr.data, link.iface)) {
            this.#stats.ignoredForeignAddress++;
            tier = undefined;
          }
          break;
      }
      if (tier === undefined) continue;
      if (tier !== 'member') {
        if (now - link.floodBudgetAt >= 1000) {
          link.floodBudget = FLOOD_RECORDS_PER_SECOND;
          link.floodBudgetAt = now;
        }
        if (link.floodBudget <= 0) {
          this.#stats.floodDrops++;
          continue;
        }
        link.floodBudget--;
      }
      const res = link.cache.add(rr, now, tier);
      if (res === 'ignored') continue;
      touched = true;
      if (tier !== 'other') touchedSite = true;
      if (res === 'goodbye') this.#stats.goodbyesReceived++;
      if (rr.type === 'TXT' && rr.ttl > 0) {
        const dec = decodedTxt(rr.data);
        const site = dec.ok ? dec.advertisement.siteId : dec.siteId;
        if (site !== undefined && site !== this.#ad.siteId) this.#stats.ignoredOtherSite++;
        else if (!dec.ok) this.#stats.badTxt++;
        if (tier !== 'other') this.#promoteInstance(link, rr.name, tier, now);
      }
    }
    const ev = link.cache.evictions;
    const siteEvicted = ev.member - evictedBefore.member + (ev.site - evictedBefore.site);
    this.#stats.cacheEvictions += siteEvicted + (ev.other - evictedBefore.other);
    this.#stats.siteCacheEvictions += siteEvicted;
    if (!touched) return;
    // Records of other sites and unknown instances cannot change our peers: no recompute for them,
    // which is what keeps a flood of junk cheap.
    if (touchedSite || siteEvicted > 0) this.#recomputeSoon();
    // Ask for what is still missing a little later: the rest often follows in the next packet.
    this.#scheduleMaintenance(now + 100);
  }

  /** An instance turned out to be one of our site's robots: its cached PTR, SRV and A move up too. */
  #promoteInstance(link: Link, instance: string, tier: CacheTier, now: number): void {
    const srvTargets = link.cache
      .lookup(instance, 'SRV', now)
      .map((e) => (e.record.type === 'SRV' ? canonicalName(e.record.data.target) : ''));
    link.cache.promote(
      (rr) =>
        (rr.type === 'PTR' && sameName(rr.data, instance)) ||
        (rr.type === 'SRV' && sameName(rr.name, instance)) ||
        (rr.type === 'A' && srvTargets.includes(canonicalName(rr.name))),
      tier,
    );
  }

  /** Instances of interest: not ours, and either of our site or not yet known (no TXT). */
  #interesting(link: Link, instance: string, now: number): boolean {
    if (sameName(instance, this.#instanceName())) return false;
    const txt = link.cache.lookup(instance, 'TXT', now)[0]?.record;
    if (!txt || txt.type !== 'TXT') return true;
    const dec = decodedTxt(txt.data);
    return (
      dec.ok && dec.advertisement.siteId === this.#ad.siteId && dec.advertisement.nodeId !== this.#ad.nodeId
    );
  }

  #maintain(): void {
    const now = this.#now();
    let changed = false;
    const wantedThrottles = new Set<string>();
    for (const [index, link] of this.#links.entries()) {
      if (link.closed) continue;
      if (link.cache.expire(now).some((e) => e.tier !== 'other')) changed = true;
      const questions = new Map<string, OutgoingQuestion>();
      const ask = (name: string, type: 'PTR' | 'SRV' | 'TXT' | 'A'): boolean => {
        if (questions.size >= MAX_QUESTIONS_PER_QUERY) return false;
        questions.set(`${canonicalName(name)}|${type}`, { name, type });
        return true;
      };
      // §5.2: refresh records of interest at 80/85/90/95 % of their TTL.
      for (const e of link.cache.dueRefreshes(now)) {
        if (e.tier === 'other') continue; // only our site's robots are worth keeping fresh
        const rr = e.record;
        const instance =
          rr.type === 'PTR' ? rr.data : rr.type === 'SRV' || rr.type === 'TXT' ? rr.name : undefined;
        if (instance !== undefined && !this.#interesting(link, instance, now)) continue;
        ask(rr.name, rr.type);
      }
      // Resolve instances known only in part (RFC 6763 §12 additionals can be missing or split):
      // our site's first, then the rest while the query has room.
      const ptrs = link.cache
        .lookup(SERVICE_FQDN, 'PTR', now)
        .sort((a, b) => TIER_RANK[b.tier] - TIER_RANK[a.tier]);
      for (const ptr of ptrs) {
        const instance = String(ptr.record.data);
        if (!this.#interesting(link, instance, now)) continue;
        const srv = link.cache.lookup(instance, 'SRV', now)[0];
        const txt = link.cache.lookup(instance, 'TXT', now)[0];
        const missing: [string, 'SRV' | 'TXT' | 'A'][] = [];
        if (!srv) missing.push([instance, 'SRV']);
        if (!txt) missing.push([instance, 'TXT']);
        if (
          srv &&
          srv.record.type === 'SRV' &&
          link.cache.lookup(srv.record.data.target, 'A', now).length === 0
        )
          missing.push([srv.record.data.target, 'A']);
        for (const [name, type] of missing) {
          const key = `${index}|${canonicalName(name)}|${type}`;
          wantedThrottles.add(key);
          const th = this.#resolveThrottle.get(key);
          if (th && th.nextAt > now) continue;
          if (!ask(name, type)) continue;
          const intervalMs = th ? Math.min(th.intervalMs * 2, RESOLVE_MAX_MS) : 1000;
          this.#resolveThrottle.set(key, { nextAt: now + intervalMs, intervalMs });
        }
      }
      if (questions.size > 0) {
        this.#stats.queriesSent++;
        void this.#send(link, { type: 'query', questions: [...questions.values()] });
      }
    }
    for (const key of [...this.#resolveThrottle.keys()])
      if (!wantedThrottles.has(key)) this.#resolveThrottle.delete(key);
    if (changed) this.#recompute();
    this.#scheduleMaintenance();
  }

  #scheduleMaintenance(at?: number): void {
    if (this.#phase === 'closed') return;
    // Already due by then: nothing to scan (this runs for every packet that touched the cache).
    if (at !== undefined && this.#maintTimer !== undefined && this.#maintAt <= at) return;
    let next = at ?? Infinity;
    for (const l of this.#links) {
      const d = l.cache.nextDeadline();
      if (d !== undefined && d < next) next = d;
    }
    for (const th of this.#resolveThrottle.values()) if (th.nextAt < next) next = th.nextAt;
    if (next === Infinity) return;
    if (this.#maintTimer !== undefined && this.#maintAt <= next) return;
    if (this.#maintTimer !== undefined) {
      this.#clearTimeout(this.#maintTimer);
      this.#timers.delete(this.#maintTimer);
    }
    this.#maintAt = next;
    this.#maintTimer = this.#after(Math.max(0, next - this.#now()), () => {
      this.#maintTimer = undefined;
      this.#maintAt = Infinity;
      this.#maintain();
    });
  }

  /**
   * Rebuilds the peer list once the datagrams that have arrived are handled (setImmediate runs after
   * the event loop's I/O): a burst of our site's records costs one rebuild, not one per datagram.
   */
  #recomputeSoon(): void {
    if (this.#recomputePending) return;
    this.#recomputePending = true;
    setImmediate(() => {
      this.#recomputePending = false;
      if (this.#phase !== 'closed') this.#recompute();
    });
  }

  /** Rebuilds the peer list from the caches and tells the listeners if it changed. */
  #recompute(): void {
    const now = this.#now();
    const best = new Map<string, { peer: PeerRecord; instance: string; txtAt: number }>();
    for (const link of this.#links) {
      // One pass over our site's records (never the `other` tier: that is where a flood lands), then
      // lookups by name: the cost grows with the site, not with the traffic.
      const byName = new Map<string, CacheEntry[]>();
      const ptrs: CacheEntry[] = [];
      for (const e of link.cache.liveSite(now)) {
        if (e.record.type === 'PTR') {
          if (canonicalName(e.record.name) === SERVICE_FQDN) ptrs.push(e);
          continue;
        }
        const k = `${canonicalName(e.record.name)}|${e.record.type}`;
        const list = byName.get(k);
        if (list) list.push(e);
        else byName.set(k, [e]);
      }
      const newest = (name: string, type: string): CacheEntry[] =>
        (byName.get(`${canonicalName(name)}|${type}`) ?? []).sort((a, b) => b.receivedAt - a.receivedAt);
      for (const ptr of ptrs) {
        const instance = String(ptr.record.data);
        if (sameName(instance, this.#instanceName())) continue;
        const srv = newest(instance, 'SRV')[0];
        const txt = newest(instance, 'TXT')[0];
        if (!srv || !txt || srv.record.type !== 'SRV' || txt.record.type !== 'TXT') continue;
        const dec = decodedTxt(txt.record.data);
        if (!dec.ok) continue;
        const ad = dec.advertisement;
        if (ad.siteId !== this.#ad.siteId || ad.nodeId === this.#ad.nodeId) continue;
        const as = newest(srv.record.data.target, 'A');
        if (as.length === 0) continue;
        const addresses = [...new Set(as.map((e) => String(e.record.data)))];
        const lastSeenMs = Math.max(
          ptr.receivedAt,
          srv.receivedAt,
          txt.receivedAt,
          ...as.map((e) => e.receivedAt),
        );
        const peer: PeerRecord = { ...ad, addresses, source: 'mdns', lastSeenMs };
        const prev = best.get(ad.nodeId);
        if (!prev) {
          best.set(ad.nodeId, { peer, instance, txtAt: txt.receivedAt });
        } else if (sameName(prev.instance, instance)) {
          // The same agent seen on several interfaces: one peer, every address.
          const newer = txt.receivedAt > prev.txtAt ? peer : prev.peer;
          const merged = [...new Set([...newer.addresses, ...prev.peer.addresses, ...addresses])];
          best.set(ad.nodeId, {
            peer: { ...newer, addresses: merged, lastSeenMs: Math.max(prev.peer.lastSeenMs, lastSeenMs) },
            instance,
            txtAt: Math.max(prev.txtAt, txt.receivedAt),
          });
        } else if (txt.receivedAt > prev.txtAt) {
          // Two instances claim one node id (a restart under a new name): the fresher wins.
          best.set(ad.nodeId, { peer, instance, txtAt: txt.receivedAt });
        }
      }
    }
    this.#peers = sortPeers([...best.values()].map((b) => b.peer));
    if (this.#members) {
      let missing = 0;
      for (const id of this.#members) if (id !== this.#ad.nodeId && !best.has(id)) missing++;
      this.#missingMembers = missing;
      // A robot just went missing: ask again soon rather than at the end of a long interval.
      if (missing > 0 && this.#browseTimer !== undefined && this.#browseAt > now + MISSING_MEMBER_BROWSE_MS)
        this.#scheduleBrowse(MISSING_MEMBER_BROWSE_MS * (0.5 + 0.5 * this.#random()));
    }
    this.#listeners.changed();
  }

  // ----- packets in and out -------------------------------------------------------------------

  #onPacket(link: Link, raw: unknown, from: WireAddress, bytes?: number): void {
    try {
      this.#stats.received++;
      if (this.#phase === 'closed' || link.closed || !link.socket) return;
      if (!onSubnet(from.address, link.iface)) {
        this.#stats.ignoredForeignSubnet++;
        return;
      }
      if (bytes !== undefined && bytes > MAX_MDNS_PACKET_BYTES) {
        this.#stats.oversize++;
        return;
      }
      const pkt = parsePacket(raw);
      if (pkt === 'oversize') {
        this.#stats.oversize++;
        return;
      }
      if (pkt === 'malformed') {
        this.#stats.malformed++;
        this.#debugDrop(`malformed packet from ${from.address}`);
        return;
      }
      if (pkt === 'not-mdns') {
        this.#stats.ignoredNotMdns++;
        return;
      }
      this.#stats.oversize += pkt.oversize;
      if (pkt.type === 'query') {
        this.#onQuery(link, pkt, from);
      } else {
        // §11: responses must come from port 5353.
        if (from.port !== MDNS_PORT) {
          this.#stats.ignoredNotMdns++;
          return;
        }
        this.#onResponse(link, pkt);
      }
    } catch (err) {
      this.#stats.internalErrors++;
      this.#warn('mDNS packet handler failed (packet dropped)', err);
    }
  }

  async #send(link: Link, pkt: OutgoingPacket, to?: WireAddress): Promise<void> {
    const socket = link.socket;
    if (!socket || link.closed) return;
    if (!to) {
      // Remember what we multicast: the §6 rate limit, and telling our own echoes from conflicts
      // (a probe's proposals or an older TXT can loop back after an update()).
      const now = this.#now();
      const ours = pkt.type === 'response' ? [...(pkt.answers ?? []), ...(pkt.additionals ?? [])] : [];
      for (const rr of ours) link.lastMulticast.set(recordKey(rr), now);
      for (const rr of [...ours, ...(pkt.authorities ?? [])]) this.#recentlySent.set(recordKey(rr), now);
      for (const [k, t] of this.#recentlySent) if (now - t > OWN_ECHO_WINDOW_MS) this.#recentlySent.delete(k);
      for (const [k, t] of link.lastMulticast) if (now - t > OWN_ECHO_WINDOW_MS) link.lastMulticast.delete(k);
    }
    try {
      await socket.send(pkt, to);
    } catch (err) {
      this.#stats.sendErrors++;
      this.#warn(`mDNS send failed on ${link.iface.name}`, err);
    }
  }

  async #sendAllLinks(build: (link: Link) => OutgoingPacket): Promise<void> {
    await Promise.all(this.#links.map((link) => this.#send(link, build(link))));
  }

  /** A tracked timer: cleared on close; its callback can never throw out. */
  #after(ms: number, fn: () => void): unknown {
    if (this.#phase === 'closed') return undefined;
    const handle: unknown = this.#setTimeout(
      () => {
        this.#timers.delete(handle);
        if (this.#phase === 'closed') return;
        try {
          fn();
        } catch (err) {
          this.#stats.internalErrors++;
          this.#warn('mDNS timer callback failed', err);
        }
      },
      Math.max(0, ms),
    );
    this.#timers.add(handle);
    return handle;
  }

  #warn(message: string, err?: unknown): void {
    try {
      this.#onWarning(message, err);
    } catch {
      // A logger that throws must not break discovery either.
    }
  }

  #debugDrop(_message: string, _err?: unknown): void {
    // Malformed traffic is counted (stats().malformed), not logged: a noisy LAN would flood logs.
  }
}
