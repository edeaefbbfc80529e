/**
 * A child process that runs one real MdnsDiscovery (inside a network namespace) and is driven by
 * its parent over the Node IPC channel: agent/discovery/testing/remote.ts is the other end.
 *
 * argv[2]: JSON { advertisement, interfaces?, members? }. Messages in: { id, op: 'start' | 'update' |
 * 'close' | 'stats' | 'cache' | 'memory' | 'names', arg? }. Messages out: { kind: 'reply', id, ok, result | error } and
 * { kind: 'peers', peers, at } on every onChange. `at`, `calledAt`, `resolvedAt`: wall-clock ms
 * (performance.timeOrigin + performance.now()), comparable across the test's processes. Exits when the parent disconnects.
 */

import { MdnsDiscovery } from '../mdns.ts';
import type { Advertisement } from '../discovery.ts';

interface Config {
  advertisement: Advertisement;
  interfaces?: string[];
  members?: string[];
}

const cfg = JSON.parse(process.argv[2] ?? '{}') as Config;
/** Wall-clock ms with sub-ms resolution, comparable between processes on one machine. */
const stamp = (): number => performance.timeOrigin + performance.now();
const send = (msg: unknown): void => {
  if (process.connected) process.send?.(msg);
};

const discovery = new MdnsDiscovery({
  advertisement: cfg.advertisement,
  ...(cfg.interfaces ? { interfaces: cfg.interfaces } : {}),
  ...(cfg.members ? { members: cfg.members } : {}),
  onWarning: (message, err) => process.stderr.write(`warning: ${message}${err ? `: ${String(err)}` : ''}\n`),
});
discovery.onChange((peers) => send({ kind: 'peers', peers, at: stamp() }));

process.on('message', (raw) => {
  const msg = raw as { id: number; op: string; arg?: unknown };
  void (async () => {
    try {
      let result: unknown;
      const calledAt = stamp();
      switch (msg.op) {
        case 'start':
          await discovery.start();
          result = { ...discovery.names(), calledAt, resolvedAt: stamp() };
          break;
        case 'update':
          await discovery.update(msg.arg as Partial<Pick<Advertisement, 'role' | 'term'>>);
          break;
        case 'close':
          await discovery.close();
          result = { calledAt, resolvedAt: stamp() };
          break;
        case 'stats':
          result = discovery.stats();
          break;
        case 'cache':
          result = discovery.cacheSizes();
          break;
        case 'memory':
          result = process.memoryUsage();
          break;
        case 'names':
          result = { ...discovery.names(), phase: discovery.phase };
          break;
        default:
          throw new Error(`unknown op ${msg.op}`);
      }
      send({ kind: 'reply', id: msg.id, ok: true, result });
    } catch (err) {
      const e = err as { message?: string; code?: string };
      send({
        kind: 'reply',
        id: msg.id,
        ok: false,
        error: { message: e.message ?? String(err), code: e.code },
      });
    }
  })();
});

process.on('disconnect', () => {
  void discovery.close().finally(() => process.exit(0));
});
