/** The SiteApplier contract against the in-memory twin, and the twin's own promises. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readAddonTemplates } from './addons.ts';
import { ObjectSiteApplier } from './applier.ts';
import { InMemorySiteApplier } from './testing/in-memory-applier.ts';
import { describeSiteApplierContract } from './applier.contract.ts';
import { InMemoryObjectClient } from './in-memory-client.ts';
import { KubeSiteApplier } from './kube-site.ts';
import { parseSiteSpec } from './spec.ts';

const templates = readAddonTemplates();

describeSiteApplierContract('in-memory', async () => {
  const cluster = new InMemoryObjectClient();
  return {
    cluster,
    applier: (spec) => new InMemorySiteApplier({ spec, cluster, templates }),
    render: (spec, epoch) => new ObjectSiteApplier(cluster, { spec, templates }).render(epoch),
  };
});

test('the twin records the apply order: CRDs, then addons, then the Namespace before the site objects', async () => {
  const applier = new InMemorySiteApplier({ spec: parseSiteSpec({ id: 'a' }), templates });
  await applier.apply(1);
  const applies = applier.cluster.writes.filter((w) => w.startsWith('apply '));
  assert.ok(applies[0]!.startsWith('apply CustomResourceDefinition'));
  const nsAt = applies.indexOf('apply Namespace /site-a');
  const firstSiteObject = applies.findIndex((w) => w.includes(' site-a/'));
  assert.ok(nsAt >= 0 && nsAt < firstSiteObject);
});

test('addons can be left out', async () => {
  const applier = new InMemorySiteApplier({ spec: parseSiteSpec({ id: 'a' }), addons: false });
  const report = await applier.apply(1);
  assert.ok(report.objects.every((o) => o.kind !== 'CustomResourceDefinition' && o.kind !== 'DaemonSet'));
});

test('a CRD that never becomes Established fails apply with a coded error', async () => {
  class NeverEstablished extends InMemoryObjectClient {
    override async get(ref: Parameters<InMemoryObjectClient['get']>[0]) {
      const o = await super.get(ref);
      if (o && o.kind === 'CustomResourceDefinition') delete o.status;
      return o;
    }
  }
  const applier = new ObjectSiteApplier(new NeverEstablished(), {
    spec: parseSiteSpec({ id: 'a' }),
    templates,
    crdTimeoutMs: 1000,
    sleep: async () => undefined,
  });
  await assert.rejects(applier.apply(1), { code: 'EDGE_SITE_CRD_NOT_ESTABLISHED' });
});

test('KubeSiteApplier needs a kubeconfig with a current cluster', async () => {
  const { KubeConfig } = await import('@kubernetes/client-node');
  assert.throws(
    () => new KubeSiteApplier({ kubeConfig: new KubeConfig(), spec: parseSiteSpec({ id: 'a' }), templates }),
    { code: 'EDGE_KUBECONFIG_NO_CLUSTER' },
  );
});
