/** The one contract every ControlPlaneRuntime passes; the lab and k3s runtimes will run it too. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { ControlPlaneRuntime } from './runtime.ts';

export function describeRuntimeContract(name: string, make: () => Promise<ControlPlaneRuntime>): void {
  describe(`ControlPlaneRuntime contract: ${name}`, () => {
    test('start serves the epoch and gives access to its API server; stop clears it', async () => {
      const rt = await make();
      try {
        await rt.startServer(3);
        assert.deepEqual(rt.status().server, { epoch: 3, state: 'serving' });
        assert.ok(['kubeconfig', 'token', 'objects'].includes(rt.apiServer().kind));
        await rt.stopServer(3);
        assert.equal(rt.status().server, null);
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

    test('no API server is reachable while nothing serves', async () => {
      const rt = await make();
      try {
        assert.throws(() => rt.apiServer(), /serv/);
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
