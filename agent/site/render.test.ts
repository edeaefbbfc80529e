import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isCrd, readAddonTemplates, renderSiteAddons } from './addons.ts';
import { assertGolden } from './golden.ts';
import { toYamlStream } from './manifests.ts';
import {
  LABEL_COMPONENT,
  LABEL_EPOCH,
  LABEL_MANAGED_BY,
  LABEL_SITE,
  objectKey,
  type KubeObject,
} from './objects.ts';
import { renderCniConfig, renderSite, WHEREABOUTS_CONFIGURATION_PATH } from './render.ts';
import { loadSiteSpec, parseSiteSpec } from './spec.ts';

const testdata = new URL('./testdata/', import.meta.url).pathname;
const spec = loadSiteSpec(`${testdata}site.yaml`);

describe('renderSite', () => {
  test('the representative spec renders as site.golden.yaml', () => {
    assertGolden(`${testdata}site.golden.yaml`, toYamlStream(renderSite(spec, { epoch: 7 })));
  });

  test('the addons render as addons.golden.yaml', () => {
    assertGolden(
      `${testdata}addons.golden.yaml`,
      toYamlStream(renderSiteAddons(readAddonTemplates(), { site: spec.id, epoch: 7 })),
    );
  });

  test('every object carries the edgectl labels with the site and the epoch', () => {
    const objects = [
      ...renderSite(spec, { epoch: 12 }),
      ...renderSiteAddons(readAddonTemplates(), { site: spec.id, epoch: 12 }),
    ];
    for (const o of objects) {
      assert.equal(o.metadata.labels?.[LABEL_MANAGED_BY], 'edgectl', objectKey(o));
      assert.equal(o.metadata.labels?.[LABEL_SITE], 'harbor', objectKey(o));
      assert.equal(o.metadata.labels?.[LABEL_EPOCH], '12', objectKey(o));
      assert.ok(['site', 'addons'].includes(o.metadata.labels?.[LABEL_COMPONENT] ?? ''), objectKey(o));
    }
    assert.equal(new Set(objects.map(objectKey)).size, objects.length, 'object keys are unique');
  });

  test('the Namespace comes first and carries the Pod Security Admission labels', () => {
    const [ns] = renderSite(spec, { epoch: 1 });
    assert.equal(ns?.kind, 'Namespace');
    assert.equal(ns?.metadata.name, 'site-harbor');
    assert.equal(ns?.metadata.labels?.['pod-security.kubernetes.io/enforce'], 'baseline');
    assert.equal(ns?.metadata.labels?.['pod-security.kubernetes.io/warn-version'], 'v1.33');
  });

  test('a minimal spec gets the documented defaults: baseline, default-deny, DNS, quota, limits, RBAC', () => {
    const objects = renderSite(parseSiteSpec({ id: 'a' }), { epoch: 1 });
    assert.deepEqual(
      objects.map((o) => `${o.kind}/${o.metadata.name}`),
      [
        'Namespace/site-a',
        'ValidatingAdmissionPolicy/edgectl-site-a',
        'ValidatingAdmissionPolicyBinding/edgectl-site-a',
        'NetworkPolicy/default-deny',
        'NetworkPolicy/allow-same-namespace',
        'NetworkPolicy/allow-dns-egress',
        'ResourceQuota/site-quota',
        'LimitRange/site-limits',
        'Role/site-operator',
        'RoleBinding/site-operator',
        'ConfigMap/whereabouts-config',
      ],
    );
    const binding = objects.find((o) => o.kind === 'RoleBinding')!;
    assert.deepEqual(binding.subjects, [
      { kind: 'Group', apiGroup: 'rbac.authorization.k8s.io', name: 'site-a-operators' },
    ]);
    const cm = objects.find((o) => o.kind === 'ConfigMap')!;
    assert.deepEqual(cm.data, { 'cron-expression': '*/5 * * * *' });
    assert.equal(cm.metadata.namespace, 'kube-system');
  });

  test('policies, quota and limits can be switched off', () => {
    const objects = renderSite(
      parseSiteSpec({
        id: 'a',
        networkPolicy: { defaultDeny: false, allowSameNamespace: false, allowDnsEgress: false },
        quota: { hard: {} },
        limits: { container: {} },
      }),
      { epoch: 1 },
    );
    assert.deepEqual(
      objects.map((o) => o.kind),
      [
        'Namespace',
        'ValidatingAdmissionPolicy',
        'ValidatingAdmissionPolicyBinding',
        'Role',
        'RoleBinding',
        'ConfigMap',
      ],
    );
  });

  test('the site-operator Role reads NADs and Endpoints and writes neither', () => {
    const rules = renderSite(parseSiteSpec({ id: 'a' }), { epoch: 1 }).find((o) => o.kind === 'Role')!
      .rules as { apiGroups: string[]; resources: string[]; verbs: string[] }[];
    const verbsOf = (group: string, resource: string) =>
      rules
        .filter((r) => r.apiGroups.includes(group) && r.resources.includes(resource))
        .flatMap((r) => r.verbs);
    assert.deepEqual(verbsOf('k8s.cni.cncf.io', 'network-attachment-definitions'), ['get', 'list', 'watch']);
    assert.deepEqual(verbsOf('', 'endpoints'), ['get', 'list', 'watch']);
    assert.ok(verbsOf('', 'pods').includes('create'), 'operators still run workloads');
  });

  test("the admission policy names exactly the site's networks and binds to its namespace", () => {
    const objects = renderSite(spec, { epoch: 1 });
    const policy = objects.find((o) => o.kind === 'ValidatingAdmissionPolicy')!;
    const binding = objects.find((o) => o.kind === 'ValidatingAdmissionPolicyBinding')!;
    const text = JSON.stringify(policy);
    assert.ok(text.includes("'^(site-harbor/)?(dds|lidar)(@[A-Za-z0-9_.-]{1,15})?$'"), text);
    assert.deepEqual((binding.spec as { policyName: string }).policyName, policy.metadata.name);
    assert.deepEqual((binding.spec as { validationActions: string[] }).validationActions, ['Deny']);
    assert.equal(policy.metadata.namespace, undefined, 'cluster-scoped');
    const none = JSON.stringify(
      renderSite(parseSiteSpec({ id: 'a' }), { epoch: 1 }).find(
        (o) => o.kind === 'ValidatingAdmissionPolicy',
      ),
    );
    assert.ok(!none.includes('matches('), 'a site without networks allows no networks annotation at all');
  });
});

describe('renderCniConfig', () => {
  test('ipvlan L2 with Whereabouts on k3s paths, a per-site network_name, and the gateway excluded', () => {
    const cfg = renderCniConfig('harbor', spec.networks[0]!);
    assert.deepEqual(cfg, {
      cniVersion: '1.0.0',
      name: 'harbor-dds',
      type: 'ipvlan',
      master: 'wlan0',
      mode: 'l2',
      ipam: {
        type: 'whereabouts',
        range: '192.168.50.0/24',
        range_start: '192.168.50.20',
        range_end: '192.168.50.250',
        gateway: '192.168.50.1',
        exclude: ['192.168.50.100/32', '192.168.50.128/28', '192.168.50.1/32'],
        network_name: 'harbor-dds',
        configuration_path: WHEREABOUTS_CONFIGURATION_PATH,
        kubernetes: {
          kubeconfig: '/var/lib/rancher/k3s/agent/etc/cni/net.d/whereabouts.d/whereabouts.kubeconfig',
        },
      },
    });
    assert.equal(
      WHEREABOUTS_CONFIGURATION_PATH,
      '/var/lib/rancher/k3s/agent/etc/cni/net.d/whereabouts.d/whereabouts.conf',
    );
  });

  test('a gateway an exclude already covers is not added twice', () => {
    const s = parseSiteSpec({
      id: 'a',
      networks: [
        { name: 'n', master: 'eth1', range: '10.9.0.0/24', gateway: '10.9.0.1', exclude: ['10.9.0.0/29'] },
      ],
    });
    assert.deepEqual((renderCniConfig('a', s.networks[0]!).ipam as { exclude: string[] }).exclude, [
      '10.9.0.0/29',
    ]);
  });

  test('macvlan defaults to bridge mode', () => {
    assert.equal(renderCniConfig('harbor', spec.networks[1]!).mode, 'bridge');
  });
});

describe('renderSiteAddons', () => {
  test('CRDs come first, then Multus and Whereabouts with the k3s CNI paths', () => {
    const objects = renderSiteAddons(readAddonTemplates(), { site: 'a', epoch: 1 });
    const firstNonCrd = objects.findIndex((o) => !isCrd(o));
    assert.equal(firstNonCrd, 4);
    assert.ok(objects.slice(firstNonCrd).every((o) => !isCrd(o)));
    assert.deepEqual(
      objects.filter(isCrd).map((o) => o.metadata.name),
      [
        'network-attachment-definitions.k8s.cni.cncf.io',
        'ippools.whereabouts.cni.cncf.io',
        'overlappingrangeipreservations.whereabouts.cni.cncf.io',
        'nodeslicepools.whereabouts.cni.cncf.io',
      ],
    );
    const text = JSON.stringify(objects);
    assert.ok(text.includes('"path":"/var/lib/rancher/k3s/data/cni"'));
    assert.ok(text.includes('"path":"/var/lib/rancher/k3s/agent/etc/cni/net.d"'));
    assert.ok(!text.includes('"path":"/opt/cni/bin"') && !text.includes('"path":"/etc/cni/net.d"'));
    // The reconciler is ip-control-loop's (no ip-reconciler image since Whereabouts v0.6): the
    // DaemonSet mounts the site's schedule where it reads it.
    const whereabouts = objects.find((o) => o.kind === 'DaemonSet' && o.metadata.name === 'whereabouts')!;
    const text2 = JSON.stringify(whereabouts);
    assert.ok(text2.includes('"name":"whereabouts-config"'), 'the reconciler reads the site ConfigMap');
    assert.ok(text2.includes('"mountPath":"/cron-schedule"'));
    assert.ok(!objects.some((o) => o.metadata.name === 'whereabouts-reconciler'));
  });

  test("the spec's addon images replace the pinned ones, each in its own containers only", () => {
    const images = (objects: KubeObject[]) =>
      objects.flatMap((o) => {
        const pod = (
          o as { spec?: { template?: { spec?: Record<string, { name: string; image: string }[]> } } }
        ).spec?.template?.spec;
        return [...(pod?.initContainers ?? []), ...(pod?.containers ?? [])].map(
          (c) => `${o.metadata.name}/${c.name}=${c.image}`,
        );
      });
    const pinned = images(renderSiteAddons(readAddonTemplates(), { site: 'a', epoch: 1 }));
    assert.deepEqual(pinned, [
      'multus/cni-plugins=rancher/hardened-cni-plugins:v1.9.1-build20260819',
      'multus/multus=rancher/hardened-multus-cni:v4.3.0-build20260819',
      'whereabouts/whereabouts=rancher/hardened-whereabouts:v0.9.4-build20260819',
    ]);
    const spec = parseSiteSpec({
      id: 'a',
      addons: {
        images: {
          multus: 'edgectl.local/multus-thin:v4.2.2-x',
          whereabouts: 'edgectl.local/whereabouts:v0.9.2-x',
        },
      },
    });
    assert.deepEqual(
      images(renderSiteAddons(readAddonTemplates(), { site: 'a', epoch: 1, images: spec.addons?.images })),
      [
        'multus/cni-plugins=rancher/hardened-cni-plugins:v1.9.1-build20260819',
        'multus/multus=edgectl.local/multus-thin:v4.2.2-x',
        'whereabouts/whereabouts=edgectl.local/whereabouts:v0.9.2-x',
      ],
    );
  });

  test('an addon image that is not an image reference is a ConfigError naming the field', () => {
    assert.throws(
      () => parseSiteSpec({ id: 'a', addons: { images: { multus: 'Not An Image' } } }),
      (e: Error) => e.message.includes('addons.images.multus'),
    );
  });
});
