import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { AgentStatus } from '../../agent/agent.ts';
import type { CommandRunner } from '../../agent/exec/runner.ts';
import { parseInventory } from '../bootstrap/inventory.ts';
import { SiteFileSource } from './source.ts';
import { EMPTY_TRACKER, nextView } from './view.ts';

const inventory = parseInventory({
  site: { id: 'dock' },
  robots: ['r1', 'r2', 'r3'].map((name, i) => ({
    name,
    address: `10.77.40.${i + 1}`,
    ssh: { user: 'edgectl', keyFile: 'id' },
    serverCapable: true,
  })),
});

const status = (node: string, role: string): AgentStatus =>
  ({
    node,
    site: 'dock',
    role,
    voter: true,
    witness: false,
    term: 4,
    leader: 'r1',
    quorum: { voters: 3, reachable: 3, ok: true, noQuorumSince: null },
    commitIndex: 9,
    lifecycle: role === 'leader' ? 'leading.serving' : 'following.ready',
    controlPlane: {
      runtime: 'k3s',
      server: role === 'leader' ? { epoch: 4, state: 'serving' } : null,
      worker: role === 'leader' ? null : { leader: 'r1', epoch: 4, state: 'ready' },
      siteAppliedEpoch: 4,
    },
    members: [],
    lastErrors: [],
    transport: {},
    discovery: {},
    uptimeMs: 1,
  }) as unknown as AgentStatus;

test('a bootstrapped site is sampled over one kept connection per robot; one out of reach shows as not answering', async () => {
  const connects: string[] = [];
  const closed: string[] = [];
  let r3Reachable = false;
  const source = new SiteFileSource(inventory, async (robot) => {
    connects.push(robot.name);
    if (robot.name === 'r3' && !r3Reachable) throw new Error('timed out');
    return {
      target: robot.name,
      run: async () => ({
        code: 0,
        stdout: JSON.stringify(status(robot.name, robot.name === 'r1' ? 'leader' : 'follower')),
        stderr: '',
      }),
      close: async () => void closed.push(robot.name),
    } as unknown as CommandRunner;
  });
  const first = await source.sample();
  assert.equal(first.leader, 'r1');
  assert.equal(first.term, 4);
  const rows = nextView(EMPTY_TRACKER, first).view.robots;
  assert.deepEqual(
    rows.map((r) => [r.name, r.power, r.role]),
    [
      ['r1', 'on', 'leader'],
      ['r2', 'on', 'follower'],
      ['r3', 'no answer', '-'],
    ],
  );
  // The next sample keeps r1's and r2's connections and tries r3 again.
  r3Reachable = true;
  const second = await source.sample();
  assert.equal(second.robots.find((r) => r.name === 'r3')!.status?.node, 'r3');
  assert.deepEqual(connects.sort(), ['r1', 'r2', 'r3', 'r3']);
  assert.equal(source.canFault, false);
  await assert.rejects(source.fault(), /read-only/);
  await source.close();
  assert.deepEqual(closed.sort(), ['r1', 'r2', 'r3']);
});
