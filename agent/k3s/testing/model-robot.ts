/**
 * modelRobot: the k3s runtime's own code (agent/control-plane/k3s-runtime.ts) on a robot model
 * (robot-model.ts) where k3s is absent: the plans run against the model, readiness is read from
 * its units, and the API server the site applier reaches is an in-memory object store. The tests'
 * agent entry (agent/testing/main.ts) runs it for the build test and bench:agent.
 */
import type { K3sControlPlane } from '../../control-plane/k3s.ts';
import type { makeK3sControlPlane } from '../../control-plane/k3s-runtime.ts';
import type { RuntimeContext } from '../../run.ts';
import type { ObjectClient } from '../../site/object-client.ts';
import { AGENT_UNIT, SERVER_UNIT } from '../paths.ts';
import { installedRobot } from './installed.ts';

export async function modelRobot(
  ctx: RuntimeContext,
  make: typeof makeK3sControlPlane,
): Promise<K3sControlPlane> {
  const cp = ctx.config.controlPlane;
  if (cp.runtime !== 'k3s') throw new Error('the robot model runs the k3s runtime only');
  const model = await installedRobot(
    { ...cp.k3s, site: ctx.config.site.id, nodeName: ctx.config.node.id },
    {},
    // In a bundle this file's URL says nothing about where templates/ is: the config does.
    `${cp.templatesDir}/k3s`,
  );
  const rt = await make(ctx, {
    runner: model,
    probes: {
      serverReady: async () => model.active.has(SERVER_UNIT),
      workerReady: async () => model.active.has(AGENT_UNIT),
    },
  });
  // The object store loads when this robot first serves, as the Kubernetes client does on a robot
  // (in-memory-client.ts imports object-client.ts, and with it the client): a worker loads neither.
  let objects: ObjectClient | undefined;
  const startServer = rt.startServer.bind(rt);
  rt.startServer = async (epoch) => {
    objects ??= new (await import('../../site/in-memory-client.ts')).InMemoryObjectClient();
    return startServer(epoch);
  };
  const kubeconfig = rt.apiServer.bind(rt);
  rt.apiServer = () => {
    kubeconfig(); // throws while nothing serves, as on a robot
    return { kind: 'objects', client: objects! };
  };
  // The model journals every command; an agent that runs for hours keeps only the newest.
  const run = model.run.bind(model);
  model.run = async (argv, opts) => {
    if (model.journal.length > 1000) model.journal.splice(0, model.journal.length - 100);
    return run(argv, opts);
  };
  return rt;
}
