/**
 * Transport carries election messages between the robots of one site.
 *
 * Delivery contract: best effort, like UDP. A message may be lost, duplicated or reordered; the
 * election tolerates all three. `send` never throws and never blocks: failures are counted in
 * stats(). The message handler is called from the event loop, one message at a time, never
 * concurrently; it must not throw (a throw is caught and counted) and should not block, since that
 * delays every later datagram. Lifecycle: open, then close() once (idempotent).
 */
import type { Message, NodeId } from '../../statecharts/messages.ts';
import type { DropReason } from './codec.ts';

export interface PeerAddress {
  readonly host: string;
  readonly port: number;
}

export interface TransportStats {
  sent: number;
  sendErrors: number;
  received: number;
  /** Datagrams refused by the codec, by reason (forged, replayed, truncated, …). */
  dropped: Record<DropReason, number>;
  /** Authenticated messages addressed to another robot. */
  misaddressed: number;
  /** Messages for a peer with no known address (not yet discovered). */
  unknownPeer: number;
  /** Messages for a peer this robot holds no key for (a worker addressing a worker, a refused robot). */
  noKey: number;
  /** The handler threw (a bug; the message is dropped, the transport carries on). */
  handlerErrors: number;
  /** Challenges sent to a sender whose incarnation was not confirmed yet (first contact, reboot, replay). */
  challengesSent: number;
  /** Challenges this transport answered. */
  challengesAnswered: number;
  /** Incarnations confirmed by an answer to our challenge. */
  incarnationsConfirmed: number;
}

export type MessageHandler = (msg: Message, from: PeerAddress) => void;

export interface Transport {
  readonly self: NodeId;
  send(msg: Message): void;
  /**
   * A hint of where to reach a peer (from discovery or seeds: unauthenticated). A hint is used until
   * the peer's own authenticated datagram tells us where it is, and never replaces that: only an
   * authenticated datagram from the peer moves its address (or releasePeer).
   */
  setPeer(id: NodeId, addr: PeerAddress): void;
  /**
   * The peer is gone (the agent's membership called a worker dead): the next hint places it again,
   * as before it ever spoke. A worker speaks only when spoken to, so one that comes back with a new
   * DHCP lease is found only at the address its advertisement gives. Voters are never released:
   * they find the leader themselves (they campaign), and a forged advertisement must not aim the
   * leader's heartbeats at another host.
   */
  releasePeer(id: NodeId): void;
  /**
   * Where the peer is reached: the transport is the one owner of a peer's address, and the agent
   * reads it here for everything else (joins, snapshot pushes, replicas, /status, /site).
   */
  peerAddress(id: NodeId): PeerAddress | undefined;
  onMessage(handler: MessageHandler): void;
  stats(): TransportStats;
  close(): Promise<void>;
}

export function emptyStats(reasons: readonly DropReason[]): TransportStats {
  return {
    sent: 0,
    sendErrors: 0,
    received: 0,
    dropped: Object.fromEntries(reasons.map((r) => [r, 0])) as Record<DropReason, number>,
    misaddressed: 0,
    unknownPeer: 0,
    noKey: 0,
    handlerErrors: 0,
    challengesSent: 0,
    challengesAnswered: 0,
    incarnationsConfirmed: 0,
  };
}
