/**
 * The runtimes the tests' agents run: the robot's (agent/runtimes.ts), the k3s runtime over the
 * robot model on request, and the in-memory control plane (agent/control-plane/testing/in-memory.ts), for
 * tests that run real agents without a control plane of their own. Only agent/testing/main.ts and tests register it; no robot or lab entry does.
 */
import type { RuntimeRegistry } from '../run.ts';
import { ROBOT_RUNTIMES } from '../runtimes.ts';

export const TEST_RUNTIMES: RuntimeRegistry = {
  ...ROBOT_RUNTIMES,
  // With EDGECTL_ROBOT_MODEL=1, the k3s runtime's own code over the robot model where k3s is
  // absent (agent/k3s/testing/model-robot.ts): bench:agent measures the robot's code path so.
  k3s: async (ctx) =>
    process.env['EDGECTL_ROBOT_MODEL'] === '1'
      ? (await import('../k3s/testing/model-robot.ts')).modelRobot(ctx)
      : ROBOT_RUNTIMES.k3s!(ctx),
  memory: async ({ config }) =>
    new (await import('../control-plane/testing/in-memory.ts')).InMemoryControlPlane(config.node.id),
};
