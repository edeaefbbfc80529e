/**
 * LeaderSite: what a leading robot does to the site, on every runtime: apply it for an epoch (the
 * newest spec committed in the site log, else the one installed with the robot), and act on node
 * loss (taint a lost robot's Node out-of-service, or delete it, and free its Whereabouts IPs; take
 * the taint off when it is back). The agent owns the one LeaderSite of its robot (agent/agent.ts)
 * and drives it on every runtime; a runtime gives only the way to its API server, an ObjectClient
 * for the server it serves now (ControlPlaneRuntime.siteServer): the k3s server's admin kubeconfig
 * on a robot, the lab's kube-apiserver and its token. The logic is the SiteApplier's (applier.ts).
 *
 * The agent imports this module when its robot first leads, so a worker never loads it. It parses
 * nothing itself: `load` (the agent's SiteSpecSource) validates a spec and reads the addon
 * templates, in a child process for the bundled agent, so that neither this module nor the apply
 * path it imports loads zod or yaml.
 */
import type { Logger } from 'pino';
import { EdgeError } from '../errors.ts';
import {
  ObjectSiteApplier,
  type ApplyOptions,
  type ApplyReport,
  type NodeLostReport,
  type NodeReturnedReport,
} from './applier.ts';
import type { ObjectClient } from './object-client.ts';
import type { SiteSpecVersion } from './spec-log.ts';
import type { LoadedSite } from './spec-source.ts';
import type { SiteSpec } from './spec.ts';

export interface LeaderSiteOptions {
  /** This robot, for the log lines. */
  readonly nodeId: string;
  /** Validates a spec's text and reads the addon templates (SiteSpecSource.load). */
  readonly load: (text: string, source: string) => Promise<LoadedSite>;
  readonly log: Pick<Logger, 'info' | 'warn'>;
}

export class LeaderSite {
  private readonly o: LeaderSiteOptions;
  /**
   * The spec applied last: its nodeLoss settings decide what a lost robot's Node gets. Null until
   * this robot has applied one: it then acts on no node loss.
   */
  private current: SiteSpec | null = null;
  /** The spec text loaded last and what it loaded to: a reconcile of the same spec loads nothing. */
  private loaded: { readonly text: string; readonly site: LoadedSite } | null = null;

  constructor(o: LeaderSiteOptions) {
    this.o = o;
  }

  /** Whether a spec has been applied: only then does node loss have settings to follow. */
  get applied(): boolean {
    return this.current !== null;
  }

  /**
   * apply writes the site of `spec` for `epoch`: a version committed in the site log, or the
   * installed spec (canonical JSON from the agent's SiteSpecSource, version 0) while the log holds
   * none.
   */
  async apply(
    client: ObjectClient,
    epoch: number,
    committed: Pick<SiteSpecVersion, 'text' | 'version'>,
    o: ApplyOptions = {},
  ): Promise<ApplyReport> {
    if (this.loaded?.text !== committed.text) {
      const site = await this.o.load(
        committed.text,
        committed.version === 0 ? 'installed site spec' : `site spec version ${committed.version}`,
      );
      this.loaded = { text: committed.text, site };
    }
    const { spec, templates } = this.loaded.site;
    const report = await new ObjectSiteApplier(client, { spec, log: this.o.log, templates }).apply(epoch, o);
    this.current = spec;
    this.o.log.info(
      { epoch, report, specVersion: committed.version === 0 ? null : committed.version },
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
    if (!this.current)
      throw new EdgeError(
        'SITE_NOT_APPLIED',
        `${this.o.nodeId} has applied no site spec to act on node loss with`,
      );
    return new ObjectSiteApplier(client, { spec: this.current, log: this.o.log, addons: false });
  }
}
