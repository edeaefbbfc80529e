import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkInventory } from './inventory.ts';
import { inventoryWorkers, syncMembers } from './members.ts';
import { RobotTwin, twinSiteMembers, type TwinSiteMembers } from './testing/robot-twin.ts';

const NAMES = ['r1', 'r2', 'r3', 'w1', 'w2'];

function inventory() {
  const r = checkInventory({
    site: { id: 'members-cli' },
    voters: ['r1', 'r2', 'r3'],
    robots: NAMES.map((n, i) => ({
      name: n,
      address: `10.77.31.${i + 1}`,
      ssh: { user: 'edgectl', keyFile: 'id_ed25519' },
      serverCapable: n.startsWith('r'),
    })),
    bundle: { agent: 'agent.mjs', node: 'node' },
    controlPlane: { runtime: 'lab', identityDir: '/var/lib/edgectl/lab/members-cli/identity' },
  });
  assert.deepEqual(r.problems, []);
  return r.inventory!;
}

function twins(members: TwinSiteMembers, down: string[] = []) {
  const map = new Map(NAMES.map((n) => [n, new RobotTwin(n, { members })]));
  for (const [n, t] of map) if (!down.includes(n)) t.active.add('edgectl-agent.service');
  const asked: string[] = [];
  return {
    asked,
    connect: async (name: string) => {
      asked.push(name);
      return map.get(name)!;
    },
  };
}

test('the inventory membership: the robots that do not vote, less the refused', () => {
  const inv = inventory();
  assert.deepEqual(inventoryWorkers(inv, []), ['w1', 'w2']);
  assert.deepEqual(inventoryWorkers(inv, ['w1']), ['w2']);
});

test('syncMembers finds the leader through any voter that answers, commits once, then finds nothing to do', async () => {
  const inv = inventory();
  const members = twinSiteMembers('r3');
  const t = twins(members, ['r1']);
  const key = new Uint8Array(32);
  const first = await syncMembers({
    inventory: inv,
    workers: ['w2', 'w1'],
    operatorKey: key,
    connect: t.connect,
  });
  assert.deepEqual([first.kind, first.version], ['committed', 1]);
  assert.deepEqual(t.asked, ['r1', 'r2', 'r3', 'r3'], 'r1 is down, r2 names r3, r3 commits');
  assert.deepEqual(members.history, [['w1', 'w2']]);
  const again = await syncMembers({
    inventory: inv,
    workers: ['w1', 'w2'],
    operatorKey: key,
    connect: t.connect,
  });
  assert.equal(again.kind, 'unchanged');
  assert.equal(members.history.length, 1);
});

test('syncMembers gives up with what it saw when no voter names a leader', async () => {
  const inv = inventory();
  const members = twinSiteMembers('r1');
  members.leader = null;
  const t = twins(members);
  await assert.rejects(
    syncMembers({ inventory: inv, workers: ['w1'], operatorKey: new Uint8Array(32), connect: t.connect }),
    (e: Error & { code?: string }) =>
      e.code === 'EDGE_MEMBERS_NOT_COMMITTED' && /no voter names a leader/.test(e.message),
  );
});
