import assert from 'node:assert/strict';
import { test } from 'node:test';
import { InMemoryControlPlane } from './in-memory.ts';
import { describeRuntimeContract } from '../runtime.contract.ts';

describeRuntimeContract('in-memory', async () => new InMemoryControlPlane('r1', { delayMs: 1 }));

test('injected start failures reject with a coded error, then starts succeed', async () => {
  const rt = new InMemoryControlPlane('r1', { failStarts: 1 });
  await assert.rejects(rt.startServer(1), /simulated start failure/);
  await rt.startServer(1);
  assert.equal(rt.status().server?.state, 'serving');
});
