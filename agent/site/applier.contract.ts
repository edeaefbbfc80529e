/**
 * The one contract every SiteApplier passes: the in-memory twin (applier.test.ts) and a real
 * kube-apiserver + etcd (test/integration/site-apiserver.test.ts). Every test uses its own site id,
 * so the tests share one cluster (namespaces are never deleted: no controller-manager runs there).
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { StaleEpochError, type SiteApplier } from './applier.ts';
import type { ObjectClient } from './object-client.ts';
import { refOf } from './object-client.ts';
import { LABEL_EPOCH, objectKey, type KubeObject } from './objects.ts';
import { OUT_OF_SERVICE_TAINT, TAINTED_BY_EDGECTL, taintsOf } from './plan.ts';
import { renderSite } from './render.ts';
import { parseSiteSpec, type SiteSpec, type SiteSpecInput } from './spec.ts';

export interface SiteApplierHarness {
  /** A new applier for `spec` against the shared cluster. */
  applier(spec: SiteSpec): SiteApplier;
  /** The cluster: to read results, and to create fixtures (Nodes, Pods, IPPools) as others would. */
  readonly cluster: ObjectClient;
  /** Everything the applier would write for `spec` at `epoch`, in order. */
  render(spec: SiteSpec, epoch: number): KubeObject[];
}

function spec(id: string, extra: Partial<SiteSpecInput> = {}): SiteSpec {
  return parseSiteSpec({
    id,
    networks: [
      {
        name: 'dds',
        master: 'wlan1',
        range: '192.168.50.0/24',
        rangeStart: '192.168.50.10',
        gateway: '192.168.50.1',
      },
      { name: 'cam', type: 'macvlan', master: 'eth1', range: '192.168.60.0/24' },
    ],
    networkPolicy: { ingress: [{ cidrs: ['192.168.10.0/24'], ports: [{ port: 9090 }] }] },
    ...extra,
  });
}

/**
 * assertContains: every field of `want` is in `got` with the same value (the server may add
 * defaults, never drop or change what was applied).
 */
function assertContains(got: unknown, want: unknown, path: string): void {
  if (Array.isArray(want)) {
    assert.ok(Array.isArray(got), `${path}: want an array, got ${JSON.stringify(got)}`);
    assert.equal(got.length, want.length, `${path}: length`);
    want.forEach((w, i) => assertContains(got[i], w, `${path}[${i}]`));
  } else if (want && typeof want === 'object') {
    assert.ok(got && typeof got === 'object', `${path}: want an object, got ${JSON.stringify(got)}`);
    for (const [k, w] of Object.entries(want))
      assertContains((got as Record<string, unknown>)[k], w, `${path}.${k}`);
  } else assert.equal(got, want, path);
}

const node = (name: string, taints: unknown[] = []): KubeObject => ({
  apiVersion: 'v1',
  kind: 'Node',
  metadata: { name },
  spec: { taints },
});

const pod = (
  namespace: string,
  name: string,
  nodeName: string,
  tolerations: readonly object[] = [],
): KubeObject => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, namespace },
  spec: {
    nodeName,
    containers: [{ name: 'c', image: 'registry.invalid/ros:jazzy' }],
    ...(tolerations.length ? { tolerations } : {}),
  },
});

export function describeSiteApplierContract(name: string, setup: () => Promise<SiteApplierHarness>): void {
  describe(`SiteApplier contract: ${name}`, () => {
    let h: SiteApplierHarness;
    before(async () => {
      h = await setup();
    });

    test('apply creates every object, and the API server keeps them as applied', async () => {
      const s = spec('contract-create');
      const report = await h.applier(s).apply(1);
      const desired = h.render(s, 1);
      assert.equal(report.objects.length, desired.length);
      assert.equal(report.created + report.updated + report.unchanged, desired.length);
      assert.equal(report.pruned, 0);
      // The site's own objects are new; the cluster-wide addons may exist from an earlier test.
      // (whereabouts-config is cluster-wide too: one Whereabouts per cluster.)
      const key = (o: { kind: string; namespace?: string; name: string }) =>
        `${o.kind} ${o.namespace}/${o.name}`;
      const siteKeys = new Set(
        renderSite(s, { epoch: 1 })
          .filter((o) => o.kind !== 'ConfigMap')
          .map((o) => key({ kind: o.kind, namespace: o.metadata.namespace, name: o.metadata.name })),
      );
      for (const o of report.objects) if (siteKeys.has(key(o))) assert.equal(o.action, 'created', key(o));
      for (const want of desired) {
        const got = await h.cluster.get(refOf(want));
        assert.ok(got, `${objectKey(want)} exists`);
        // Everything applied reads back: labels, NAD config, LimitRange defaults, NetworkPolicy peers.
        const { labels, annotations } = want.metadata;
        assertContains(
          got,
          { ...want, metadata: { labels, ...(annotations ? { annotations } : {}) } },
          objectKey(want),
        );
      }
    });

    test('the CRDs are installed from templates/ and Established', async () => {
      for (const crd of h
        .render(spec('contract-create'), 1)
        .filter((o) => o.kind === 'CustomResourceDefinition')) {
        const got = await h.cluster.get(refOf(crd));
        const conditions = (got?.status as { conditions?: { type: string; status: string }[] }).conditions;
        assert.ok(
          conditions?.some((c) => c.type === 'Established' && c.status === 'True'),
          `${crd.metadata.name} Established`,
        );
      }
    });

    test('re-applying the same epoch changes nothing: 0 created/updated, resourceVersions kept', async () => {
      const s = spec('contract-idem');
      const applier = h.applier(s);
      await applier.apply(3);
      const versions = async () =>
        Promise.all(
          h.render(s, 3).map(async (o) => (await h.cluster.get(refOf(o)))?.metadata.resourceVersion),
        );
      const before = await versions();
      const again = await applier.apply(3);
      assert.deepEqual(
        { created: again.created, updated: again.updated, pruned: again.pruned },
        { created: 0, updated: 0, pruned: 0 },
      );
      assert.equal(again.unchanged, h.render(s, 3).length);
      assert.deepEqual(await versions(), before);
    });

    test('a new epoch relabels every object; an older epoch is refused', async () => {
      const s = spec('contract-epoch');
      await h.applier(s).apply(4);
      const next = await h.applier(s).apply(5);
      assert.equal(next.updated, h.render(s, 5).length);
      const ns = await h.cluster.get({ apiVersion: 'v1', kind: 'Namespace', name: 'site-contract-epoch' });
      assert.equal(ns?.metadata.labels?.[LABEL_EPOCH], '5');
      await assert.rejects(h.applier(s).apply(4), StaleEpochError);
    });

    test('objects the spec no longer names are pruned; others stay', async () => {
      const s = spec('contract-prune');
      await h.applier(s).apply(1);
      const fewer = spec('contract-prune', {
        networks: [
          {
            name: 'dds',
            master: 'wlan1',
            range: '192.168.50.0/24',
            rangeStart: '192.168.50.10',
            gateway: '192.168.50.1',
          },
        ],
        networkPolicy: {},
      });
      const report = await h.applier(fewer).apply(2);
      assert.equal(report.pruned, 2);
      assert.deepEqual(
        report.objects.filter((o) => o.action === 'pruned').map((o) => `${o.kind} ${o.namespace}/${o.name}`),
        [
          'NetworkPolicy site-contract-prune/allow-extra-ingress',
          'NetworkAttachmentDefinition site-contract-prune/cam',
        ],
      );
      const nad = (n: string) =>
        h.cluster.get({
          apiVersion: 'k8s.cni.cncf.io/v1',
          kind: 'NetworkAttachmentDefinition',
          namespace: 'site-contract-prune',
          name: n,
        });
      assert.equal(await nad('cam'), null);
      assert.ok(await nad('dds'));
      // Objects of another site, and objects edgectl does not manage, are never pruned.
      assert.ok(
        await h.cluster.get({
          apiVersion: 'k8s.cni.cncf.io/v1',
          kind: 'NetworkAttachmentDefinition',
          namespace: 'site-contract-create',
          name: 'cam',
        }),
      );
    });

    test('a lost node is tainted out-of-service and its Whereabouts IPs are freed; on return the taint goes', async () => {
      const s = spec('contract-loss');
      await h.applier(s).apply(1);
      // The pods live in `default`: on a bare API server the site namespace's ResourceQuota has no
      // status (no controller-manager computes it), and quota admission refuses pods there.
      const ns = 'default';
      const other = { key: 'edgectl.io/robot', value: 'true', effect: 'NoSchedule' };
      await h.cluster.apply(node('r9', [other]));
      await h.cluster.apply(node('r8'));
      await h.cluster.apply(pod(ns, 'talker', 'r9'));
      await h.cluster.apply(pod(ns, 'listener', 'r9'));
      await h.cluster.apply(pod(ns, 'mapper', 'r8'));
      // A pod that tolerates the out-of-service taint stays, as the pod garbage collector leaves it.
      await h.cluster.apply(
        pod(ns, 'logger', 'r9', [
          { key: 'node.kubernetes.io/out-of-service', operator: 'Exists', effect: 'NoExecute' },
        ]),
      );
      const pool: KubeObject = {
        apiVersion: 'whereabouts.cni.cncf.io/v1alpha1',
        kind: 'IPPool',
        metadata: { name: 'contract-loss-dds-192.168.50.0-24', namespace: 'kube-system' },
        spec: {
          range: '192.168.50.0/24',
          allocations: {
            '10': { id: 'c1', podref: `${ns}/talker`, ifname: 'net1' },
            '11': { id: 'c2', podref: `${ns}/mapper`, ifname: 'net1' },
            '12': { id: 'c3', podref: `${ns}/listener`, ifname: 'net1' },
          },
        },
      };
      await h.cluster.apply(pool);
      const reservation = (ip: string, podref: string): KubeObject => ({
        apiVersion: 'whereabouts.cni.cncf.io/v1alpha1',
        kind: 'OverlappingRangeIPReservation',
        metadata: { name: ip, namespace: 'kube-system' },
        spec: { podref, containerid: 'c', ifname: 'net1' },
      });
      await h.cluster.apply(reservation('192.168.50.10', `${ns}/talker`));
      await h.cluster.apply(reservation('192.168.50.11', `${ns}/mapper`));
      await h.cluster.apply(reservation('192.168.50.12', `${ns}/listener`));

      const applier = h.applier(s);
      const lost = await applier.markNodeLost('r9');
      assert.deepEqual(lost, {
        node: 'r9',
        action: 'taint',
        nodeFound: true,
        pods: 3,
        forceDeletedPods: 2,
        freedAllocations: 2,
        deletedReservations: 2,
      });
      const podsLeft = async () =>
        (await h.cluster.list('v1', 'Pod'))
          .filter((p) => p.metadata.namespace === ns)
          .map((p) => p.metadata.name)
          .filter((n) => ['talker', 'listener', 'mapper', 'logger'].includes(n))
          .sort();
      assert.deepEqual(await podsLeft(), ['logger', 'mapper'], 'the lost node’s pods are deleted at once');
      // (A real API server also adds node.kubernetes.io/not-ready at creation: TaintNodesByCondition.)
      const taints = async (n: string) =>
        taintsOf((await h.cluster.get({ apiVersion: 'v1', kind: 'Node', name: n }))!)
          .map((t) => `${t.key}=${t.value ?? ''}:${t.effect}`)
          .filter((t) => !t.startsWith('node.kubernetes.io/not-ready'));
      const oos = `${OUT_OF_SERVICE_TAINT.key}=nodeshutdown:NoExecute`;
      assert.deepEqual(await taints('r9'), ['edgectl.io/robot=true:NoSchedule', oos]);
      assert.deepEqual(await taints('r8'), []);
      const poolAfter = await h.cluster.get(refOf(pool));
      assert.deepEqual(Object.keys((poolAfter?.spec as { allocations: object }).allocations), ['11']);
      const reservations = await h.cluster.list(
        'whereabouts.cni.cncf.io/v1alpha1',
        'OverlappingRangeIPReservation',
      );
      assert.deepEqual(
        reservations.map((r) => r.metadata.name),
        ['192.168.50.11'],
      );

      // Again: nothing left to do, and the taint is not doubled.
      const again = await applier.markNodeLost('r9');
      assert.equal(again.freedAllocations + again.deletedReservations, 0);
      assert.deepEqual(await taints('r9'), ['edgectl.io/robot=true:NoSchedule', oos]);

      assert.deepEqual(await applier.markNodeReturned('r9'), {
        node: 'r9',
        nodeFound: true,
        untainted: true,
      });
      assert.deepEqual(await taints('r9'), ['edgectl.io/robot=true:NoSchedule']);
      assert.deepEqual(await applier.markNodeReturned('r9'), {
        node: 'r9',
        nodeFound: true,
        untainted: false,
      });
    });

    test('apply takes off an out-of-service taint a leader left: a robot back is not kept out by a restored taint', async () => {
      const s = spec('contract-stale-taint');
      const other = { key: 'edgectl.io/robot', value: 'true', effect: 'NoSchedule' };
      await h.cluster.apply(node('r6', [other]));
      await h.cluster.apply(node('r5'));
      // The old leader marked both lost; its control plane (a snapshot, a replica) keeps the taints
      // after it is gone. r6 has come back since, r5 has not.
      const old = h.applier(s);
      await old.apply(1);
      await old.markNodeLost('r6');
      await old.markNodeLost('r5');
      const taints = async (n: string) =>
        taintsOf((await h.cluster.get({ apiVersion: 'v1', kind: 'Node', name: n }))!)
          .map((t) => t.key)
          .filter((k) => !k.startsWith('node.kubernetes.io/not-ready'));
      assert.deepEqual(await taints('r6'), ['edgectl.io/robot', OUT_OF_SERVICE_TAINT.key]);

      // The new leader holds no robot lost when it applies its epoch: the taints go, others stay.
      const next = h.applier(s);
      const report = await next.apply(2);
      assert.deepEqual([...report.untaintedNodes].sort(), ['r5', 'r6']);
      assert.deepEqual(await taints('r6'), ['edgectl.io/robot']);
      assert.deepEqual(await taints('r5'), []);
      // It marks the robot still gone again once it serves; a reconcile then starts from none again.
      await next.markNodeLost('r5');
      assert.deepEqual(await taints('r5'), [OUT_OF_SERVICE_TAINT.key]);
      assert.deepEqual((await next.apply(2)).untaintedNodes, ['r5']);
      assert.deepEqual((await next.apply(2)).untaintedNodes, []);
      // A reconcile by the leader that holds r5 lost keeps its taint.
      await next.markNodeLost('r5');
      assert.deepEqual((await next.apply(2, { stillLost: new Set(['r5']) })).untaintedNodes, []);
      assert.deepEqual(await taints('r5'), [OUT_OF_SERVICE_TAINT.key]);
    });

    test("an operator's own out-of-service taint is never taken off: edgectl removes only the taints it set", async () => {
      const s = spec('contract-operator-taint');
      const byHand = { ...OUT_OF_SERVICE_TAINT };
      await h.cluster.apply(node('r4', [byHand]));
      const applier = h.applier(s);
      const hasIt = async () =>
        taintsOf((await h.cluster.get({ apiVersion: 'v1', kind: 'Node', name: 'r4' }))!).some(
          (t) => t.key === OUT_OF_SERVICE_TAINT.key,
        );
      const mark = async () =>
        (await h.cluster.get({ apiVersion: 'v1', kind: 'Node', name: 'r4' }))!.metadata.annotations?.[
          TAINTED_BY_EDGECTL
        ];
      // (Nodes of the tests before share the cluster: only r4 counts here.)
      assert.ok(!(await applier.apply(1)).untaintedNodes.includes('r4'));
      assert.equal(await hasIt(), true);
      // The robot goes and comes back: the taint was there before edgectl's, so it stays.
      await applier.markNodeLost('r4');
      assert.equal(await mark(), undefined);
      assert.deepEqual(await applier.markNodeReturned('r4'), {
        node: 'r4',
        nodeFound: true,
        untainted: false,
      });
      assert.equal(await hasIt(), true);
      assert.ok(!(await applier.apply(2)).untaintedNodes.includes('r4'));
      assert.equal(await hasIt(), true);
      // One edgectl set is marked, and goes with its mark.
      await h.cluster.apply(node('r3'));
      await applier.markNodeLost('r3');
      const r3 = async () => (await h.cluster.get({ apiVersion: 'v1', kind: 'Node', name: 'r3' }))!;
      assert.equal((await r3()).metadata.annotations?.[TAINTED_BY_EDGECTL], 'true');
      assert.deepEqual(await applier.markNodeReturned('r3'), {
        node: 'r3',
        nodeFound: true,
        untainted: true,
      });
      assert.equal((await r3()).metadata.annotations?.[TAINTED_BY_EDGECTL], undefined);
    });

    test('with nodeLoss.action delete, a lost node is deleted; unknown nodes are no error', async () => {
      const s = spec('contract-delete', { nodeLoss: { action: 'delete' } });
      await h.cluster.apply(node('r7'));
      const applier = h.applier(s);
      const lost = await applier.markNodeLost('r7');
      assert.equal(lost.action, 'delete');
      assert.equal(lost.nodeFound, true);
      assert.equal(await h.cluster.get({ apiVersion: 'v1', kind: 'Node', name: 'r7' }), null);
      assert.equal((await applier.markNodeLost('r7')).nodeFound, false);
      assert.deepEqual(await applier.markNodeReturned('r7'), {
        node: 'r7',
        nodeFound: false,
        untainted: false,
      });
    });
  });
}
