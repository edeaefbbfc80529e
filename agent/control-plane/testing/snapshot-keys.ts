/**
 * sharedSnapshotKeys: one snapshot secret shared by every robot in `servers`, for tests of the
 * snapshot push itself. Robots hold pair keys (agent/site-key.ts Keyring.snapshotKeysFor); these
 * tests need only that two robots share a secret and that anyone else has none.
 */
import type { NodeId } from '../../../statecharts/messages.ts';
import type { SnapshotKeys } from '../snapshots.ts';

export function sharedSnapshotKeys(secret: Uint8Array, servers: readonly NodeId[]): SnapshotKeys {
  const members = new Set(servers);
  return { forPeer: (peer) => (members.has(peer) ? [secret] : []) };
}
