/**
 * The runtimes a robot runs: k3s on a robot that may lead or work, none on a witness. The robot's
 * entry (agent/main.ts) and `edgectl agent run` register exactly these; the lab's entry and the
 * tests' entry add their own beside them. Each factory loads its runtime's code when it is first
 * used, so a witness never loads the k3s runtime's chunk.
 */
import type { RuntimeRegistry } from './run.ts';

export const ROBOT_RUNTIMES: RuntimeRegistry = {
  k3s: async ({ config, log, snapshotKeysFor, kubeWorker }) =>
    (await import('./control-plane/k3s-runtime.ts')).makeK3sControlPlane(
      config,
      log,
      snapshotKeysFor,
      kubeWorker === undefined ? {} : { kubeWorker },
    ),
  none: async () => new (await import('./control-plane/witness.ts')).WitnessRuntime(),
};
