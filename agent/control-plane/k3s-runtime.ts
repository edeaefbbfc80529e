/**
 * The k3s runtime on a robot (docs/k3s.md): K3sControlPlane runs plans through the robot's own
 * CommandRunner, and the leader applies the site and acts on node loss with the agent's LeaderSite
 * (agent/site/leader-site.ts) through the k3s server's admin kubeconfig. Built only when
 * `controlPlane.runtime: k3s`, so other runtimes never load it. The config loader validated its
 * section (agent/k3s/settings.ts K3sControlPlaneSchema), so this chunk loads no zod.
 */
import type { Logger } from 'pino';
import type { AgentConfig } from '../config.ts';
import type { CommandRunner } from '../exec/runner.ts';
import type { K3sProbes } from '../k3s/robot-io.ts';
import type { LeaderSite, LeaderSiteOptions } from '../site/leader-site.ts';
import type { ObjectClient } from '../site/object-client.ts';
import { K3sControlPlane, type SiteApplyTarget } from './k3s.ts';
import {
  DEFAULT_MAX_SNAPSHOT_BYTES,
  logSnapshotPush,
  SnapshotReceiver,
  SnapshotStore,
  type SnapshotKeys,
} from './snapshots.ts';
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

/**
 * k3sSite is the leader's site (agent/site/leader-site.ts) on this robot's k3s server. Only a
 * leader applies the site or acts on node loss, so the installed spec and the addon templates are
 * read, and the spec parser (zod, yaml) and the Kubernetes client load, when this robot first
 * leads: an idle worker loads none of them.
 */
export function k3sSite(
  o: Pick<LeaderSiteOptions, 'nodeId' | 'log'> & {
    readonly siteSpecFile: string;
    readonly templatesDir: string;
    readonly apiServer: () => Promise<ObjectClient>;
  },
): SiteApplyTarget {
  let site: Promise<LeaderSite> | undefined;
  const leaderSite = () =>
    (site ??= (async () => {
      const [{ LeaderSite }, { loadSiteSpec }, { readAddonTemplates }] = await Promise.all([
        import('../site/leader-site.ts'),
        import('../site/spec.ts'),
        import('../site/addons.ts'),
      ]);
      return new LeaderSite({
        nodeId: o.nodeId,
        log: o.log,
        installed: loadSiteSpec(o.siteSpecFile),
        templates: readAddonTemplates(o.templatesDir),
      });
    })().catch((e: unknown) => {
      // A spec file that failed to load is read again at the next try (the lifecycle retries).
      site = undefined;
      throw e;
    }));
  return {
    apply: async (epoch, committed) => (await leaderSite()).apply(await o.apiServer(), epoch, committed),
    markNodeLost: async (node) => (await leaderSite()).markNodeLost(await o.apiServer(), node),
    markNodeReturned: async (node) => (await leaderSite()).markNodeReturned(await o.apiServer(), node),
  };
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
  const site = k3sSite({
    nodeId: config.node.id,
    siteSpecFile: r.data.siteSpecFile,
    templatesDir: r.data.templatesDir,
    log,
    apiServer:
      standIns.apiServer ?? (async () => (await import('../site/kube-site.ts')).kubeObjectClient(kubeconfig)),
  });
  // Every server-capable robot keeps the snapshots the leader pushes, to restore when it leads.
  const keys: SnapshotKeys | undefined = snapshotKeysFor ? { forPeer: snapshotKeysFor } : undefined;
  let receiver: SnapshotReceiver | undefined;
  if (keys && r.data.k3s.serverCapable && r.data.snapshotReceiver) {
    receiver = await SnapshotReceiver.start({
      self: config.node.id,
      address: r.data.k3s.nodeIp,
      keys,
      store: new SnapshotStore(r.data.receivedSnapshotDir, 3, ''),
      maxBytes: r.data.snapshotMaxBytes ?? DEFAULT_MAX_SNAPSHOT_BYTES,
      onPush: logSnapshotPush(log, config.node.id),
    });
    receiver.server.unref();
  }
  return new K3sControlPlane({
    snapshotKeys: keys,
    receiver,
    runner: standIns.runner ?? new LocalCommandRunner({ log: (line) => log.debug(line) }),
    probes: standIns.probes,
    node: { ...r.data.k3s, site: config.site.id, nodeName: config.node.id },
    site,
    siteMembers: () => [config.node.id, ...config.voters, ...config.network.seeds.map((s) => s.node)],
  });
}
