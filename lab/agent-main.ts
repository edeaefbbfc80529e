/**
 * The lab's agent entry: `node lab/agent-main.ts --config <agent.yaml>`, what `edgectl lab up`
 * starts in each robot's network namespace. It is the robot's agent (agent/run.ts) with the lab
 * runtime registered beside the robot's: a real kube-apiserver + etcd per epoch and a lab kubelet
 * (lab/runtime/lab-control-plane.ts), since k3s needs a robot's systemd. It reads its config in
 * process (agent/config.ts): the lab's agents run from the sources, where zod and yaml cost nothing
 * a robot would pay. `npm run build:lab-agent` bundles it for `edgectl bootstrap site` into lab
 * robots (lab/bundle/).
 */
import { loadAgentConfig } from '../agent/config.ts';
import { agentMain } from '../agent/run.ts';
import { ROBOT_RUNTIMES } from '../agent/runtimes.ts';

agentMain({
  entryName: 'the lab agent',
  loadConfig: loadAgentConfig,
  runtimes: {
    ...ROBOT_RUNTIMES,
    lab: async ({ config, log, snapshotKeysFor }) =>
      (await import('./runtime/lab-control-plane.ts')).makeLabControlPlane({
        nodeId: config.node.id,
        siteId: config.site.id,
        stateDir: config.stateDir,
        labels: config.node.labels,
        controlPlane: config.controlPlane,
        log,
        snapshotKeysFor,
        serverCapable: config.voters.includes(config.node.id),
        servers: config.voters,
      }),
  },
});
