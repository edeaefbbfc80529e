/**
 * Discovery: how an agent learns which peers of its site exist and where they are.
 *
 * Discovery only FINDS peers. Election traffic never rides on multicast: the agent talks to the
 * peers found here over its own authenticated UDP transport (agent/transport/). The real
 * implementation is mDNS/DNS-SD (agent/discovery/mdns.ts, docs/discovery.md); this file holds the
 * narrow interface, the in-memory twin used by unit tests and the simulator, static seed peers from
 * config, and the composite that merges mDNS with seeds.
 */

import { isIP } from 'node:net';
import { EdgeError } from '../errors.ts';
import { isNodeId } from '../transport/codec.ts';
import type { NodeId } from '../../statecharts/messages.ts';
import { monotonicMs } from '../clock.ts';

/** The roles an agent advertises: the election roles plus `starting` (before the first step). */
export const ROLES = ['follower', 'preCandidate', 'candidate', 'leader', 'learner', 'starting'] as const;
export type Role = (typeof ROLES)[number];

/** What an agent tells its site about itself. Published as DNS-SD TXT keys; never a secret. */
export interface Advertisement {
  siteId: string;
  nodeId: NodeId;
  agentVersion: string;
  role: 'follower' | 'preCandidate' | 'candidate' | 'leader' | 'learner' | 'starting';
  term: number;
  /** UDP port of the election transport. */
  port: number;
  serverCapable: boolean;
}

export type PeerSource = 'mdns' | 'seed' | 'memory';

/** A peer as discovery last saw it. */
export interface PeerRecord extends Advertisement {
  /** IPv4 addresses, best first. May be empty for a seed whose host name did not resolve (yet). */
  addresses: string[];
  source: PeerSource;
  /** Monotonic ms (agent/clock.ts) of the last packet or update that mentioned the peer. */
  lastSeenMs: number;
}

/**
 * The narrow Discovery interface. Contracts common to every implementation:
 *
 * Threading: everything runs on the Node event loop of the caller. An implementation is not
 * shareable across worker threads. Methods may be called from listeners.
 *
 * Lifecycle: `new` → `start()` → any number of `update()`/`peers()` → `close()`. `close()` may be
 * called at any time, also before or during `start()`, and more than once.
 *
 * Delivery: `onChange` listeners are called asynchronously (in a later microtask or event-loop
 * turn, never inside the call that caused the change), in registration order, with a fresh
 * snapshot of the full peer list (the same value `peers()` would return). Changes may be
 * coalesced: a listener always sees the latest state, not every intermediate one. A change of
 * `lastSeenMs` alone is not a change. A listener that throws is isolated: the error is counted and
 * dropped, discovery and the other listeners go on. No listener is called after `close()` began.
 */
export interface Discovery {
  /**
   * Starts advertising and browsing. Resolves once this agent is advertised (for mDNS: after
   * probing and the first announcement) and listening. Rejects with an EdgeError when it cannot
   * start (no usable interface, socket error, closed). A second call returns the same promise.
   */
  start(): Promise<void>;
  /**
   * Changes the advertised role and/or term and re-announces them (for mDNS: the TXT record with
   * the cache-flush bit, so browsers replace the old one). Before start() it only changes what
   * start() will advertise. Resolves once the new advertisement is sent (or stored); rejects with
   * an EdgeError for an invalid value or after close().
   */
  update(change: Partial<Pick<Advertisement, 'role' | 'term'>>): Promise<void>;
  /**
   * The peers of the SAME site, never this agent itself, sorted by nodeId. A fresh array the caller
   * owns. Empty after close().
   */
  peers(): PeerRecord[];
  /**
   * Subscribes to peer-list changes (add, remove, update). See the delivery contract above.
   * Returns the function that unsubscribes.
   */
  onChange(listener: (peers: PeerRecord[]) => void): () => void;
  /**
   * Counters, all monotonic, by name (what was received, dropped and why). Optional: a discovery
   * with nothing to count has none. The agent shows every one in /status and /metrics.
   */
  stats?(): object;
  /**
   * Stops: sends the goodbye (mDNS: our records with TTL 0, only for names we own), releases
   * sockets and timers. Idempotent; never rejects.
   */
  close(): Promise<void>;
}

/** siteId travels in a TXT string (`site=` + value ≤ 255 bytes); we keep it well under. */
export const MAX_SITE_ID_BYTES = 200;

/**
 * The control characters, Unicode's general category Cc, written out: `/\p{Cc}/u` is the same
 * set (Unicode keeps Cc fixed), but a property escape makes V8 open ICU's data, which costs an
 * idle agent half a megabyte of resident pages (docs/benchmarks/agent.md).
 */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
export const CONTROL_CHARACTER = /[\u0000-\u001f\u007f-\u009f]/;
export const MAX_AGENT_VERSION_BYTES = 64;

/**
 * validateAdvertisement lists what is wrong with an advertisement (empty when it is fine). The
 * limits keep every DNS-SD TXT string under 255 bytes.
 */
export function validateAdvertisement(ad: Advertisement): string[] {
  if (typeof ad !== 'object' || ad === null) return ['advertisement must be an object'];
  const problems: string[] = [];
  if (
    typeof ad.siteId !== 'string' ||
    ad.siteId.length === 0 ||
    !ad.siteId.isWellFormed() ||
    Buffer.byteLength(ad.siteId) > MAX_SITE_ID_BYTES ||
    CONTROL_CHARACTER.test(ad.siteId)
  )
    problems.push(
      `siteId must be 1..${MAX_SITE_ID_BYTES} bytes of printable UTF-8 (got ${JSON.stringify(ad.siteId)})`,
    );
  if (!isNodeId(ad.nodeId))
    problems.push(`nodeId must be 1..63 characters of [a-z0-9-] (got ${JSON.stringify(ad.nodeId)})`);
  if (
    typeof ad.agentVersion !== 'string' ||
    !/^[\x21-\x7e]+$/.test(ad.agentVersion) ||
    ad.agentVersion.length > MAX_AGENT_VERSION_BYTES
  )
    problems.push(
      `agentVersion must be 1..${MAX_AGENT_VERSION_BYTES} printable ASCII characters without spaces`,
    );
  if (!(ROLES as readonly string[]).includes(ad.role))
    problems.push(`role must be one of ${ROLES.join(', ')}`);
  if (!Number.isSafeInteger(ad.term) || ad.term < 0)
    problems.push('term must be a non-negative safe integer');
  if (!Number.isInteger(ad.port) || ad.port < 1 || ad.port > 65535)
    problems.push('port must be an integer in 1..65535');
  if (typeof ad.serverCapable !== 'boolean') problems.push('serverCapable must be a boolean');
  return problems;
}

/** Throws EDGE_DISCOVERY_BAD_ADVERTISEMENT when the advertisement is invalid; returns a copy. */
export function checkedAdvertisement(ad: Advertisement): Advertisement {
  const problems = validateAdvertisement(ad);
  if (problems.length > 0)
    throw new EdgeError(
      'DISCOVERY_BAD_ADVERTISEMENT',
      `invalid discovery advertisement: ${problems.join('; ')}`,
      {
        hint: 'fix the node id, site id, version or port in the agent config',
      },
    );
  return {
    siteId: ad.siteId,
    nodeId: ad.nodeId,
    agentVersion: ad.agentVersion,
    role: ad.role,
    term: ad.term,
    port: ad.port,
    serverCapable: ad.serverCapable,
  };
}

/** Applies an update() change to an advertisement, validating it; throws an EdgeError if invalid. */
export function applyChange(
  ad: Advertisement,
  change: Partial<Pick<Advertisement, 'role' | 'term'>>,
): Advertisement {
  const next = { ...ad };
  if (change.role !== undefined) next.role = change.role;
  if (change.term !== undefined) next.term = change.term;
  return checkedAdvertisement(next);
}

export function closedError(what: string): EdgeError {
  return new EdgeError('DISCOVERY_CLOSED', `${what}: discovery is closed`, {
    hint: 'create a new discovery instance after close()',
  });
}

function copyPeer(p: PeerRecord): PeerRecord {
  return { ...p, addresses: [...p.addresses] };
}

/** Compares peer lists for change notification: everything except lastSeenMs. */
export function peersSignature(peers: readonly PeerRecord[]): string {
  return JSON.stringify(
    peers.map((p) => [
      p.nodeId,
      p.siteId,
      p.agentVersion,
      p.role,
      p.term,
      p.port,
      p.serverCapable,
      p.addresses,
      p.source,
    ]),
  );
}

export function sortPeers(peers: PeerRecord[]): PeerRecord[] {
  return peers.sort((a, b) => (a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0));
}

/**
 * PeerListeners implements the delivery contract of Discovery.onChange for every implementation:
 * asynchronous (microtask), coalesced, snapshot per listener, errors isolated.
 */
export class PeerListeners {
  readonly #listeners = new Set<(peers: PeerRecord[]) => void>();
  readonly #source: () => PeerRecord[];
  readonly #onError: (err: unknown) => void;
  #lastSignature = '[]';
  #scheduled = false;
  #closed = false;

  constructor(source: () => PeerRecord[], onError: (err: unknown) => void = () => {}) {
    this.#source = source;
    this.#onError = onError;
  }

  add(listener: (peers: PeerRecord[]) => void): () => void {
    if (typeof listener !== 'function') throw new TypeError('onChange listener must be a function');
    // Wrap, so that subscribing the same function twice gives two independent subscriptions.
    const wrapped = (peers: PeerRecord[]): void => listener(peers);
    this.#listeners.add(wrapped);
    return () => {
      this.#listeners.delete(wrapped);
    };
  }

  /** Something may have changed: deliver (later) if the peer list differs from the last delivery. */
  changed(): void {
    if (this.#scheduled || this.#closed) return;
    this.#scheduled = true;
    queueMicrotask(() => this.#flush());
  }

  close(): void {
    this.#closed = true;
    this.#listeners.clear();
  }

  #flush(): void {
    this.#scheduled = false;
    if (this.#closed) return;
    let peers: PeerRecord[];
    try {
      peers = this.#source();
    } catch (err) {
      this.#onError(err);
      return;
    }
    const sig = peersSignature(peers);
    if (sig === this.#lastSignature) return;
    this.#lastSignature = sig;
    for (const l of [...this.#listeners]) {
      if (this.#closed) return;
      try {
        l(peers.map(copyPeer));
      } catch (err) {
        this.#onError(err);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// In-memory twin

interface BusMember {
  readonly owner: InMemoryDiscovery;
  advertisement: Advertisement;
  readonly addresses: readonly string[];
  lastSeenMs: number;
  readonly notify: () => void;
}

/**
 * InMemoryDiscoveryBus is the "LAN" of InMemoryDiscovery agents: every started agent on the bus
 * sees every other started agent of its site. `setVisibility` lets the simulator hide agents from
 * each other (a discovery-level partition).
 */
export class InMemoryDiscoveryBus {
  readonly #members = new Set<BusMember>();
  readonly #now: () => number;
  #visible: (from: Advertisement, to: Advertisement) => boolean = () => true;

  constructor(opts: { now?: () => number } = {}) {
    this.#now = opts.now ?? monotonicMs;
  }

  /** Every advertisement currently on the bus, all sites (for dashboards and tests). */
  advertisements(): Advertisement[] {
    return [...this.#members].map((m) => ({ ...m.advertisement }));
  }

  /**
   * `visible(from, to)`: may `to` see `from`? Re-evaluated for everyone at once. Used by the
   * simulator to model a discovery partition; the default shows everyone.
   */
  setVisibility(visible: (from: Advertisement, to: Advertisement) => boolean): void {
    this.#visible = visible;
    this.#notifyAll();
  }

  /** @internal used by InMemoryDiscovery */
  join(
    owner: InMemoryDiscovery,
    advertisement: Advertisement,
    addresses: readonly string[],
    notify: () => void,
  ): void {
    this.#members.add({ owner, advertisement, addresses, lastSeenMs: this.#now(), notify });
    this.#notifyAll();
  }

  /** @internal used by InMemoryDiscovery */
  announce(owner: InMemoryDiscovery, advertisement: Advertisement): void {
    const m = this.#find(owner);
    if (!m) return;
    m.advertisement = advertisement;
    m.lastSeenMs = this.#now();
    this.#notifyAll();
  }

  /** @internal used by InMemoryDiscovery */
  leave(owner: InMemoryDiscovery): void {
    const m = this.#find(owner);
    if (!m) return;
    this.#members.delete(m);
    this.#notifyAll();
  }

  /** @internal used by InMemoryDiscovery */
  peersOf(owner: InMemoryDiscovery): PeerRecord[] {
    const me = this.#find(owner);
    if (!me) return [];
    const out: PeerRecord[] = [];
    for (const m of this.#members) {
      if (m === me) continue;
      const ad = m.advertisement;
      if (ad.siteId !== me.advertisement.siteId || ad.nodeId === me.advertisement.nodeId) continue;
      if (!this.#visible(ad, me.advertisement)) continue;
      out.push({ ...ad, addresses: [...m.addresses], source: 'memory', lastSeenMs: m.lastSeenMs });
    }
    return sortPeers(out);
  }

  #find(owner: InMemoryDiscovery): BusMember | undefined {
    for (const m of this.#members) if (m.owner === owner) return m;
    return undefined;
  }

  #notifyAll(): void {
    for (const m of this.#members) m.notify();
  }
}

export interface InMemoryDiscoveryOptions {
  /** Addresses peers see for this agent (default none: the simulator routes by node id). */
  addresses?: readonly string[];
  /** Called when a listener throws (default: ignored). */
  onListenerError?: (err: unknown) => void;
}

/** InMemoryDiscovery is the in-memory twin of MdnsDiscovery, with the same contract. */
export class InMemoryDiscovery implements Discovery {
  readonly #bus: InMemoryDiscoveryBus;
  readonly #addresses: readonly string[];
  readonly #listeners: PeerListeners;
  #ad: Advertisement;
  #state: 'new' | 'started' | 'closed' = 'new';
  #startPromise: Promise<void> | undefined;
  listenerErrors = 0;

  constructor(bus: InMemoryDiscoveryBus, advertisement: Advertisement, opts: InMemoryDiscoveryOptions = {}) {
    this.#bus = bus;
    this.#ad = checkedAdvertisement(advertisement);
    for (const a of opts.addresses ?? [])
      if (isIP(a) !== 4)
        throw new EdgeError('DISCOVERY_BAD_ADDRESS', `not an IPv4 address: ${JSON.stringify(a)}`);
    this.#addresses = [...(opts.addresses ?? [])];
    this.#listeners = new PeerListeners(
      () => this.peers(),
      (err) => {
        this.listenerErrors++;
        opts.onListenerError?.(err);
      },
    );
  }

  get advertisement(): Advertisement {
    return { ...this.#ad };
  }

  start(): Promise<void> {
    this.#startPromise ??= (async () => {
      if (this.#state === 'closed') throw closedError('start');
      this.#state = 'started';
      this.#bus.join(this, this.#ad, this.#addresses, () => this.#listeners.changed());
    })();
    return this.#startPromise;
  }

  async update(change: Partial<Pick<Advertisement, 'role' | 'term'>>): Promise<void> {
    if (this.#state === 'closed') throw closedError('update');
    this.#ad = applyChange(this.#ad, change);
    if (this.#state === 'started') this.#bus.announce(this, this.#ad);
  }

  peers(): PeerRecord[] {
    return this.#state === 'started' ? this.#bus.peersOf(this) : [];
  }

  onChange(listener: (peers: PeerRecord[]) => void): () => void {
    return this.#listeners.add(listener);
  }

  async close(): Promise<void> {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#listeners.close();
    this.#bus.leave(this);
  }
}

// ---------------------------------------------------------------------------------------------
// Static seeds

/** A peer named in config, for sites where multicast does not work (or as a safety net). */
export interface SeedPeer {
  nodeId: NodeId;
  /** IPv4 literal or a host name (resolved to IPv4 with `lookup`). */
  host: string;
  /** UDP port of the peer's election transport. */
  port: number;
  /** Seeds carry no TXT; default true (a seed can be elected unless config says otherwise). */
  serverCapable?: boolean;
}

export interface StaticSeedDiscoveryOptions {
  /** This agent: seeds with its node id are skipped (one config file can serve the whole site). */
  self: Pick<Advertisement, 'siteId' | 'nodeId'>;
  seeds: readonly SeedPeer[];
  /** Resolves a host name to IPv4 addresses (default: node:dns lookup, family 4). */
  lookup?: (host: string) => Promise<string[]>;
  /** Retry interval for host names that did not resolve (default 30 s). */
  retryMs?: number;
  now?: () => number;
  setTimeout?: (fn: () => void, ms: number) => unknown;
  clearTimeout?: (handle: unknown) => void;
  onListenerError?: (err: unknown) => void;
}

async function defaultLookup(host: string): Promise<string[]> {
  const { lookup } = await import('node:dns/promises');
  const res = await lookup(host, { family: 4, all: true });
  return res.map((r) => r.address);
}

/** Problems with a seed list (empty when fine). */
export function validateSeeds(seeds: readonly SeedPeer[]): string[] {
  const problems: string[] = [];
  const seen = new Set<string>();
  seeds.forEach((s, i) => {
    if (!isNodeId(s.nodeId)) problems.push(`seeds[${i}].nodeId must be 1..63 characters of [a-z0-9-]`);
    if (typeof s.host !== 'string' || s.host.length === 0 || s.host.length > 253)
      problems.push(`seeds[${i}].host must be a host name or IPv4 address`);
    if (!Number.isInteger(s.port) || s.port < 1 || s.port > 65535)
      problems.push(`seeds[${i}].port must be in 1..65535`);
    if (s.serverCapable !== undefined && typeof s.serverCapable !== 'boolean')
      problems.push(`seeds[${i}].serverCapable must be a boolean`);
    if (seen.has(s.nodeId)) problems.push(`seeds[${i}].nodeId ${s.nodeId} appears twice`);
    seen.add(s.nodeId);
  });
  return problems;
}

/**
 * StaticSeedDiscovery reports the seed peers from config, always (source 'seed'), whatever the
 * network says. Seeds have no TXT record, so their role is `starting`, their term 0 and their
 * agentVersion `unknown`: CompositeDiscovery replaces these with mDNS data when mDNS knows the peer.
 * Host names are resolved at start() and retried every `retryMs` until they resolve.
 */
export class StaticSeedDiscovery implements Discovery {
  readonly #self: Pick<Advertisement, 'siteId' | 'nodeId'>;
  readonly #seeds: readonly SeedPeer[];
  readonly #lookup: (host: string) => Promise<string[]>;
  readonly #retryMs: number;
  readonly #now: () => number;
  readonly #setTimeout: (fn: () => void, ms: number) => unknown;
  readonly #clearTimeout: (handle: unknown) => void;
  readonly #listeners: PeerListeners;
  readonly #resolved = new Map<NodeId, { addresses: string[]; at: number }>();
  #state: 'new' | 'started' | 'closed' = 'new';
  #startPromise: Promise<void> | undefined;
  #timer: unknown;
  listenerErrors = 0;

  constructor(opts: StaticSeedDiscoveryOptions) {
    const problems = validateSeeds(opts.seeds);
    if (problems.length > 0)
      throw new EdgeError('DISCOVERY_BAD_SEEDS', `invalid discovery seeds: ${problems.join('; ')}`, {
        hint: 'fix discovery.seeds in the agent config',
      });
    this.#self = { siteId: opts.self.siteId, nodeId: opts.self.nodeId };
    this.#seeds = opts.seeds.filter((s) => s.nodeId !== opts.self.nodeId).map((s) => ({ ...s }));
    this.#lookup = opts.lookup ?? defaultLookup;
    this.#retryMs = opts.retryMs ?? 30_000;
    this.#now = opts.now ?? monotonicMs;
    this.#setTimeout = opts.setTimeout ?? ((fn, ms) => setTimeout(fn, ms));
    this.#clearTimeout = opts.clearTimeout ?? ((h) => clearTimeout(h as ReturnType<typeof setTimeout>));
    this.#listeners = new PeerListeners(
      () => this.peers(),
      (err) => {
        this.listenerErrors++;
        opts.onListenerError?.(err);
      },
    );
  }

  start(): Promise<void> {
    this.#startPromise ??= (async () => {
      if (this.#state === 'closed') throw closedError('start');
      this.#state = 'started';
      const at = this.#now();
      for (const s of this.#seeds)
        if (isIP(s.host) === 4) this.#resolved.set(s.nodeId, { addresses: [s.host], at });
      await this.#resolvePending();
      this.#listeners.changed();
    })();
    return this.#startPromise;
  }

  async update(_change: Partial<Pick<Advertisement, 'role' | 'term'>>): Promise<void> {
    if (this.#state === 'closed') throw closedError('update');
    // Seeds advertise nothing: the peers learn our role and term over the election transport.
  }

  peers(): PeerRecord[] {
    if (this.#state !== 'started') return [];
    return sortPeers(
      this.#seeds.map((s) => {
        const r = this.#resolved.get(s.nodeId);
        return {
          siteId: this.#self.siteId,
          nodeId: s.nodeId,
          agentVersion: 'unknown',
          role: 'starting',
          term: 0,
          port: s.port,
          serverCapable: s.serverCapable ?? true,
          addresses: r ? [...r.addresses] : [],
          source: 'seed',
          lastSeenMs: r?.at ?? 0,
        };
      }),
    );
  }

  onChange(listener: (peers: PeerRecord[]) => void): () => void {
    return this.#listeners.add(listener);
  }

  async close(): Promise<void> {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#listeners.close();
    if (this.#timer !== undefined) this.#clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  async #resolvePending(): Promise<void> {
    const pending = this.#seeds.filter((s) => !this.#resolved.has(s.nodeId));
    await Promise.all(
      pending.map(async (s) => {
        try {
          const addrs = (await this.#lookup(s.host)).filter((a) => isIP(a) === 4);
          if (addrs.length > 0 && this.#state === 'started')
            this.#resolved.set(s.nodeId, { addresses: addrs, at: this.#now() });
        } catch {
          // Unresolvable for now: reported with no address, retried below.
        }
      }),
    );
    if (this.#state !== 'started') return;
    this.#listeners.changed();
    if (this.#seeds.some((s) => !this.#resolved.has(s.nodeId))) {
      this.#timer = this.#setTimeout(() => {
        this.#timer = undefined;
        void this.#resolvePending();
      }, this.#retryMs);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Composite

const SOURCE_RANK: Readonly<Record<PeerSource, number>> = { mdns: 0, memory: 1, seed: 2 };

/**
 * mergePeers merges the peer lists of several sources by node id. The best source wins
 * (mdns > memory > seed): its fields are kept. Addresses are the union, best source first, so a
 * seed's configured address stays available as a fallback.
 */
export function mergePeers(lists: readonly (readonly PeerRecord[])[]): PeerRecord[] {
  const byNode = new Map<NodeId, PeerRecord[]>();
  for (const list of lists) for (const p of list) byNode.set(p.nodeId, [...(byNode.get(p.nodeId) ?? []), p]);
  const out: PeerRecord[] = [];
  for (const group of byNode.values()) {
    group.sort((a, b) => SOURCE_RANK[a.source] - SOURCE_RANK[b.source] || b.lastSeenMs - a.lastSeenMs);
    const best = group[0]!;
    const addresses: string[] = [];
    for (const p of group) for (const a of p.addresses) if (!addresses.includes(a)) addresses.push(a);
    out.push({ ...best, addresses });
  }
  return sortPeers(out);
}

/** discoveryCounters reads a discovery's counters: every finite number its stats() has. */
export function discoveryCounters(d: Discovery): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(d.stats?.() ?? {}))
    if (typeof v === 'number' && Number.isFinite(v)) out[k] = v;
  return out;
}

/** CompositeDiscovery runs several discoveries as one (typically mDNS + static seeds). */
export class CompositeDiscovery implements Discovery {
  readonly #parts: readonly Discovery[];
  readonly #listeners: PeerListeners;
  readonly #unsubscribe: (() => void)[] = [];
  #state: 'new' | 'started' | 'closed' = 'new';
  #startPromise: Promise<void> | undefined;
  listenerErrors = 0;

  constructor(parts: readonly Discovery[], opts: { onListenerError?: (err: unknown) => void } = {}) {
    if (parts.length === 0)
      throw new EdgeError('DISCOVERY_NO_SOURCES', 'CompositeDiscovery needs at least one discovery');
    this.#parts = [...parts];
    this.#listeners = new PeerListeners(
      () => this.peers(),
      (err) => {
        this.listenerErrors++;
        opts.onListenerError?.(err);
      },
    );
    for (const p of this.#parts) this.#unsubscribe.push(p.onChange(() => this.#listeners.changed()));
  }

  start(): Promise<void> {
    this.#startPromise ??= (async () => {
      if (this.#state === 'closed') throw closedError('start');
      this.#state = 'started';
      try {
        await Promise.all(this.#parts.map((p) => p.start()));
      } catch (err) {
        await this.close();
        throw err;
      }
      this.#listeners.changed();
    })();
    return this.#startPromise;
  }

  async update(change: Partial<Pick<Advertisement, 'role' | 'term'>>): Promise<void> {
    if (this.#state === 'closed') throw closedError('update');
    await Promise.all(this.#parts.map((p) => p.update(change)));
  }

  peers(): PeerRecord[] {
    if (this.#state === 'closed') return [];
    return mergePeers(this.#parts.map((p) => p.peers()));
  }
  onChange(listener: (peers: PeerRecord[]) => void): () => void {
    return this.#listeners.add(listener);
  }

  /** stats adds up the parts' counters by name, and counts its own listener errors. */
  stats(): Record<string, number> {
    const sum: Record<string, number> = {};
    for (const p of this.#parts)
      for (const [k, v] of Object.entries(discoveryCounters(p))) sum[k] = (sum[k] ?? 0) + v;
    sum.listenerErrors = (sum.listenerErrors ?? 0) + this.listenerErrors;
    return sum;
  }

  async close(): Promise<void> {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#listeners.close();
    for (const u of this.#unsubscribe) u();
    await Promise.allSettled(this.#parts.map((p) => p.close()));
  }
}
