/**
 * The tests' agent entry: `node agent/testing/main.ts --config <agent.yaml>`, the robot's agent
 * (agent/run.ts) with test twins registered:
 *
 * - `controlPlane.runtime: memory`: the in-memory control plane (agent/control-plane/in-memory.ts),
 *   for the integration and security tests that run real agents in network namespaces;
 * - `controlPlane.runtime: k3s` with `EDGECTL_ROBOT_MODEL=1` in the environment: the k3s runtime's
 *   own code over the robot model (agent/k3s/testing/robot-model.ts) where k3s is absent, its API
 *   server an in-memory object store, for the build test and bench:agent, which measure the
 *   robot's code path.
 *
 * `node agent/build.ts --entry agent/testing/main.ts <dir>` bundles it like the robot's entry.
 */
import { fileURLToPath } from 'node:url';
import { loadConfigInSubprocess } from '../config-subprocess.ts';
import { agentMain } from '../run.ts';

// The config is read in a child process, as the robot's agent reads it: from the sources with
// agent/config-loader.ts, bundled with the edgectl-agent-config.cjs built beside it.
const loader = fileURLToPath(
  import.meta.url.endsWith('.ts')
    ? new URL('../config-loader.ts', import.meta.url)
    : new URL('./edgectl-agent-config.cjs', import.meta.url),
);

agentMain({
  entryName: 'the test agent',
  loadConfig: (path) => loadConfigInSubprocess(path, loader),
  runtimes: {
    memory: async ({ config }) =>
      new (await import('../control-plane/in-memory.ts')).InMemoryControlPlane(config.node.id),
    k3s: async (ctx) => {
      const { makeK3sControlPlane } = await import('../control-plane/k3s-runtime.ts');
      if (process.env['EDGECTL_ROBOT_MODEL'] !== '1') return makeK3sControlPlane(ctx);
      const { modelRobot } = await import('../k3s/testing/model-robot.ts');
      return modelRobot(ctx, makeK3sControlPlane);
    },
  },
});
