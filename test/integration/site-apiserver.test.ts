/**
 * The SiteApplier contract against a REAL kube-apiserver + etcd (lab/kube-apiserver/apiserver.ts),
 * twice: the applier alone, and the agent's SiteApplier on the k3s runtime (a robot model whose k3s
 * server serves, reached through an admin kubeconfig as on a robot), so node loss is shown on the
 * k3s runtime's own path:
 * the site's objects, the CRDs from templates/ and the Multus/Whereabouts installs are accepted and
 * read back as applied, re-apply is idempotent, pruning works, and node loss taints the Node and
 * frees its Whereabouts IPs. No kubelet or controller-manager runs, so nothing here shows Multus or
 * Whereabouts pods working (docs/site.md says what only reading could check).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import {
  createApiServerIdentity,
  startApiServer,
  type ApiServerHandle,
} from '../../lab/kube-apiserver/apiserver.ts';
import { readAddonTemplates } from '../../agent/site/addons.ts';
import { KubeSiteApplier } from '../../agent/site/applier.ts';
import { describeSiteApplierContract } from '../../agent/site/applier.contract.ts';
import { KubeObjectClient } from '../../agent/site/object-client.ts';
import { renderSite } from '../../agent/site/render.ts';
import { renderSiteAddons } from '../../agent/site/addons.ts';
import { servingK3sRobot } from '../../agent/k3s/testing/serving-robot.ts';

const dir = mkdtempSync(join(tmpdir(), 'edgectl-site-apiserver-'));
let server: ApiServerHandle | undefined;
let k3sServer: ApiServerHandle | undefined;
after(async () => {
  try {
    await server?.stop();
    await k3sServer?.stop();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

describeSiteApplierContract('kube-apiserver', async () => {
  const identity = await createApiServerIdentity(join(dir, 'identity'), { sans: [], nodes: [] });
  server = await startApiServer({ identity, dir: join(dir, 'server') });
  const kubeConfig = server.kubeConfig();
  const templates = readAddonTemplates();
  return {
    cluster: new KubeObjectClient(kubeConfig),
    applier: (spec) => new KubeSiteApplier({ kubeConfig, spec, templates }),
    render: (spec, epoch) => [
      ...renderSiteAddons(templates, { site: spec.id, epoch }),
      ...renderSite(spec, { epoch }),
    ],
  };
});

describeSiteApplierContract('k3s runtime (robot model) on kube-apiserver', async () => {
  const identity = await createApiServerIdentity(join(dir, 'k3s-identity'), { sans: [], nodes: [] });
  k3sServer = await startApiServer({ identity, dir: join(dir, 'k3s-server') });
  const kubeConfig = k3sServer.kubeConfig();
  // The admin kubeconfig k3s server writes (/etc/rancher/k3s/k3s.yaml on a robot).
  const kubeconfig = join(dir, 'k3s.yaml');
  writeFileSync(kubeconfig, kubeConfig.exportConfig(), { mode: 0o600 });
  const robot = await servingK3sRobot({ kubeconfig });
  const templates = readAddonTemplates();
  return {
    cluster: new KubeObjectClient(kubeConfig),
    applier: (spec) => robot.siteApplier(spec),
    render: (spec, epoch) => [
      ...renderSiteAddons(templates, { site: spec.id, epoch }),
      ...renderSite(spec, { epoch }),
    ],
  };
});
