/**
 * The runtimes' way to the Kubernetes API, in a module of its own: a runtime imports it only when
 * its robot first leads, so the Kubernetes client (about 1.4 MB of bundled code, with
 * undici) never loads on a worker. A static import keeps the bundle to the client's parts in use.
 */
import { KubeConfig } from '@kubernetes/client-node';
import { KubeObjectClient } from './object-client.ts';

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

/** kubeObjectClient: an ObjectClient for the API server in the kubeconfig at `path` (k3s's admin one). */
export function kubeObjectClient(path: string): KubeObjectClient {
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(path);
  return new KubeObjectClient(kubeConfig);
}

/** kubeObjectClientFor: an ObjectClient for a server, its CA and a bearer token (the lab's API server). */
export function kubeObjectClientFor(url: string, caPem: string, token: string): KubeObjectClient {
  return new KubeObjectClient(kubeConfigFor(url, caPem, token));
}
