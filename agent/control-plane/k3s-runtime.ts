/**
 * The k3s runtime on a robot (docs/k3s.md): K3sControlPlane runs plans through the robot's own
 * CommandRunner; the agent's SiteApplier reaches the k3s server through its admin kubeconfig
 * (agent/site/leader-site.ts). Built only when `controlPlane.runtime: k3s`, so other runtimes
 * never load it. The config loader validated the section (agent/config.ts), so this chunk loads
 * neither zod nor yaml into the agent's process.
 */
import type { CommandRunner } from '../exec/runner.ts';
import type { K3sProbes } from '../k3s/robot-io.ts';
import { LocalCommandRunner } from '../exec/local.ts';
import type { RuntimeContext } from '../run.ts';
import { fromRuntimeRecord, K3sControlPlane } from './k3s.ts';
import { SnapshotStore, snapshotKey, startSnapshotReceiver } from './snapshots.ts';
import { ConfigError } from '../errors.ts';

export async function makeK3sControlPlane(
  { config, log, siteKey }: RuntimeContext,
  /** The robot model in tests and benchmarks (agent/k3s/testing/robot-model.ts); default: this robot. */
  opts: { runner?: CommandRunner; probes?: K3sProbes } = {},
): Promise<K3sControlPlane> {
  const cp = config.controlPlane;
  if (cp.runtime !== 'k3s')
    throw new ConfigError('agent config', [`controlPlane.runtime: ${cp.runtime} is not k3s`]);
  const r = { data: cp };
  // Every server-capable robot keeps the sealed snapshots the leader pushes, to restore when it leads.
  let received: SnapshotStore | undefined;
  const key = siteKey ? snapshotKey(siteKey) : undefined;
  if (key && r.data.k3s.serverCapable && r.data.snapshotReceiver) {
    received = new SnapshotStore(r.data.receivedSnapshotDir, 3, '');
    const store = received;
    const server = await startSnapshotReceiver({
      address: r.data.k3s.nodeIp,
      key,
      store,
      onSaved: (rec) =>
        log.info(
          { snapshot: rec.name, epoch: rec.epoch },
          `${config.node.id} kept snapshot ${rec.name} from ${rec.from}`,
        ),
      onRejected: (why) => log.warn(`${config.node.id} rejected a snapshot: ${why}`),
    });
    server.unref();
  }
  return new K3sControlPlane({
    snapshotKey: key,
    receivedRecords: () => (received ? received.records().map(fromRuntimeRecord) : []),
    runner: opts.runner ?? new LocalCommandRunner({ log: (line) => log.debug(line) }),
    probes: opts.probes,
    node: { ...r.data.k3s, site: config.site.id, nodeName: config.node.id },
    kubeconfig: r.data.kubeconfig,
    siteMembers: () => [config.node.id, ...config.voters, ...config.network.seeds.map((s) => s.node)],
  });
}
