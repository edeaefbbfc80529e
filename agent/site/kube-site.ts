/**
 * The SiteApplier on the server a runtime gives access to (ControlPlaneRuntime apiServer), in a
 * module of its own: leader-site.ts imports it only when its robot first leads, so the Kubernetes
 * client (about 1.4 MB of bundled code, with undici), the renderer and the addon templates never
 * load on a worker. A static import keeps the bundle to the client's parts in use.
 */
import { KubeConfig } from '@kubernetes/client-node';
import type { ApiServerAccess } from '../control-plane/runtime.ts';
import { readAddonTemplates, type AddonTemplate } from './addons.ts';
import { ObjectSiteApplier, type SiteApplierOptions } from './applier.ts';
import { KubeObjectClient, type ObjectClient } from './object-client.ts';

/** kubeConfigOf builds the client config for a kubeconfig file or an endpoint with a bearer token. */
export function kubeConfigOf(access: Exclude<ApiServerAccess, { kind: 'objects' }>): KubeConfig {
  const kc = new KubeConfig();
  if (access.kind === 'kubeconfig') kc.loadFromFile(access.file);
  else
    kc.loadFromOptions({
      clusters: [
        { name: 'edgectl', server: access.url, caData: Buffer.from(access.caPem).toString('base64') },
      ],
      users: [{ name: 'admin', token: access.token }],
      contexts: [{ name: 'edgectl', cluster: 'edgectl', user: 'admin' }],
      currentContext: 'edgectl',
    });
  return kc;
}

function clientOf(access: ApiServerAccess): ObjectClient {
  return access.kind === 'objects' ? access.client : new KubeObjectClient(kubeConfigOf(access));
}

const templatesByDir = new Map<string, readonly AddonTemplate[]>();

/** siteApplierFor: a SiteApplier on the server `access` reaches; the templates are read once per dir. */
export function siteApplierFor(
  access: ApiServerAccess,
  o: SiteApplierOptions & { readonly templatesDir?: string },
): ObjectSiteApplier {
  let templates = o.templates;
  if (!templates && o.addons !== false) {
    const key = o.templatesDir ?? '';
    templates = templatesByDir.get(key);
    if (!templates) {
      templates = readAddonTemplates(o.templatesDir);
      templatesByDir.set(key, templates);
    }
  }
  return new ObjectSiteApplier(clientOf(access), { ...o, templates });
}
