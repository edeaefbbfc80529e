/**
 * The k3s runtime's way to the Kubernetes API, in a module of its own: the runtime imports it
 * only when its robot first leads, so the Kubernetes client (about 1.4 MB of bundled code, with
 * undici) never loads on a worker. A static import keeps the bundle to the client's parts in use.
 */
import { KubeConfig } from '@kubernetes/client-node';
import { KubeSiteApplier, type SiteApplierOptions } from './applier.ts';

/**
 * kubeConfigFor: a client config for a server, its CA and a bearer token (the lab runtime's API
 * server). Here, with the client's static import, so that the bundled agent carries the client.
 */
export function kubeConfigFor(url: string, caPem: string, token: string, user = 'admin'): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'edgectl', server: url, caData: Buffer.from(caPem).toString('base64') }],
    users: [{ name: user, token }],
    contexts: [{ name: 'edgectl', cluster: 'edgectl', user }],
    currentContext: 'edgectl',
  });
  return kc;
}

/** kubeSiteApplier: a SiteApplier that talks to the API server in the kubeconfig at `path`. */
export function kubeSiteApplier(path: string, opts: SiteApplierOptions): KubeSiteApplier {
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(path);
  return new KubeSiteApplier({ ...opts, kubeConfig });
}
