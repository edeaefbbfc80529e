/**
 * UdpTransport: the Transport over UDP unicast, every datagram authenticated with the key of its
 * (sender, receiver) pair from the robot's keyring (codec.ts, agent/site-key.ts) and checked against
 * a replay window (replay.ts), whose new incarnations are confirmed by a challenge before they count.
 * Election traffic never uses multicast.
 *
 * Socket choice (docs/protocol-wire.md): dgram-as-promised gives a promise-based bind and close;
 * datagrams are sent with Node's own send and one shared callback, without a promise per datagram.
 * Its recv()/async iterator drops datagrams that arrive while the consumer is busy, so
 * datagrams are received through the push listener given to createSocket (Node's own 'message'
 * event), which queues nothing outside the kernel buffer and loses nothing that reached the socket.
 * The kernel receive buffer is raised so a blocked event loop (an fsync, a GC pause) does not
 * overflow it.
 */
import { randomUint32 } from '../random.ts';
import type { RemoteInfo, SocketOptions } from 'node:dgram';
import { lookup as resolve } from 'node:dns';
import { isIPv4 } from 'node:net';
import DgramAsPromised, { type SocketAsPromised } from 'dgram-as-promised';
import type { Message, NodeId } from '../../statecharts/messages.ts';
import {
  DROP_REASONS,
  decode,
  decodeIncarnationFrame,
  encode,
  encodeIncarnationFrame,
  type FrameKey,
  type IncarnationFrame,
  type KeyLookup,
  type ReceiveKey,
} from './codec.ts';
import { EdgeError } from '../errors.ts';
import { monotonicMs } from '../clock.ts';
import { ReplayWindow } from './replay.ts';
import {
  emptyStats,
  type MessageHandler,
  type PeerAddress,
  type Transport,
  type TransportStats,
} from './transport.ts';

/**
 * lookupAddress answers dgram's address lookup, which it runs on every send. Node's default
 * (dns.lookup) defers even an IP literal to the next tick: one more queued callback per datagram
 * on a path an idle leader takes 45 times a second. Peers' addresses are IP literals (from mDNS and
 * from the source address of their datagrams), so they are answered at once; a seed given as a host
 * name still goes through the resolver.
 */
const lookupAddress = ((
  address: string,
  family: number,
  done: (err: Error | null, address: string, family: number) => void,
) => {
  if (isIPv4(address)) done(null, address, 4);
  else resolve(address, family, done);
}) as unknown as SocketOptions['lookup'];

/** A challenge to one (sender, source address) at most this often: a replayer cannot make us chatty. */
const CHALLENGE_INTERVAL_MS = 200;
/** Challenges we send, and answers we give, per second at most (each a ~70-byte datagram). */
const CHALLENGES_PER_SECOND = 50;
const ANSWERS_PER_SECOND = 50;
/** A challenge's nonce is good for this long; a new one is drawn after. */
const NONCE_LIFETIME_MS = 5000;
/** Senders with an open challenge, at most (least recent dropped first). */
const MAX_OPEN_CHALLENGES = 64;
/**
 * Messages of an unconfirmed incarnation held until it answers (then delivered, in order) or its
 * nonce expires (then dropped): first contact costs one round trip, not the messages. Bounded in
 * all (each message is at most one datagram), so replays cannot make the hold grow.
 */
const MAX_HELD_MESSAGES = 512;

interface HeldMessage {
  readonly incarnation: number;
  readonly counter: number;
  readonly msg: Message;
  readonly at: number;
}

/** A per-second budget: `take` says whether one more fits in the current second. */
class Budget {
  readonly perSecond: number;
  #left: number;
  #at = -Infinity;
  constructor(perSecond: number) {
    this.perSecond = perSecond;
    this.#left = perSecond;
  }
  take(now: number): boolean {
    if (now - this.#at >= 1000) {
      this.#left = this.perSecond;
      this.#at = now;
    }
    if (this.#left <= 0) return false;
    this.#left--;
    return true;
  }
}

interface OpenChallenge {
  readonly nonce: number;
  readonly issuedAt: number;
  /** Source address:port → when we last challenged it. */
  readonly sentTo: Map<string, number>;
}

/** The keys the transport authenticates with: agent/site-key.ts Keyring. */
export interface TransportKeys {
  sendKey(peer: NodeId): FrameKey | undefined;
  receiveKey(peer: NodeId, generation: number): ReceiveKey | undefined;
  /** Called once a frame under receiveKey(peer, generation) verified: a keyring may keep that key. */
  confirmSender?(peer: NodeId, generation: number): void;
}

export interface UdpTransportOptions {
  readonly self: NodeId;
  readonly siteId: string;
  readonly keys: TransportKeys;
  readonly bindAddress?: string;
  /** 0 picks a free port (tests). */
  readonly port: number;
  readonly recvBufferBytes?: number;
  /** Monotonic clock in ms (default monotonicMs, agent/clock.ts). */
  readonly now?: () => number;
}

export class UdpTransport implements Transport {
  readonly self: NodeId;
  private readonly socket: SocketAsPromised;
  private readonly opts: UdpTransportOptions;
  private keys: TransportKeys;
  private readonly lookup: KeyLookup = (peer, generation) => this.keys.receiveKey(peer, generation);
  /** What decode checks every datagram against; built once, as the site id and lookup never change. */
  private readonly decodeContext: { readonly siteId: string; readonly key: KeyLookup };
  private readonly peers = new Map<NodeId, PeerAddress>();
  /** Peers whose address came from their own authenticated datagram: hints no longer move it. */
  private readonly placed = new Set<NodeId>();
  private readonly replay = new ReplayWindow();
  private readonly incarnation = randomUint32();
  private counter = 0;
  private readonly now: () => number;
  private readonly challenges = new Map<NodeId, OpenChallenge>();
  private readonly challengeBudget = new Budget(CHALLENGES_PER_SECOND);
  private readonly answerBudget = new Budget(ANSWERS_PER_SECOND);
  private readonly held = new Map<NodeId, HeldMessage[]>();
  private heldCount = 0;
  private handler: MessageHandler = () => {};
  private readonly counters: TransportStats = emptyStats(DROP_REASONS);
  private closed = false;
  private readonly afterSend = (err: Error | null): void => {
    if (err) this.counters.sendErrors++;
  };

  private constructor(opts: UdpTransportOptions, socket: SocketAsPromised) {
    this.self = opts.self;
    this.opts = opts;
    this.keys = opts.keys;
    this.decodeContext = { siteId: opts.siteId, key: this.lookup };
    this.socket = socket;
    this.now = opts.now ?? monotonicMs;
  }

  static async open(opts: UdpTransportOptions): Promise<UdpTransport> {
    // The listener is registered at creation, before the transport object exists: it forwards through this holder.
    const holder: { transport?: UdpTransport } = {};
    const socket = DgramAsPromised.createSocket(
      { type: 'udp4', reuseAddr: false, lookup: lookupAddress },
      (msg, rinfo) => holder.transport?.receive(msg, rinfo),
    );
    const t = new UdpTransport(opts, socket);
    holder.transport = t;
    // A socket error after bind (ICMP unreachable on some kernels) must not kill the agent.
    socket.socket.on('error', () => {
      t.counters.sendErrors++;
    });
    const address = opts.bindAddress ?? '0.0.0.0';
    try {
      await socket.bind(opts.port, address);
    } catch (err) {
      socket.socket.close();
      const code = (err as NodeJS.ErrnoException).code;
      throw new EdgeError(
        'TRANSPORT_BIND',
        `cannot bind UDP ${address}:${opts.port}: ${code ?? String(err)}`,
        {
          hint:
            code === 'EADDRINUSE'
              ? `another process holds UDP port ${opts.port} (a second edgectl agent? see ss -ulpn): stop it, or move the site to a free port: network.port in agent.yaml, discovery.port in the inventory`
              : 'set network.bindAddress to an address of this robot (or 0.0.0.0) and network.port to a free port',
          cause: err,
        },
      );
    }
    try {
      socket.setRecvBufferSize(opts.recvBufferBytes ?? 1 << 20);
    } catch {
      // The kernel caps it (net.core.rmem_max); the default still works.
    }
    return t;
  }

  /** The bound UDP port. */
  get port(): number {
    return this.socket.address().port;
  }

  setPeer(id: NodeId, addr: PeerAddress): void {
    if (id !== this.self && !this.placed.has(id)) this.peers.set(id, addr);
  }

  releasePeer(id: NodeId): void {
    this.placed.delete(id);
  }

  /** An authenticated datagram of a confirmed incarnation says where its sender is. */
  private place(id: NodeId, addr: PeerAddress): void {
    this.peers.set(id, addr);
    this.placed.add(id);
  }

  peerAddress(id: NodeId): PeerAddress | undefined {
    return this.peers.get(id);
  }

  onMessage(handler: MessageHandler): void {
    this.handler = handler;
  }

  /**
   * setKeys replaces the keyring (a key file reloaded on SIGHUP, during edgectl site rotate-keys):
   * the next datagram sent or received uses the new keys; nothing else is reset.
   */
  setKeys(keys: TransportKeys): void {
    this.keys = keys;
  }

  send(msg: Message): void {
    if (this.closed) return;
    const addr = this.peers.get(msg.to);
    if (!addr) {
      this.counters.unknownPeer++;
      return;
    }
    const key = this.keys.sendKey(msg.to);
    if (!key) {
      this.counters.noKey++;
      return;
    }
    let datagram: Buffer;
    try {
      datagram = encode(msg, {
        siteId: this.opts.siteId,
        key,
        incarnation: this.incarnation,
        counter: this.counter++,
      });
    } catch {
      this.counters.sendErrors++; // too large: a bug upstream; the election resends what matters
      return;
    }
    this.counters.sent++;
    // Node's own send with one shared callback: no promise per datagram on a path an idle leader takes 40 times a second.
    this.socket.socket.send(datagram, addr.port, addr.host, this.afterSend);
  }

  private receive(buf: Buffer, rinfo: RemoteInfo): void {
    const ctx = this.decodeContext;
    const r = decode(buf, ctx);
    if (!r.ok) {
      if (r.reason === 'unknown-type') {
        const f = decodeIncarnationFrame(buf, ctx);
        if (f.ok) {
          this.keys.confirmSender?.(f.sender, f.generation);
          return this.onIncarnationFrame(f.frame, f.incarnation, f.counter, rinfo);
        }
      }
      this.counters.dropped[r.reason]++;
      return;
    }
    this.keys.confirmSender?.(r.sender, r.generation);
    if (r.msg.to !== this.self) {
      this.counters.misaddressed++;
      return;
    }
    const verdict = this.replay.check(r.sender, r.incarnation, r.counter);
    if (verdict === 'replay') {
      this.counters.dropped.replay++;
      return;
    }
    if (verdict === 'unconfirmed') {
      // A sender we do not know yet, or one that says it rebooted: nothing of it counts, and its
      // address stays where it was, until its incarnation answers a challenge (replay.ts).
      this.hold(r.sender, { incarnation: r.incarnation, counter: r.counter, msg: r.msg, at: this.now() });
      this.challenge(r.sender, rinfo);
      return;
    }
    // An authenticated, fresh datagram of a confirmed incarnation tells us where its sender is now
    // (a robot may change address on roaming). Nothing else moves a peer's address.
    const from = { host: rinfo.address, port: rinfo.port };
    this.place(r.sender, from);
    this.deliver(r.msg, from);
  }

  private deliver(msg: Message, from: PeerAddress): void {
    this.counters.received++;
    try {
      this.handler(msg, from);
    } catch {
      this.counters.handlerErrors++;
    }
  }

  private hold(sender: NodeId, m: HeldMessage): void {
    if (this.heldCount >= MAX_HELD_MESSAGES) this.dropStaleHeld(m.at);
    if (this.heldCount >= MAX_HELD_MESSAGES) {
      this.counters.dropped.unconfirmed++;
      return;
    }
    const list = this.held.get(sender);
    if (list) list.push(m);
    else this.held.set(sender, [m]);
    this.heldCount++;
  }

  /** Drops held messages whose challenge has expired: their incarnation never answered. */
  private dropStaleHeld(now: number): void {
    for (const [sender, list] of this.held) {
      const keep = list.filter((m) => now - m.at <= NONCE_LIFETIME_MS);
      this.counters.dropped.unconfirmed += list.length - keep.length;
      this.heldCount -= list.length - keep.length;
      if (keep.length === 0) this.held.delete(sender);
      else this.held.set(sender, keep);
    }
  }

  /** Asks `sender` (at the datagram's source) to prove that its incarnation is alive. */
  private challenge(sender: NodeId, rinfo: RemoteInfo): void {
    const now = this.now();
    let open = this.challenges.get(sender);
    if (open === undefined || now - open.issuedAt > NONCE_LIFETIME_MS) {
      open = {
        nonce: randomUint32() * 2 ** 16 + (randomUint32() & 0xffff),
        issuedAt: now,
        sentTo: new Map(),
      };
      this.challenges.delete(sender);
      if (this.challenges.size >= MAX_OPEN_CHALLENGES)
        this.challenges.delete(this.challenges.keys().next().value as NodeId);
      this.challenges.set(sender, open);
    }
    const where = `${rinfo.address}:${rinfo.port}`;
    if (now - (open.sentTo.get(where) ?? -Infinity) < CHALLENGE_INTERVAL_MS) return;
    if (!this.challengeBudget.take(now)) return;
    if (open.sentTo.size >= 8) open.sentTo.delete(open.sentTo.keys().next().value as string);
    open.sentTo.set(where, now);
    this.counters.challengesSent++;
    this.sendFrame({ kind: 'challenge', from: this.self, to: sender, nonce: open.nonce }, rinfo);
  }

  private onIncarnationFrame(
    f: IncarnationFrame,
    incarnation: number,
    counter: number,
    rinfo: RemoteInfo,
  ): void {
    if (f.to !== this.self) {
      this.counters.misaddressed++;
      return;
    }
    if (f.kind === 'challenge') {
      // Answered wherever it came from, without trusting it: the answer proves only that we are
      // alive, and the budget bounds what replayed challenges can make us send.
      if (!this.answerBudget.take(this.now())) return;
      this.counters.challengesAnswered++;
      this.sendFrame({ kind: 'answer', from: this.self, to: f.from, nonce: f.nonce }, rinfo);
      return;
    }
    const open = this.challenges.get(f.from);
    if (open === undefined || open.nonce !== f.nonce || this.now() - open.issuedAt > NONCE_LIFETIME_MS) {
      this.counters.dropped.unconfirmed++;
      return;
    }
    this.challenges.delete(f.from);
    if (
      this.replay.confirm(f.from, incarnation) !== 'ok' ||
      this.replay.check(f.from, incarnation, counter) !== 'ok'
    ) {
      // Only if that incarnation was retired: a newer one of the sender already answered.
      this.counters.dropped.replay++;
      return;
    }
    this.counters.incarnationsConfirmed++;
    const from = { host: rinfo.address, port: rinfo.port };
    this.place(f.from, from);
    // What the confirmed incarnation sent meanwhile, in order; the rest (a replayed earlier boot's
    // frames, say) is dropped.
    const list = this.held.get(f.from) ?? [];
    this.held.delete(f.from);
    this.heldCount -= list.length;
    const now = this.now();
    for (const m of list) {
      const fresh = m.incarnation === incarnation && now - m.at <= NONCE_LIFETIME_MS;
      if (fresh && this.replay.check(f.from, m.incarnation, m.counter) === 'ok') this.deliver(m.msg, from);
      else this.counters.dropped[fresh ? 'replay' : 'unconfirmed']++;
    }
  }

  private sendFrame(f: IncarnationFrame, to: RemoteInfo): void {
    if (this.closed) return;
    const key = this.keys.sendKey(f.to);
    if (!key) {
      this.counters.noKey++;
      return;
    }
    let datagram: Buffer;
    try {
      datagram = encodeIncarnationFrame(f, {
        siteId: this.opts.siteId,
        key,
        incarnation: this.incarnation,
        counter: this.counter++,
      });
    } catch {
      this.counters.sendErrors++;
      return;
    }
    this.socket.socket.send(datagram, to.port, to.address, this.afterSend);
  }

  stats(): TransportStats {
    return { ...this.counters, dropped: { ...this.counters.dropped } };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.socket.close().catch(() => {});
  }
}
