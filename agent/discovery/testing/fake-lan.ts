/**
 * Deterministic test doubles for MdnsDiscovery: a fake clock with fake timers, and a fake LAN that
 * implements the MdnsSocketFactory seam. Packets are turned into the shape dns-packet decodes
 * (strings for types and classes, Buffers for TXT strings) and delivered through the fake clock, so
 * a test controls time completely and sees every packet in `lan.log`.
 */

import type { NetworkInterfaceInfo } from 'node:os';
import type {
  MdnsInterface,
  MdnsSocketFactory,
  MdnsSocketHandlers,
  OutgoingPacket,
  WireAddress,
} from '../mdns.ts';
import type { MdnsRecord } from '../dnssd.ts';

export class FakeClock {
  #now: number;
  #seq = 0;
  readonly #timers = new Map<number, { at: number; fn: () => void }>();

  constructor(start = 1000) {
    this.#now = start;
  }

  readonly now = (): number => this.#now;

  readonly setTimeout = (fn: () => void, ms: number): unknown => {
    const id = ++this.#seq;
    this.#timers.set(id, { at: this.#now + Math.max(0, ms), fn });
    return id;
  };

  readonly clearTimeout = (handle: unknown): void => {
    this.#timers.delete(handle as number);
  };

  pending(): number {
    return this.#timers.size;
  }

  /** Runs every timer due within `ms`, in time order, letting promises settle in between. */
  async advance(ms: number): Promise<void> {
    const target = this.#now + ms;
    for (;;) {
      await settle();
      let nextId: number | undefined;
      let next: { at: number; fn: () => void } | undefined;
      for (const [id, t] of this.#timers) {
        if (t.at > target) continue;
        if (!next || t.at < next.at || (t.at === next.at && id < nextId!)) {
          next = t;
          nextId = id;
        }
      }
      if (!next || nextId === undefined) break;
      this.#timers.delete(nextId);
      this.#now = next.at;
      next.fn();
    }
    this.#now = target;
    await settle();
  }

  /** Advances in steps until `cond()` holds; returns the elapsed fake time. Fails after `maxMs`. */
  async until(cond: () => boolean, maxMs: number, stepMs = 5): Promise<number> {
    const start = this.#now;
    while (!cond()) {
      if (this.#now - start > maxMs) throw new Error(`condition not met within ${maxMs} fake ms`);
      await this.advance(stepMs);
    }
    return this.#now - start;
  }
}

async function settle(): Promise<void> {
  for (let i = 0; i < 4; i++) await new Promise((r) => setImmediate(r));
}

export interface LoggedPacket {
  readonly at: number;
  readonly from: string;
  readonly to: WireAddress | undefined;
  readonly packet: OutgoingPacket;
}

interface Member {
  readonly iface: MdnsInterface;
  readonly handlers: MdnsSocketHandlers;
  closed: boolean;
}

/** What dns-packet's decoder would hand to the 'packet' event. */
export function toDecoded(p: OutgoingPacket): Record<string, unknown> {
  const rec = (rr: MdnsRecord): Record<string, unknown> => ({
    name: rr.name,
    type: rr.type,
    ttl: rr.ttl,
    class: 'IN',
    flush: rr.flush === true,
    data:
      rr.type === 'TXT' ? rr.data.map((s) => Buffer.from(s)) : rr.type === 'SRV' ? { ...rr.data } : rr.data,
  });
  return {
    id: p.id ?? 0,
    type: p.type,
    flags: p.type === 'response' ? 1 << 10 : 0,
    opcode: 'QUERY',
    rcode: 'NOERROR',
    questions: (p.questions ?? []).map((q) => ({ name: q.name, type: q.type, class: 'IN' })),
    answers: (p.answers ?? []).map(rec),
    authorities: (p.authorities ?? []).map(rec),
    additionals: (p.additionals ?? []).map(rec),
  };
}

/** One broadcast domain: every multicast reaches every socket (the sender's too: loopback). */
export class FakeLan {
  readonly log: LoggedPacket[] = [];
  readonly #clock: FakeClock;
  readonly #members = new Set<Member>();
  readonly #latencyMs: number;
  /** Make the next send from this address fail (to test send errors). */
  failSendsFrom = new Set<string>();
  /** Sockets at these addresses hear nothing (a receive buffer overflowing in a flood). */
  deafTo = new Set<string>();

  constructor(clock: FakeClock, opts: { latencyMs?: number } = {}) {
    this.#clock = clock;
    this.#latencyMs = opts.latencyMs ?? 1;
  }

  readonly factory: MdnsSocketFactory = async (iface, handlers) => {
    const m: Member = { iface, handlers, closed: false };
    this.#members.add(m);
    return {
      send: async (packet, to) => {
        if (m.closed) throw new Error('socket closed');
        if (this.failSendsFrom.has(iface.address))
          throw Object.assign(new Error('send ENETUNREACH'), { code: 'ENETUNREACH', syscall: 'send' });
        this.log.push({ at: this.#clock.now(), from: iface.address, to, packet });
        this.deliver(toDecoded(packet), { address: iface.address, port: 5353 }, to);
      },
      close: async () => {
        m.closed = true;
        this.#members.delete(m);
      },
    };
  };

  /** Delivers a decoded packet (anything at all) to every open socket, or to `to` only. */
  deliver(decoded: unknown, from: WireAddress, to?: WireAddress): void {
    for (const m of this.#members) {
      if (to && to.address !== m.iface.address) continue;
      if (this.deafTo.has(m.iface.address)) continue;
      const copy = structuredCloneWithBuffers(decoded);
      this.#clock.setTimeout(() => {
        if (!m.closed) m.handlers.packet(copy, from);
      }, this.#latencyMs);
    }
  }

  /** A datagram the codec could not decode, as the real socket reports it. */
  deliverUndecodable(): void {
    for (const m of this.#members) m.handlers.malformed(new Error('Cannot decode name (bad pointer)'));
  }

  /** Drops a socket without letting it say goodbye (a crashed robot or a pulled cable). */
  unplug(address: string): void {
    for (const m of this.#members)
      if (m.iface.address === address) {
        m.closed = true;
        this.#members.delete(m);
      }
  }

  /** Packets sent by `from` (optionally only those matching `pred`). */
  sentBy(from: string, pred: (p: LoggedPacket) => boolean = () => true): LoggedPacket[] {
    return this.log.filter((p) => p.from === from && pred(p));
  }
}

function structuredCloneWithBuffers(v: unknown): unknown {
  if (Buffer.isBuffer(v)) return Buffer.from(v);
  if (Array.isArray(v)) return v.map(structuredCloneWithBuffers);
  if (v && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = structuredCloneWithBuffers(x);
    return out;
  }
  return v;
}

/** An os.networkInterfaces()-shaped table with one IPv4 interface. */
export function interfaceTable(
  entries: Record<string, { address: string; netmask?: string; internal?: boolean }>,
): () => NodeJS.Dict<NetworkInterfaceInfo[]> {
  return () => {
    const out: NodeJS.Dict<NetworkInterfaceInfo[]> = {};
    for (const [name, e] of Object.entries(entries)) {
      out[name] = [
        {
          address: e.address,
          netmask: e.netmask ?? '255.255.255.0',
          family: 'IPv4',
          mac: '02:00:00:00:00:01',
          internal: e.internal ?? false,
          cidr: `${e.address}/24`,
        },
      ];
    }
    return out;
  };
}
