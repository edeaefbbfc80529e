import assert from 'node:assert/strict';
import { test } from 'node:test';
import { addonPodObservations, addonsRunning } from './addons.ts';

const pod = (name: string, app: string, node: string, running: boolean, extra: object = {}) => ({
  metadata: { name, labels: { 'app.kubernetes.io/name': app } },
  spec: { nodeName: node, containers: [{ image: `img/${app}` }] },
  status: {
    phase: running ? 'Running' : 'Pending',
    conditions: [{ type: 'Ready', status: running ? 'True' : 'False' }],
    containerStatuses: [{ restartCount: 1 }],
  },
  ...extra,
});

test('only the addon pods count, and a pod being deleted does not', () => {
  const seen = addonPodObservations([
    pod('multus-a', 'multus', 'r1', true),
    pod('coredns-x', 'coredns', 'r1', true),
    {
      ...pod('whereabouts-old', 'whereabouts', 'r1', true),
      metadata: {
        name: 'whereabouts-old',
        labels: { 'app.kubernetes.io/name': 'whereabouts' },
        deletionTimestamp: 'now',
      },
    },
  ]);
  assert.deepEqual(seen, [
    {
      name: 'multus-a',
      app: 'multus',
      node: 'r1',
      phase: 'Running',
      ready: true,
      restarts: 1,
      images: ['img/multus'],
    },
  ]);
});

test('the addons run when every node has a Running, Ready pod of each; the rest are named', () => {
  const pods = addonPodObservations([
    pod('multus-a', 'multus', 'r1', true),
    pod('whereabouts-a', 'whereabouts', 'r1', true),
    pod('multus-b', 'multus', 'r2', true),
    pod('whereabouts-b', 'whereabouts', 'r2', false),
  ]);
  assert.deepEqual(addonsRunning(pods, ['r1']), { ok: true, why: 'multus and whereabouts run on 1 nodes' });
  assert.deepEqual(addonsRunning(pods, ['r1', 'r2', 'r3']), {
    ok: false,
    why: 'not running: whereabouts on r2, multus on r3, whereabouts on r3',
  });
});
