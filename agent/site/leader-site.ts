/**
 * The agent's SiteApplier (applier.ts): what the leader does on the server it serves for the site
 * (apply it on every new epoch, mark a robot lost past the grace period and back), the same on every
 * control-plane runtime. The runtime only says how to reach its server (ControlPlaneRuntime
 * apiServer).
 *
 * This module is on the agent's idle path and stays small: the applier, the site renderer and the
 * Kubernetes client (kube-site.ts) load with the first call, which only a leader makes, so a worker
 * never loads them.
 */
import type { ApiServerAccess } from '../control-plane/runtime.ts';
import type { NodeLostReport, NodeReturnedReport, SiteApplier, SiteLog, ApplyReport } from './applier.ts';
import type { SiteSpec } from './spec.ts';

export interface LeaderSiteOptions {
  /** The site spec (the config loader read and validated it: AgentConfig siteSpec). */
  readonly spec: SiteSpec;
  /** The addon templates (CRDs, Multus, Whereabouts); default: the repository's templates/. */
  readonly templatesDir?: string;
  readonly log: SiteLog;
  /** How to reach the server this robot serves (the runtime's apiServer). */
  readonly server: () => ApiServerAccess;
}

/** leaderSiteApplier: the agent's SiteApplier, loading its implementation when first used. */
export function leaderSiteApplier(o: LeaderSiteOptions): SiteApplier {
  let impl: Promise<typeof import('./kube-site.ts')> | undefined;
  const applier = async (addons: boolean) => {
    impl ??= import('./kube-site.ts');
    return (await impl).siteApplierFor(o.server(), { ...o, addons });
  };
  return {
    apply: async (epoch): Promise<ApplyReport> => (await applier(true)).apply(epoch),
    markNodeLost: async (node): Promise<NodeLostReport> => (await applier(false)).markNodeLost(node),
    markNodeReturned: async (node): Promise<NodeReturnedReport> =>
      (await applier(false)).markNodeReturned(node),
  };
}
