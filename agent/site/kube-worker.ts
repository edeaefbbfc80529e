/**
 * `node edgectl-agent-kube.cjs <kubeconfig>`: the child process in which a robot's leader talks to
 * its k3s server, so that the agent's own process never loads node:https, tls and node:crypto
 * (kube-child.ts says why and how). It answers the ObjectClient's calls on its stdin and stdout with
 * one KubeObjectClient for the kubeconfig, read at the first call, and exits when its stdin ends.
 * `npm run build:agent` builds it into its own CommonJS file beside the entry (agent/build.ts);
 * from the sources, node runs this file.
 */
import { serveObjectClient } from './kube-child.ts';
import { KubeObjectClient } from './kube-client.ts';
import { readKubeconfig } from './kube-config.ts';

const kubeconfig = process.argv[2];
if (kubeconfig === undefined) {
  process.stderr.write('usage: node edgectl-agent-kube.cjs <kubeconfig>\n');
  process.exit(2);
}
serveObjectClient(() => new KubeObjectClient(readKubeconfig(kubeconfig)));
