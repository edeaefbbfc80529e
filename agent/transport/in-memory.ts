/**
 * The in-memory twin of UdpTransport, for unit tests of the agent shell. Messages are delivered
 * asynchronously (on a later turn of the event loop, as datagrams are), with optional loss.
 */
import type { Message, NodeId } from '../../statecharts/messages.ts';
import { DROP_REASONS } from './codec.ts';
import {
  emptyStats,
  type MessageHandler,
  type PeerAddress,
  type Transport,
  type TransportStats,
} from './transport.ts';

export class InMemoryNetwork {
  readonly endpoints = new Map<NodeId, InMemoryTransport>();
  /** Probability that a message is lost; a function of (from, to) for partitions. */
  loss: (from: NodeId, to: NodeId) => number = () => 0;
  private readonly random: () => number;

  constructor(random: () => number = Math.random) {
    this.random = random;
  }

  connect(self: NodeId): InMemoryTransport {
    const t = new InMemoryTransport(self, this);
    this.endpoints.set(self, t);
    return t;
  }

  deliver(msg: Message, from: PeerAddress): void {
    if (this.random() < this.loss(msg.from, msg.to)) return;
    const dest = [...this.endpoints.values()].find((e) => e.address.host === msg.to || e.self === msg.to);
    setImmediate(() => dest?.receive(msg, from));
  }
}

export class InMemoryTransport implements Transport {
  readonly self: NodeId;
  readonly address: PeerAddress;
  private readonly net: InMemoryNetwork;
  private readonly peers = new Map<NodeId, PeerAddress>();
  private readonly placed = new Set<NodeId>();
  private handler: MessageHandler = () => {};
  private readonly counters: TransportStats = emptyStats(DROP_REASONS);
  private closed = false;

  constructor(self: NodeId, net: InMemoryNetwork) {
    this.self = self;
    this.net = net;
    this.address = { host: self, port: 0 };
  }

  setPeer(id: NodeId, addr: PeerAddress): void {
    // As UdpTransport: a hint never moves an address the peer's own datagram placed.
    if (id !== this.self && !this.placed.has(id)) this.peers.set(id, addr);
  }

  releasePeer(id: NodeId): void {
    this.placed.delete(id);
  }

  peerAddress(id: NodeId): PeerAddress | undefined {
    return this.peers.get(id);
  }

  onMessage(handler: MessageHandler): void {
    this.handler = handler;
  }

  send(msg: Message): void {
    if (this.closed) return;
    if (!this.peers.has(msg.to)) {
      this.counters.unknownPeer++;
      return;
    }
    this.counters.sent++;
    this.net.deliver(msg, this.address);
  }

  receive(msg: Message, from: PeerAddress): void {
    if (this.closed) return;
    if (msg.to !== this.self) {
      this.counters.misaddressed++;
      return;
    }
    this.counters.received++;
    this.peers.set(msg.from, from);
    this.placed.add(msg.from);
    try {
      this.handler(msg, from);
    } catch {
      this.counters.handlerErrors++;
    }
  }

  stats(): TransportStats {
    return { ...this.counters, dropped: { ...this.counters.dropped } };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.net.endpoints.delete(this.self);
  }
}
