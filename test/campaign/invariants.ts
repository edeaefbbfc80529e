/**
 * The campaign's invariants, judged on a recorded history of a run. Pure, and independent of the
 * simulator's own SafetyChecker (lab/sim/checker.ts), which the campaign runs as well: two
 * implementations of each check, so a bug in one does not hide a violation. A lab run can be turned
 * into the same history (from the agents' logs and observations) and judged here.
 *
 *   one-leader-per-term   no two robots led the same term;
 *   overlapping-epochs    no robot's server ran (started, or resumed from a freeze) while another
 *                         robot's server ran: at most one serving epoch at a time;
 *   lost-commit           an entry once committed is never lost: it is never replaced at its index,
 *                         every later-term leader holds it when it wins, and at the end it is in the
 *                         durable log of a majority of voters;
 *   no-convergence        after the heal, within the bound, one leader that every voter follows at its
 *                         term, and it stays so for the stable period.
 */

export type HistoryEvent =
  | {
      readonly t: number;
      readonly kind: 'elected';
      readonly node: string;
      readonly term: number;
      readonly log: readonly string[];
    }
  | { readonly t: number; readonly kind: 'server-start'; readonly node: string; readonly epoch: number }
  | { readonly t: number; readonly kind: 'server-stop'; readonly node: string; readonly epoch: number }
  | { readonly t: number; readonly kind: 'kill' | 'restart' | 'pause'; readonly node: string }
  /** A frozen robot woke up and caught up with what queued while it was frozen. */
  | { readonly t: number; readonly kind: 'resume'; readonly node: string }
  | {
      readonly t: number;
      readonly kind: 'commit';
      readonly node: string;
      readonly index: number;
      readonly entry: string;
      /** The committing robot's term when it learned the commit. */
      readonly term: number;
    };

/** A sample of the site after the heal: the agreed leader, or why there is none. */
export type Sample =
  | { readonly t: number; readonly leader: string; readonly term: number }
  | { readonly t: number; readonly none: string };

export interface History {
  readonly voters: readonly string[];
  readonly events: readonly HistoryEvent[];
  readonly healAtMs: number;
  /** Samples every heartbeat from the heal on. */
  readonly samples: readonly Sample[];
  /** The durable logs (entry keys) of every robot at the end. */
  readonly finalDurableLogs: Readonly<Record<string, readonly string[]>>;
}

export type InvariantName = 'one-leader-per-term' | 'overlapping-epochs' | 'lost-commit' | 'no-convergence';

export interface InvariantViolation {
  readonly invariant: InvariantName;
  readonly atMs: number;
  readonly detail: string;
}

export interface ConvergenceRule {
  /** A single agreed leader must be first seen within this long after the heal. */
  readonly boundMs: number;
  /** …and hold, unchanged, this long. */
  readonly stableMs: number;
}

export function checkOneLeaderPerTerm(h: History): InvariantViolation[] {
  const out: InvariantViolation[] = [];
  const byTerm = new Map<number, string>();
  for (const e of h.events) {
    if (e.kind !== 'elected') continue;
    const prior = byTerm.get(e.term);
    if (prior !== undefined && prior !== e.node)
      out.push({
        invariant: 'one-leader-per-term',
        atMs: e.t,
        detail: `${prior} and ${e.node} both led term ${e.term}`,
      });
    else byTerm.set(e.term, e.node);
  }
  return out;
}

/**
 * checkEpochs walks the history in order, keeping each robot's server (epoch) and whether the robot
 * runs (a frozen or dead robot's server does not serve). A server that starts, or a frozen server
 * that resumes, while another robot's server runs is an overlap.
 */
export function checkEpochs(h: History): InvariantViolation[] {
  const out: InvariantViolation[] = [];
  const server = new Map<string, number>();
  const frozen = new Set<string>();
  const running = (except: string) =>
    [...server].filter(([n]) => n !== except && !frozen.has(n)).map(([n, ep]) => `${n} (epoch ${ep})`);
  for (const e of h.events) {
    switch (e.kind) {
      case 'server-start': {
        const others = running(e.node);
        if (others.length)
          out.push({
            invariant: 'overlapping-epochs',
            atMs: e.t,
            detail: `${e.node} started epoch ${e.epoch} while ${others.join(', ')} served`,
          });
        server.set(e.node, e.epoch);
        break;
      }
      case 'server-stop':
        server.delete(e.node);
        break;
      case 'kill':
        server.delete(e.node);
        frozen.delete(e.node);
        break;
      case 'pause':
        frozen.add(e.node);
        break;
      case 'resume': {
        frozen.delete(e.node);
        const mine = server.get(e.node);
        const others = running(e.node);
        if (mine !== undefined && others.length)
          out.push({
            invariant: 'overlapping-epochs',
            atMs: e.t,
            detail: `${e.node} resumed serving epoch ${mine} while ${others.join(', ')} served`,
          });
        break;
      }
      default:
        break;
    }
  }
  return out;
}

export function checkCommits(h: History): InvariantViolation[] {
  const out: InvariantViolation[] = [];
  const committed: string[] = [];
  const commitTerm: number[] = [];
  for (const e of h.events) {
    if (e.kind === 'commit') {
      const i = e.index - 1;
      const known = committed[i];
      if (known === undefined) {
        committed[i] = e.entry;
        commitTerm[i] = e.term;
      } else if (known !== e.entry) {
        out.push({
          invariant: 'lost-commit',
          atMs: e.t,
          detail: `${e.node} committed ${e.entry} at index ${e.index}, where ${known} was committed`,
        });
      } else commitTerm[i] = Math.min(commitTerm[i]!, e.term);
    } else if (e.kind === 'elected') {
      // Leaders of later terms hold everything committed before (Leader Completeness); a leader of a
      // stale term cannot commit or serve, and need not.
      for (let i = 0; i < committed.length; i++) {
        if (committed[i] === undefined || commitTerm[i]! >= e.term) continue;
        if (e.log[i] !== committed[i]) {
          out.push({
            invariant: 'lost-commit',
            atMs: e.t,
            detail: `${e.node} won term ${e.term} without committed entry ${i + 1} (${committed[i]}); it has ${e.log[i] ?? 'nothing'}`,
          });
          break;
        }
      }
    }
  }
  // At the end, every committed entry is durable on a majority of voters.
  const quorum = Math.floor(h.voters.length / 2) + 1;
  for (let i = 0; i < committed.length; i++) {
    if (committed[i] === undefined) continue;
    const holders = h.voters.filter((v) => h.finalDurableLogs[v]?.[i] === committed[i]).length;
    if (holders < quorum) {
      out.push({
        invariant: 'lost-commit',
        atMs: Infinity,
        detail: `committed entry ${i + 1} (${committed[i]}) is durable on ${holders} voters at the end, fewer than ${quorum}`,
      });
      break;
    }
  }
  return out;
}

/**
 * convergedAt: the time after the heal at which the agreement that then held for `stableMs` was first
 * seen, or a reason why there was none within the bound.
 */
export function convergedAt(h: History, rule: ConvergenceRule): { afterMs: number } | { why: string } {
  let since: { leader: string; term: number; t: number } | null = null;
  let why = 'no samples after the heal';
  for (const s of h.samples) {
    if ('none' in s) {
      why = since ? `${since.leader}@${since.term} from ${since.t} ms, then at ${s.t} ms: ${s.none}` : s.none;
      since = null;
      continue;
    }
    if (!since || since.leader !== s.leader || since.term !== s.term) {
      if (since)
        why = `${since.leader}@${since.term} from ${since.t} ms gave way to ${s.leader}@${s.term} at ${s.t} ms`;
      since = s.t - h.healAtMs <= rule.boundMs ? { leader: s.leader, term: s.term, t: s.t } : null;
      if (!since)
        why = `first agreement (${s.leader}@${s.term}) only at ${s.t - h.healAtMs} ms after the heal`;
      continue;
    }
    if (s.t - since.t >= rule.stableMs) return { afterMs: since.t - h.healAtMs };
  }
  return { why };
}

export function checkConvergence(h: History, rule: ConvergenceRule): InvariantViolation[] {
  const c = convergedAt(h, rule);
  if ('afterMs' in c) return [];
  return [
    {
      invariant: 'no-convergence',
      atMs: h.healAtMs + rule.boundMs,
      detail: `no single leader followed by every voter for ${rule.stableMs} ms, first seen within ${rule.boundMs} ms of the heal at ${h.healAtMs} ms; last: ${c.why}`,
    },
  ];
}

/** checkHistory runs every invariant. */
export function checkHistory(h: History, rule: ConvergenceRule): InvariantViolation[] {
  return [...checkOneLeaderPerTerm(h), ...checkEpochs(h), ...checkCommits(h), ...checkConvergence(h, rule)];
}
