/**
 * UdpTransport: the Transport over UDP unicast, every datagram authenticated with the key of its
 * (sender, receiver) pair from the robot's keyring (codec.ts, agent/site-key.ts) and checked against
 * a replay window (replay.ts). Election traffic never uses multicast.
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
import { DROP_REASONS, decode, encode, type FrameKey, type KeyLookup, type ReceiveKey } from './codec.ts';
import { EdgeError } from '../errors.ts';
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
}

export class UdpTransport implements Transport {
  readonly self: NodeId;
  private readonly socket: SocketAsPromised;
  private readonly opts: UdpTransportOptions;
  private keys: TransportKeys;
  private readonly lookup: KeyLookup = (peer, generation) => this.keys.receiveKey(peer, generation);
  private readonly peers = new Map<NodeId, PeerAddress>();
  private readonly replay = new ReplayWindow();
  private readonly incarnation = randomUint32();
  private counter = 0;
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
    this.socket = socket;
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
    if (id !== this.self) this.peers.set(id, addr);
  }

  peerAddress(id: NodeId): PeerAddress | undefined {
    return this.peers.get(id);
  }

  /**
   * setKeys replaces the keyring (a key file reloaded on SIGHUP, during edgectl site rotate-keys):
   * the next datagram sent or received uses the new keys; nothing else is reset.
   */
  setKeys(keys: TransportKeys): void {
    this.keys = keys;
  }

  onMessage(handler: MessageHandler): void {
    this.handler = handler;
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
    const r = decode(buf, { siteId: this.opts.siteId, key: this.lookup, replay: this.replay });
    if (!r.ok) {
      this.counters.dropped[r.reason]++;
      return;
    }
    this.keys.confirmSender?.(r.sender, r.generation);
    if (r.msg.to !== this.self) {
      this.counters.misaddressed++;
      return;
    }
    this.counters.received++;
    // An authenticated, fresh datagram tells us where its sender is now (a robot may change address on roaming).
    const from = { host: rinfo.address, port: rinfo.port };
    this.peers.set(r.sender, from);
    try {
      this.handler(r.msg, from);
    } catch {
      this.counters.handlerErrors++;
    }
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
