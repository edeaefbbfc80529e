import assert from 'node:assert/strict';
import { test } from 'node:test';
import { powerOff } from './lab.ts';

test('power-off of a set is one power loss: every robot is killed before any is waited for', async () => {
  const calls: string[] = [];
  const robots = [1, 2, 3].map((pid) => ({ agentPid: pid, powered: true, paused: pid === 2 }));
  await powerOff(robots, {
    signal: (pid, sig) => calls.push(`${sig} ${pid}`),
    gone: async (pid) => {
      calls.push(`wait ${pid}`);
      // Each robot takes a while to be reaped, as a real process group can.
      await new Promise((r) => setTimeout(r, 5));
    },
  });
  assert.deepEqual(calls, ['SIGKILL 1', 'SIGKILL 2', 'SIGKILL 3', 'wait 1', 'wait 2', 'wait 3']);
  assert.ok(robots.every((r) => !r.powered && !r.paused));
});
