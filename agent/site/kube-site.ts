/**
 * The k3s runtime's way to the Kubernetes API, in a module of its own: the runtime imports it
 * only when its robot first leads, so the Kubernetes client (about 1.4 MB of bundled code, with
 * undici) never loads on a worker. A static import keeps the bundle to the client's parts in use.
 */
import { KubeConfig } from '@kubernetes/client-node';
import { KubeSiteApplier, type SiteApplierOptions } from './applier.ts';

/** kubeSiteApplier: a SiteApplier that talks to the API server in the kubeconfig at `path`. */
export function kubeSiteApplier(path: string, opts: SiteApplierOptions): KubeSiteApplier {
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(path);
  return new KubeSiteApplier({ ...opts, kubeConfig });
}
