/**
 * The Kubernetes API over this process's own HTTPS client (kube-client.ts), in a module of its own:
 * the lab's runtime imports it when its robot first leads, and the tests use it. A robot's k3s
 * leader does not: it runs the client in a child process (kube-child.ts), so that its agent never
 * loads node:https.
 */
import { ObjectSiteApplier, type SiteApplierOptions } from './applier.ts';
import { KubeObjectClient } from './kube-client.ts';
import { readKubeconfig, type KubeConfigLike, type KubeConnection } from './kube-config.ts';

/**
 * kubeObjectClient: an ObjectClient for the API server in the kubeconfig at `path` (k3s's admin
 * one). The file is read at each call: k3s rewrites it when its server's certificates change.
 */
export function kubeObjectClient(path: string): KubeObjectClient {
  return new KubeObjectClient(readKubeconfig(path));
}

/** kubeObjectClientFor: an ObjectClient for a server, its CA and a bearer token (the lab's API server). */
export function kubeObjectClientFor(url: string, caPem: string, token: string): KubeObjectClient {
  return new KubeObjectClient({ server: url, caPem, token });
}

/**
 * KubeSiteApplier applies the site to a real API server over this process's own HTTPS client (the
 * tests' and the lab's way; a robot's leader reaches its server through kube-child.ts).
 */
export class KubeSiteApplier extends ObjectSiteApplier {
  constructor(opts: SiteApplierOptions & { kubeConfig: KubeConnection | KubeConfigLike }) {
    super(new KubeObjectClient(opts.kubeConfig), opts);
  }
}
