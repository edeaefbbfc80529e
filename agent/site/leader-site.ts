/**
 * LeaderSite: what a leading robot does to the site, on every runtime: apply it for an epoch (the
 * newest spec committed in the site log, else the one installed with the robot), and act on node
 * loss (taint a lost robot's Node out-of-service, or delete it, and free its Whereabouts IPs; take
 * the taint off when it is back). The runtimes give only the way to their API server, an
 * ObjectClient for the server that serves now: the k3s server's admin kubeconfig on a robot
 * (agent/control-plane/k3s-runtime.ts), the lab's kube-apiserver and its token
 * (lab/runtime/lab-control-plane.ts). The logic is the SiteApplier's (applier.ts).
 *
 * It loads the Kubernetes client with applier.ts: a runtime imports this module when its robot
 * first leads, so a worker never loads it.
 */
import type { Logger } from 'pino';
import type { AddonTemplate } from './addons.ts';
import {
  ObjectSiteApplier,
  type ApplyReport,
  type NodeLostReport,
  type NodeReturnedReport,
} from './applier.ts';
import type { ObjectClient } from './object-client.ts';
import type { SiteSpecVersion } from './spec-log.ts';
import { parseSpecText } from './spec-source.ts';
import type { SiteSpec } from './spec.ts';

export interface LeaderSiteOptions {
  /** This robot, for the log lines. */
  readonly nodeId: string;
  /** The spec installed with the robot: applied while the site log holds none. */
  readonly installed: SiteSpec;
  /** The addon templates (CRDs, Multus, Whereabouts); default: the repository's templates/. */
  readonly templates?: readonly AddonTemplate[];
  readonly log: Pick<Logger, 'info' | 'warn'>;
}

export class LeaderSite {
  private readonly o: LeaderSiteOptions;
  /**
   * The spec applied last: its nodeLoss settings decide what a lost robot's Node gets. Until this
   * robot has applied one, the installed spec.
   */
  private current: SiteSpec;

  constructor(o: LeaderSiteOptions) {
    this.o = o;
    this.current = o.installed;
  }

  async apply(client: ObjectClient, epoch: number, committed?: SiteSpecVersion | null): Promise<ApplyReport> {
    const spec = committed
      ? await parseSpecText(committed.text, `site spec version ${committed.version}`)
      : this.o.installed;
    const report = await new ObjectSiteApplier(client, {
      spec,
      log: this.o.log,
      templates: this.o.templates,
    }).apply(epoch);
    this.current = spec;
    this.o.log.info(
      { epoch, report, specVersion: committed?.version ?? null },
      `${this.o.nodeId} applied site ${spec.id} for epoch ${epoch}`,
    );
    return report;
  }

  async markNodeLost(client: ObjectClient, node: string): Promise<NodeLostReport> {
    const report = await this.nodeApplier(client).markNodeLost(node);
    this.o.log.warn(
      { peer: node, report },
      `${this.o.nodeId} marked ${node} lost (${report.action === 'delete' ? 'deleted' : 'out-of-service'})`,
    );
    return report;
  }

  async markNodeReturned(client: ObjectClient, node: string): Promise<NodeReturnedReport> {
    const report = await this.nodeApplier(client).markNodeReturned(node);
    this.o.log.info({ peer: node, report }, `${this.o.nodeId} marked ${node} returned`);
    return report;
  }

  /** Node loss writes no addons: an applier without templates. */
  private nodeApplier(client: ObjectClient): ObjectSiteApplier {
    return new ObjectSiteApplier(client, { spec: this.current, log: this.o.log, addons: false });
  }
}
