/**
 * The one fault vocabulary of edgectl. The in-process simulator (lab/sim) and the network-namespace
 * lab implement the same verbs, so a fault schedule moves from one to the other unchanged:
 *
 *   drop:<a>-><b>=<p>   lose a fraction p of the datagrams from a to b (one direction)
 *   cut:<a>,<b>         lose everything between a and b (both directions)
 *   isolate:<a>         cut a from everyone (Wi-Fi loss)
 *   partition:<a,b>/<c,d,e>  only robots in the same group hear each other
 *   heal                undo drop, cut, isolate and partition
 *   burst:<duration>    every link loses every datagram for the duration (a roam, a microwave oven)
 *   kill:<a>            power loss: the robot stops at once; only what it persisted survives
 *   restart:<a>         power on after a kill
 *   pause:<a>           freeze the robot (SIGSTOP); datagrams queue in its socket buffer
 *   resume:<a>          unfreeze (SIGCONT)
 *   transfer[:<a>]      planned leadership transfer (to a, or to the best voter)
 *
 * `leader` names whichever robot leads when the fault fires; `all` names every robot (for kill,
 * restart, pause and resume). `kill-leader` is `kill:leader`.
 * A timed fault is `<fault>@<time>`, e.g. `partition:r1,r2/r3,r4,r5@60s`.
 */
import { UsageError } from '../agent/errors.ts';

export type Target = string; // a robot name, 'leader', or 'all'

export type Fault =
  | { readonly kind: 'drop'; readonly from: Target; readonly to: Target; readonly rate: number }
  | { readonly kind: 'cut'; readonly a: Target; readonly b: Target }
  | { readonly kind: 'isolate'; readonly node: Target }
  | { readonly kind: 'partition'; readonly groups: readonly (readonly Target[])[] }
  | { readonly kind: 'heal' }
  | { readonly kind: 'burst'; readonly durationMs: number }
  | { readonly kind: 'kill'; readonly node: Target }
  | { readonly kind: 'restart'; readonly node: Target }
  | { readonly kind: 'pause'; readonly node: Target }
  | { readonly kind: 'resume'; readonly node: Target }
  | { readonly kind: 'transfer'; readonly to?: Target };

export type FaultKind = Fault['kind'];
export const FAULT_KINDS: readonly FaultKind[] = [
  'drop',
  'cut',
  'isolate',
  'partition',
  'heal',
  'burst',
  'kill',
  'restart',
  'pause',
  'resume',
  'transfer',
];

export interface TimedFault {
  readonly atMs: number;
  readonly fault: Fault;
}

const NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;

/**
 * parseDuration reads `1.5s`, `200ms`, `2m` or `1h`. The unit is required: a bare `120` could mean
 * seconds as well as milliseconds, so only `0` may go without one.
 */
export function parseDuration(text: string, what = 'duration'): number {
  const t = text.trim();
  if (t === '0') return 0;
  const m = /^(\d+(?:\.\d+)?(?:e[+-]?\d+)?)(ms|s|m|h)?$/i.exec(t);
  if (!m) {
    throw new UsageError('BAD_DURATION', `${what} "${text}" is not a duration`, {
      hint: 'write a number with a unit: 200ms, 1.5s, 2m or 1h',
    });
  }
  if (m[2] === undefined) {
    throw new UsageError('BAD_DURATION', `${what} "${text}" has no unit`, {
      hint: `write ${t}s for seconds or ${t}ms for milliseconds`,
    });
  }
  const unit = m[2].toLowerCase();
  const ms = Number(m[1]) * (unit === 'ms' ? 1 : unit === 's' ? 1000 : unit === 'm' ? 60_000 : 3_600_000);
  if (!Number.isFinite(ms)) {
    throw new UsageError('BAD_DURATION', `${what} "${text}" is too long to be a duration`, {
      hint: 'write a duration of hours at most, e.g. 10m or 2h',
    });
  }
  return ms;
}

function target(text: string, spec: string): Target {
  if (text === 'leader' || text === 'all' || NAME.test(text)) return text;
  throw new UsageError('BAD_FAULT', `fault "${spec}": "${text}" is not a robot name`, {
    hint: 'robot names are lower-case letters, digits and dashes (r1, spot-2), or "leader" or "all"',
  });
}

/** parseFault reads one fault without a time, e.g. `partition:r1,r2/r3`. */
export function parseFault(spec: string): Fault {
  const text = spec.trim();
  if (text === 'kill-leader') return { kind: 'kill', node: 'leader' };
  const colon = text.indexOf(':');
  const kind = colon < 0 ? text : text.slice(0, colon);
  const arg = colon < 0 ? '' : text.slice(colon + 1);
  const need = (ok: boolean, form: string): void => {
    if (!ok)
      throw new UsageError('BAD_FAULT', `fault "${spec}" is malformed`, { hint: `write it as ${form}` });
  };
  switch (kind) {
    case 'drop': {
      // Robot names may contain dashes (spot-2): split at the arrow, not at the first dash.
      const m = /^(.+?)->(.+)=(\d*\.?\d+(?:e[+-]?\d+)?)$/i.exec(arg);
      need(m !== null, 'drop:<a>-><b>=<fraction>, e.g. drop:r1->r2=0.3');
      const rate = Number(m![3]);
      need(rate >= 0 && rate <= 1, 'a drop fraction between 0 and 1');
      return { kind, from: target(m![1]!, spec), to: target(m![2]!, spec), rate };
    }
    case 'cut': {
      const parts = arg.split(',');
      need(parts.length === 2, 'cut:<a>,<b>');
      return { kind, a: target(parts[0]!, spec), b: target(parts[1]!, spec) };
    }
    case 'isolate':
    case 'kill':
    case 'restart':
    case 'pause':
    case 'resume':
      need(arg.length > 0, `${kind}:<robot>`);
      return { kind, node: target(arg, spec) };
    case 'partition': {
      const groups = arg.split('/').map((g) =>
        g
          .split(',')
          .filter(Boolean)
          .map((n) => target(n, spec)),
      );
      need(groups.length >= 2 && groups.every((g) => g.length > 0), 'partition:<a,b>/<c,d,e>');
      const all = groups.flat();
      need(new Set(all).size === all.length, 'a partition in which each robot appears once');
      return { kind, groups };
    }
    case 'heal':
      need(arg === '', 'heal');
      return { kind };
    case 'burst':
      return { kind, durationMs: parseDuration(arg, `burst length in "${spec}"`) };
    case 'transfer':
      return arg ? { kind, to: target(arg, spec) } : { kind };
    default:
      throw new UsageError('BAD_FAULT', `unknown fault "${kind}" in "${spec}"`, {
        hint: `use one of: ${FAULT_KINDS.join(', ')}, kill-leader`,
      });
  }
}

/** parseTimedFault reads `<fault>@<time>`, e.g. `kill-leader@20s`. */
export function parseTimedFault(spec: string): TimedFault {
  const at = spec.lastIndexOf('@');
  if (at < 0) {
    throw new UsageError('BAD_FAULT', `fault "${spec}" has no time`, {
      hint: 'add @<time>, e.g. kill-leader@20s',
    });
  }
  return {
    atMs: parseDuration(spec.slice(at + 1), `time of "${spec}"`),
    fault: parseFault(spec.slice(0, at)),
  };
}

/** formatFault is the inverse of parseFault. */
export function formatFault(f: Fault): string {
  switch (f.kind) {
    case 'drop':
      return `drop:${f.from}->${f.to}=${f.rate}`;
    case 'cut':
      return `cut:${f.a},${f.b}`;
    case 'partition':
      return `partition:${f.groups.map((g) => g.join(',')).join('/')}`;
    case 'heal':
      return 'heal';
    case 'burst':
      return `burst:${f.durationMs}ms`;
    case 'transfer':
      return f.to ? `transfer:${f.to}` : 'transfer';
    default:
      return `${f.kind}:${f.node}`;
  }
}

/** faultTargets lists the robots a fault names (possibly 'leader'). */
export function faultTargets(f: Fault): Target[] {
  switch (f.kind) {
    case 'drop':
      return [f.from, f.to];
    case 'cut':
      return [f.a, f.b];
    case 'partition':
      return f.groups.flat();
    case 'heal':
    case 'burst':
      return [];
    case 'transfer':
      return f.to ? [f.to] : [];
    default:
      return [f.node];
  }
}
