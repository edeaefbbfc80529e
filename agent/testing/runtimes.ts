/**
 * The runtimes the tests' agents run: the robot's (agent/runtimes.ts) and the in-memory control
 * plane (agent/control-plane/in-memory.ts), for tests that run real agents without a control
 * plane of their own. Only agent/testing/main.ts and tests register it; no robot or lab entry does.
 */
import type { RuntimeRegistry } from '../run.ts';
import { ROBOT_RUNTIMES } from '../runtimes.ts';

export const TEST_RUNTIMES: RuntimeRegistry = {
  ...ROBOT_RUNTIMES,
  memory: async ({ config }) =>
    new (await import('../control-plane/in-memory.ts')).InMemoryControlPlane(config.node.id),
};
