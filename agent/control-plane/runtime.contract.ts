/** The one contract every ControlPlaneRuntime passes; the lab and k3s runtimes will run it too. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { ControlPlaneRuntime } from './runtime.ts';

export function describeRuntimeContract(name: string, make: () => Promise<ControlPlaneRuntime>): void {
  describe(`ControlPlaneRuntime contract: ${name}`, () => {
    test('start serves the epoch and gives its API server for it alone; stop clears both', async () => {
      const rt = await make();
      try {
        await rt.startServer(3);
        assert.deepEqual(rt.status().server, { epoch: 3, state: 'serving' });
        const api = await rt.siteServer(3);
        // The API server takes the site's objects (the LeaderSite's writes).
        const ns = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'site-contract' } };
        await api.apply(ns);
        assert.equal(
          (await api.get({ apiVersion: 'v1', kind: 'Namespace', name: 'site-contract' }))?.metadata.name,
          'site-contract',
        );
        // Another epoch's server is not this one's.
        await assert.rejects(rt.siteServer(4));
        await rt.stopServer(3);
        assert.equal(rt.status().server, null);
        // A robot that stopped serving gives no way to write the site.
        await assert.rejects(rt.siteServer(3));
      } finally {
        await rt.close();
      }
    });

    test('stop and reset are idempotent, also when nothing runs', async () => {
      const rt = await make();
      try {
        await rt.stopServer(1);
        await rt.stopServer(1);
        await rt.resetWorker();
        await rt.resetWorker();
        assert.equal(rt.status().server, null);
        assert.equal(rt.status().worker, null);
      } finally {
        await rt.close();
      }
    });

    test('the API server of an epoch this robot does not serve is refused', async () => {
      const rt = await make();
      try {
        await assert.rejects(rt.siteServer(9));
      } finally {
        await rt.close();
      }
    });

    test('a worker joins a leader, and rejoins another after reset', async () => {
      const rt = await make();
      try {
        await rt.joinAsWorker({ id: 'l1', host: '127.0.0.1' }, 2);
        assert.deepEqual(rt.status().worker, { leader: 'l1', epoch: 2, state: 'ready' });
        await rt.resetWorker();
        await rt.joinAsWorker({ id: 'l2', host: '127.0.0.1' }, 3);
        assert.deepEqual(rt.status().worker, { leader: 'l2', epoch: 3, state: 'ready' });
      } finally {
        await rt.close();
      }
    });
  });
}
