/**
 * The k3s runtime on a robot (docs/k3s.md): K3sControlPlane runs plans through the robot's own
 * CommandRunner, and gives the agent's LeaderSite (agent/site/leader-site.ts) the k3s server's
 * admin kubeconfig. Built only when `controlPlane.runtime: k3s`, so other runtimes never load it.
 * The config loader validated its section (agent/k3s/settings.ts K3sControlPlaneSchema), so this
 * chunk loads no zod.
 */
import type { Logger } from 'pino';
import type { AgentConfig } from '../config.ts';
import type { CommandRunner } from '../exec/runner.ts';
import type { K3sProbes } from '../k3s/robot-io.ts';
import type { ObjectClient } from '../site/object-client.ts';
import { K3sControlPlane } from './k3s.ts';
import { startSnapshotSharing } from './snapshot-sharing.ts';
import { DEFAULT_MAX_SNAPSHOT_BYTES, SnapshotStore } from './snapshots.ts';
import { ConfigError } from '../errors.ts';
import { LocalCommandRunner } from '../exec/local.ts';
import type { K3sControlPlaneConfig } from '../k3s/settings.ts';

/**
 * What a test or benchmark puts in place of the robot itself: the robot model for the commands and
 * probes (agent/k3s/testing/robot-model.ts) and an in-memory API server for the site's objects.
 */
export interface K3sRuntimeStandIns {
  readonly runner?: CommandRunner;
  readonly probes?: K3sProbes;
  /** The k3s server's API; default: the admin kubeconfig (controlPlane.kubeconfig). */
  readonly apiServer?: () => Promise<ObjectClient>;
}

export async function makeK3sControlPlane(
  config: AgentConfig,
  log: Logger,
  snapshotKeysFor?: (peer: string) => readonly Buffer[],
  standIns: K3sRuntimeStandIns = {},
): Promise<K3sControlPlane> {
  // The config loader validated the section and filled its defaults (agent/config.ts).
  if (config.controlPlane.runtime !== 'k3s' || !('k3s' in config.controlPlane))
    throw new ConfigError('controlPlane (k3s runtime)', ['controlPlane.k3s: required for runtime k3s'], {
      hint: 'edgectl bootstrap site writes these fields; see docs/k3s.md',
    });
  const r = { data: config.controlPlane as unknown as K3sControlPlaneConfig };
  const kubeconfig = r.data.kubeconfig;
  // Every server-capable robot keeps the snapshots the leader pushes, to restore when it leads.
  const sharing = await startSnapshotSharing({
    self: config.node.id,
    address: r.data.k3s.nodeIp,
    keysFor: snapshotKeysFor,
    serverCapable: r.data.k3s.serverCapable,
    receive: r.data.snapshotReceiver,
    store: () => new SnapshotStore(r.data.receivedSnapshotDir, 3, ''),
    maxBytes: r.data.snapshotMaxBytes ?? DEFAULT_MAX_SNAPSHOT_BYTES,
    log,
  });
  return new K3sControlPlane({
    snapshotKeys: sharing?.keys,
    receiver: sharing?.receiver,
    runner: standIns.runner ?? new LocalCommandRunner({ log: (line) => log.debug(line) }),
    probes: standIns.probes,
    node: { ...r.data.k3s, site: config.site.id, nodeName: config.node.id },
    // The Kubernetes client loads when this robot first leads: an idle worker never loads it.
    apiServer:
      standIns.apiServer ?? (async () => (await import('../site/kube-site.ts')).kubeObjectClient(kubeconfig)),
    siteMembers: () => [config.node.id, ...config.voters, ...config.network.seeds.map((s) => s.node)],
  });
}
