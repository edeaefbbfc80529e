/**
 * modelRobot: the k3s runtime's own code (agent/control-plane/k3s-runtime.ts) on a robot model
 * (robot-model.ts) where k3s is absent: the plans run against the model, readiness is read from
 * its units, and the leader's site reaches the model's API server through the robot's own
 * Kubernetes client child (ChildObjectClient), whose child here is model-api-server.ts: the objects
 * live in a file under the robot's state directory, outside the agent's process. The tests'
 * agent entry runs it with EDGECTL_ROBOT_MODEL=1 (agent/testing/runtimes.ts), so that bench:agent
 * measures the robot's code path.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { K3sControlPlane } from '../../control-plane/k3s.ts';
import { makeK3sControlPlane } from '../../control-plane/k3s-runtime.ts';
import type { RuntimeContext } from '../../run.ts';
import { ChildObjectClient } from '../../site/kube-child.ts';
import { AGENT_UNIT, SERVER_UNIT } from '../paths.ts';
import type { K3sControlPlaneConfig } from '../settings.ts';
import { installedRobot } from './installed.ts';

export async function modelRobot({ config, log, snapshotKeysFor }: RuntimeContext): Promise<K3sControlPlane> {
  // The config loader validated the section and filled its defaults: parsing it again here would
  // load zod into every measured agent, which a robot's k3s runtime does not.
  const cp = config.controlPlane as unknown as K3sControlPlaneConfig;
  const k3s = cp.k3s;
  const model = await installedRobot(
    { ...k3s, site: config.site.id, nodeName: config.node.id },
    {},
    // In a bundle this file's URL says nothing about where templates/ is: the config does.
    cp.templatesDir ? `${cp.templatesDir.replace(/\/$/, '')}/k3s` : undefined,
  );
  // The model journals every command; an agent that runs for hours keeps only the newest.
  const run = model.run.bind(model);
  model.run = async (argv, opts) => {
    if (model.journal.length > 1000) model.journal.splice(0, model.journal.length - 100);
    return run(argv, opts);
  };
  // The model's API server runs in the Kubernetes client's child, as the HTTPS client does on a
  // robot: this file's source from the sources, the CommonJS file agent/build.ts puts beside the
  // tests' bundled entry otherwise.
  const apiServerChild = fileURLToPath(
    new URL(
      import.meta.url.endsWith('.ts') ? './model-api-server.ts' : './edgectl-model-api-server.cjs',
      import.meta.url,
    ),
  );
  return makeK3sControlPlane(config, log, snapshotKeysFor, {
    runner: model,
    probes: {
      serverReady: async () => model.active.has(SERVER_UNIT),
      workerReady: async () => model.active.has(AGENT_UNIT),
    },
    apiServer: async () =>
      new ChildObjectClient({
        worker: apiServerChild,
        args: [join(config.stateDir, 'model-api-server.json')],
      }),
  });
}
