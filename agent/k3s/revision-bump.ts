/**
 * One history across a takeover (docs/k3s.md "One history"): a datastore restored from a replica or
 * a snapshot holds an older revision than the old leader may already have handed to clients as
 * resourceVersions. Before the restored etcd first starts, its revision moves forward by a fixed,
 * large amount and everything below is marked compacted, as `etcdutl snapshot restore
 * --bump-revision --mark-compacted` does (etcd 3.5 and later); robots and the lab run etcd 3.4,
 * so edgectl ships its own small tool for it (tools/etcd-revision-bump). Clients then see time move
 * forward, and a watch or a list from an old resourceVersion gets 410 Gone and relists.
 *
 * Pure: the k3s takeover plan (agent/k3s/replica-plans.ts datastoreStartPlan) puts this step right
 * after its restore step and before the datastore unit starts; the lab runs the same tool
 * (lab/runtime/revision-bump.ts).
 */
import { EdgeError } from '../errors.ts';
import type { Plan, PlanStep } from '../plan/plan.ts';

/** Where bootstrap installs the tool on a voter (a static Go binary, beside etcd). */
export const REVISION_BUMP_BIN = '/usr/local/bin/edgectl-etcd-revision-bump';

/**
 * How far a restored datastore's revision moves forward. The old leader can have issued at most
 * its write rate times the time it served beyond what the new leader restored: seconds to minutes
 * (its lease fences it). A fixed 10^9 (the amount commonly used with etcdutl's --bump-revision) covers 1000
 * writes a second for eleven days, needs no knowledge of the dead leader, and still leaves room
 * for millions of takeovers in etcd's int64 revisions and in a JavaScript number (2^53) that
 * carries a revision in edgectl.
 */
export const REVISION_BUMP = 1_000_000_000;

/**
 * revisionBumpStep: the command that moves the stopped, freshly restored etcd data dir `dataDir`
 * forward. Run it only after a restore (a replica or a snapshot), never on a data dir the epoch
 * already served from: there the revision is already the newest this robot issued. The tool is a
 * no-op on a data dir it bumped and etcd has not written to since, so a resumed plan does not bump
 * twice; it fails while etcd holds the data dir.
 */
export function revisionBumpStep(dataDir: string, by: number = REVISION_BUMP): PlanStep {
  if (!dataDir.startsWith('/') || /\s/.test(dataDir))
    throw new EdgeError('BAD_DATA_DIR', `etcd data dir "${dataDir}" must be an absolute path without spaces`);
  if (!Number.isSafeInteger(by) || by <= 0)
    throw new EdgeError('BAD_REVISION_BUMP', `a revision bump must be a positive integer, not ${by}`);
  return {
    kind: 'run',
    id: 'revision-bump',
    description: `move the restored datastore's revision forward by ${by} and mark all before compacted (one history)`,
    argv: [REVISION_BUMP_BIN, `--data-dir=${dataDir}`, `--by=${by}`],
  };
}

/**
 * withRevisionBump: `plan` with the bump of `dataDir` right after its restore step (id `restore`),
 * so it runs before anything starts etcd on the restored data; a plan that restores nothing (a
 * datastore that starts empty, or the epoch's own data) is returned as it is.
 */
export function withRevisionBump(plan: Plan, dataDir: string, by: number = REVISION_BUMP): Plan {
  const at = plan.steps.findIndex((s) => s.id === 'restore');
  if (at < 0) return plan;
  return {
    ...plan,
    steps: [...plan.steps.slice(0, at + 1), revisionBumpStep(dataDir, by), ...plan.steps.slice(at + 1)],
  };
}
