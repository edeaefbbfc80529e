import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  allocationsOf,
  duplicateAddresses,
  offsetAddress,
  podObservation,
  renderWorkload,
  siteAddressOf,
  workloadReady,
  type PodObservation,
} from './workload.ts';

const pod = (o: Partial<PodObservation>): PodObservation => ({
  name: 'p',
  uid: 'u',
  workload: 'Deployment',
  node: 'r1',
  phase: 'Running',
  ready: true,
  deleting: false,
  restarts: 0,
  siteAddress: '10.78.1.20',
  ...o,
});

test("a pod's site address is the site network's entry in Multus' network-status", () => {
  const status = JSON.stringify([
    { name: 'lab-pods', interface: 'eth0', ips: ['10.244.1.5'], default: true },
    { name: 'site-lab/fleet', interface: 'net1', ips: ['10.78.1.21'] },
  ]);
  assert.equal(siteAddressOf({ 'k8s.v1.cni.cncf.io/network-status': status }), '10.78.1.21');
  assert.equal(siteAddressOf({}), null);
  assert.equal(siteAddressOf({ 'k8s.v1.cni.cncf.io/network-status': '{bad' }), null);
  const p = podObservation({
    metadata: {
      name: 'demo-web-1',
      uid: 'x',
      deletionTimestamp: '2026-12-06T10:00:00Z',
      ownerReferences: [{ kind: 'ReplicaSet' }],
      annotations: { 'k8s.v1.cni.cncf.io/network-status': status },
    },
    spec: { nodeName: 'r2' },
    status: {
      phase: 'Running',
      conditions: [{ type: 'Ready', status: 'True' }],
      containerStatuses: [{ restartCount: 2 }],
    },
  });
  assert.deepEqual(
    [p.workload, p.node, p.ready, p.deleting, p.restarts, p.siteAddress],
    ['Deployment', 'r2', true, true, 2, '10.78.1.21'],
  );
});

test('Whereabouts allocations are offsets into the pool range', () => {
  assert.equal(offsetAddress('10.78.1.0/24', 20), '10.78.1.20');
  assert.equal(offsetAddress('10.78.0.0/16', 300), '10.78.1.44');
  assert.deepEqual(
    allocationsOf([
      { spec: { range: '10.78.1.0/24', allocations: { '22': { id: 'c1', podref: 'site-lab/demo-db-0' } } } },
    ]),
    [{ ip: '10.78.1.22', pod: 'site-lab/demo-db-0', id: 'c1' }],
  );
});

test('the workload is ready with exactly the desired replicas, Running with a site address on live robots', () => {
  const spec = { deployment: 2, statefulset: 1 };
  const alive = new Set(['r1', 'r2']);
  const pods = [
    pod({ name: 'a', siteAddress: '10.78.1.20' }),
    pod({ name: 'b', node: 'r2', siteAddress: '10.78.1.21' }),
    pod({ name: 'db', workload: 'StatefulSet', siteAddress: '10.78.1.22' }),
  ];
  assert.equal(workloadReady({ pods, allocations: [] }, spec, alive).ok, true);
  // On a robot that is off, going, without an address, or one too many: not ready.
  for (const bad of [
    [pods[0]!, pods[1]!, { ...pods[2]!, node: 'r3' }],
    [pods[0]!, pods[1]!, { ...pods[2]!, deleting: true }],
    [pods[0]!, pods[1]!, { ...pods[2]!, siteAddress: null }],
    [...pods, pod({ name: 'c', siteAddress: '10.78.1.23' })],
  ])
    assert.equal(workloadReady({ pods: bad, allocations: [] }, spec, alive).ok, false);
  assert.deepEqual(
    duplicateAddresses({
      pods: [pods[0]!, { ...pods[1]!, siteAddress: '10.78.1.20' }, { ...pods[2]!, deleting: true }],
      allocations: [],
    }),
    ['10.78.1.20'],
  );
  assert.deepEqual(duplicateAddresses({ pods, allocations: [] }), []);
});

test('the demo workload asks for the site network, runs the local image, and places the StatefulSet on a worker or the leader', () => {
  const [deployment, statefulset] = renderWorkload(
    'lab',
    'edgectl.local/demo:k',
    { deployment: 2, statefulset: 1 },
    {
      leader: 'r1',
    },
  );
  const text = JSON.stringify([deployment, statefulset]);
  assert.match(text, /"k8s.v1.cni.cncf.io\/networks":"fleet"/);
  assert.match(text, /"imagePullPolicy":"Never"/);
  assert.doesNotMatch(JSON.stringify(deployment), /affinity/);
  assert.match(JSON.stringify(statefulset), /"operator":"NotIn","values":\["r1"\]/);
  const [, onLeader] = renderWorkload(
    'lab',
    'i',
    { deployment: 0, statefulset: 1, statefulsetOn: 'leader' },
    { leader: 'r1' },
  );
  assert.match(JSON.stringify(onLeader), /"operator":"In","values":\["r1"\]/);
  assert.equal((statefulset as { metadata: { namespace: string } }).metadata.namespace, 'site-lab');
});
