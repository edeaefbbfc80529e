import { ObjectSiteApplier, type SiteApplierOptions } from '../applier.ts';
import { InMemoryObjectClient } from '../in-memory-client.ts';

/**
 * InMemorySiteApplier is the twin: it records what apply writes, and the taints, in `cluster`, which
 * several appliers (a leader change, a spec change) may share.
 */
export class InMemorySiteApplier extends ObjectSiteApplier {
  readonly cluster: InMemoryObjectClient;
  constructor(opts: SiteApplierOptions & { cluster?: InMemoryObjectClient }) {
    const cluster = opts.cluster ?? new InMemoryObjectClient();
    super(cluster, opts);
    this.cluster = cluster;
  }
}
