/**
 * servingK3sRobot: a k3s runtime (K3sControlPlane) on a robot model whose k3s server serves
 * `epoch`, and the agent's SiteApplier on it, built as agent/run.ts builds it on a robot
 * (leaderSiteApplier over the runtime's apiServer). The SiteApplier contract runs through it, so
 * what the leader does on a robot (apply, mark lost, mark returned) is tested on the k3s runtime's
 * own path: against the in-memory object store (`objects`) or a real kube-apiserver (`kubeconfig`,
 * the admin kubeconfig k3s would write).
 */
import { K3sControlPlane } from '../../control-plane/k3s.ts';
import type { SiteApplier } from '../../site/applier.ts';
import { leaderSiteApplier } from '../../site/leader-site.ts';
import type { ObjectClient } from '../../site/object-client.ts';
import type { SiteSpec } from '../../site/spec.ts';
import { AGENT_UNIT, SERVER_UNIT } from '../paths.ts';
import { SERVER_SPEC } from './fixtures.ts';
import { installedRobot } from './installed.ts';

const silent = { info: () => undefined, warn: () => undefined };

export async function servingK3sRobot(
  server: { readonly kubeconfig: string } | { readonly objects: ObjectClient },
  epoch = 1,
): Promise<{ runtime: K3sControlPlane; siteApplier(spec: SiteSpec): SiteApplier }> {
  const model = await installedRobot(SERVER_SPEC);
  const runtime = new K3sControlPlane({
    runner: model,
    node: SERVER_SPEC,
    kubeconfig: 'kubeconfig' in server ? server.kubeconfig : undefined,
    probes: {
      serverReady: async () => model.active.has(SERVER_UNIT),
      workerReady: async () => model.active.has(AGENT_UNIT),
    },
    pollMs: 1,
    delay: () => new Promise((r) => setImmediate(r)),
  });
  await runtime.startServer(epoch);
  return {
    runtime,
    siteApplier: (spec) =>
      leaderSiteApplier({
        spec,
        log: silent,
        server: () => {
          const access = runtime.apiServer(); // throws unless the k3s server serves
          return 'objects' in server ? { kind: 'objects', client: server.objects } : access;
        },
      }),
  };
}
