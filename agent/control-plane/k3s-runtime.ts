/**
 * The k3s runtime on a robot (docs/k3s.md): K3sControlPlane runs plans through the robot's own
 * CommandRunner, and gives the agent's LeaderSite (agent/site/leader-site.ts) the k3s server's
 * admin kubeconfig. Built only when `controlPlane.runtime: k3s`, so other runtimes never load it.
 * The config loader validated its section (agent/k3s/settings.ts K3sControlPlaneSchema), so this
 * chunk loads no zod.
 */
import { fileURLToPath } from 'node:url';
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
  /** The k3s server's API; default: the admin kubeconfig (controlPlane.kubeconfig), from a child process. */
  readonly apiServer?: () => Promise<ObjectClient>;
}

/** What makeK3sControlPlane takes beyond the config: the stand-ins, and where the entry keeps its files. */
export interface K3sRuntimeOptions extends K3sRuntimeStandIns {
  /**
   * The path of the child that runs the leader's Kubernetes client (agent/site/kube-child.ts):
   * edgectl-agent-kube.cjs beside a bundled entry, which passes it (RuntimeContext.kubeWorker).
   * Default: the one beside the k3s runtime's own code (defaultKubeWorker).
   */
  readonly kubeWorker?: () => string;
}

/**
 * defaultKubeWorker: the child's entry beside the k3s runtime's code: agent/site/kube-worker.ts in
 * the sources, edgectl-agent-kube.cjs in a bundle, whose chunks are all in the entry's directory.
 */
function defaultKubeWorker(): string {
  return fileURLToPath(
    import.meta.url.endsWith('.ts')
      ? new URL('../site/kube-worker.ts', import.meta.url)
      : new URL('./edgectl-agent-kube.cjs', import.meta.url),
  );
}

export async function makeK3sControlPlane(
  config: AgentConfig,
  log: Logger,
  snapshotKeysFor?: (peer: string) => readonly Buffer[],
  standIns: K3sRuntimeOptions = {},
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
    // The Kubernetes client runs in a child process that a leader starts for a burst of calls and
    // ends when idle, so that this process never loads node:https, tls and node:crypto
    // (agent/site/kube-child.ts). Its module loads when this robot first leads.
    apiServer:
      standIns.apiServer ??
      (async () => {
        const { ChildObjectClient } = await import('../site/kube-child.ts');
        const worker = standIns.kubeWorker?.() ?? defaultKubeWorker();
        return new ChildObjectClient({ worker, args: [kubeconfig] });
      }),
    siteMembers: () => [config.node.id, ...config.voters, ...config.network.seeds.map((s) => s.node)],
  });
}
