/**
 * A snapshot receiver in a process of its own, so that a test can read its resident memory from
 * /proc while it is attacked (snapshot-receiver.test.ts). It listens on 127.0.0.1 on a free port,
 * follows r1 as the leader of term 7, and answers `stats` messages on its IPC channel with the
 * receiver's counters and the files in its store.
 *
 *   node snapshot-receiver-child.ts <store dir> <site key hex>
 *
 * The test runs it bundled, as the robot runs the agent (agent/build.ts): run as TypeScript source,
 * Node's type stripping alone would add some 50 MB to its memory.
 */
import { readdirSync } from 'node:fs';
import { SnapshotReceiver, SnapshotStore } from '../../agent/control-plane/snapshots.ts';
import { sharedSnapshotKeys } from '../../agent/control-plane/testing/snapshot-keys.ts';

const [storeDir, keyHex] = process.argv.slice(2);
if (!storeDir || !keyHex) throw new Error('usage: snapshot-receiver-child.ts <store dir> <site key hex>');
const store = new SnapshotStore(storeDir);
void SnapshotReceiver.start({
  self: 'r2',
  address: '127.0.0.1',
  port: 0,
  keys: sharedSnapshotKeys(Buffer.from(keyHex, 'hex'), ['r1', 'r2', 'r3']),
  store,
}).then((receiver) => {
  receiver.setSiteView({ leadership: () => ({ term: 7, leader: 'r1' }), committedSnapshots: () => [] });
  process.on('message', (m) => {
    if (m === 'stats') process.send?.({ stats: receiver.stats(), files: readdirSync(store.dir) });
    if (m === 'stop') void receiver.close().then(() => process.disconnect());
  });
  process.send?.({ port: receiver.port });
});
