/**
 * startSnapshotSharing: the part every runtime factory shares (agent/control-plane/k3s-runtime.ts,
 * lab/runtime/lab-control-plane.ts): the secrets that seal snapshot pushes, the store this voter
 * keeps the leader's snapshots in, and its receiver of those pushes. Only server-capable robots
 * (voters) share snapshots: they are the ones that may lead and restore one.
 */
import type { Logger } from 'pino';
import { logSnapshotPush, SnapshotReceiver, type SnapshotKeys, type SnapshotStore } from './snapshots.ts';

export interface SnapshotSharing {
  readonly keys: SnapshotKeys;
  /** The store and the receiver: absent when the robot's config turns the receiver off. */
  readonly store?: SnapshotStore;
  readonly receiver?: SnapshotReceiver;
}

export interface SnapshotSharingOptions {
  readonly self: string;
  /** The robot's site address: its receiver listens there. */
  readonly address: string;
  /** The keys this voter shares with each other voter (Keyring.snapshotKeysFor); none: no sharing. */
  readonly keysFor?: (peer: string) => readonly Buffer[];
  readonly serverCapable: boolean;
  /** Where the kept snapshots live; called only when this robot shares snapshots. */
  readonly store: () => SnapshotStore;
  /** Default true. */
  readonly receive?: boolean;
  /** The largest push accepted (default: the receiver's). */
  readonly maxBytes?: number;
  readonly log: Logger;
}

/** Undefined when this robot shares no snapshots (no keys, or it cannot serve). */
export async function startSnapshotSharing(o: SnapshotSharingOptions): Promise<SnapshotSharing | undefined> {
  if (!o.keysFor || !o.serverCapable) return undefined;
  const keys: SnapshotKeys = { forPeer: o.keysFor };
  if (o.receive === false) return { keys };
  const store = o.store();
  const receiver = await SnapshotReceiver.start({
    self: o.self,
    address: o.address,
    keys,
    store,
    maxBytes: o.maxBytes,
    onPush: logSnapshotPush(o.log, o.self),
  });
  // The receiver never keeps the agent's process alive on its own: the agent's sockets do.
  receiver.server.unref();
  return { keys, store, receiver };
}
