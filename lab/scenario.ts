/**
 * Lab scenarios (lab/scenarios/*.yaml): the robots, timed faults and what must happen. Parsing is
 * pure and strict: every problem in a file is reported at once, naming the field and the fix.
 *
 * Faults are written the way an operator types them at `edgectl lab fault` (power-off leader,
 * loss all 10, partition r1,r2/r3,r4,r5, ...) or in the shared vocabulary (kill:leader); both
 * become faults of lab/faults.ts, so schedules move between the simulator and the lab.
 */
import { parseYamlText } from '../agent/input-file.ts';
import { z } from 'zod';
import { ConfigError, UsageError } from '../agent/errors.ts';
import { parseDuration, parseFault, type Fault } from './faults.ts';
import type { WorkloadSpec } from './workload.ts';

/** A lab action: a vocabulary fault, or bringing one robot's Wi-Fi back. */
export type LabAction =
  { readonly kind: 'fault'; readonly fault: Fault } | { readonly kind: 'wifi-on'; readonly node: string };

export const LAB_FAULT_FORMS = [
  'power-off <robot>',
  'power-on <robot>',
  'wifi-off <robot>',
  'wifi-on <robot>',
  'loss <robot|all> <percent>',
  'partition <a,b>/<c,d,e>',
  'pause <robot>',
  'resume <robot>',
  'burst <duration>',
  'heal',
] as const;

/**
 * parseLabFault reads one operator fault (`power-off r2`, `loss all 10`) or a vocabulary fault
 * (`kill:leader`). Targets may be a robot, `leader`, `all`, `victim` (the robots the last
 * power-off, wifi-off or pause hit) or `stateful` (the robot that runs the scenario workload's
 * StatefulSet pod); the runner resolves the last two.
 */
export function parseLabFault(text: string): LabAction[] {
  const words = text.trim().split(/\s+/);
  const [verb, a, b] = words;
  const bad = (form: string): never => {
    throw new UsageError('BAD_FAULT', `fault "${text}" is malformed`, { hint: `write it as ${form}` });
  };
  const fault = (f: string): LabAction => ({ kind: 'fault', fault: parseFault(f) });
  switch (verb) {
    case 'power-off':
      return a && words.length === 2 ? [fault(`kill:${a}`)] : bad('power-off <robot>');
    case 'power-on':
      return a && words.length === 2 ? [fault(`restart:${a}`)] : bad('power-on <robot>');
    case 'wifi-off':
      return a && words.length === 2 ? [fault(`isolate:${a}`)] : bad('wifi-off <robot>');
    case 'wifi-on':
      return a && words.length === 2 ? [{ kind: 'wifi-on', node: a }] : bad('wifi-on <robot>');
    case 'pause':
    case 'resume':
      return a && words.length === 2 ? [fault(`${verb}:${a}`)] : bad(`${verb} <robot>`);
    case 'loss': {
      const pct = Number(b);
      if (!a || words.length !== 3 || !Number.isFinite(pct) || pct < 0 || pct > 100)
        return bad('loss <robot|all> <percent 0-100>, e.g. loss all 10');
      const rate = pct / 100;
      return a === 'all'
        ? [fault(`drop:all->all=${rate}`)]
        : [fault(`drop:${a}->all=${rate}`), fault(`drop:all->${a}=${rate}`)];
    }
    case 'partition':
      return a && words.length === 2 ? [fault(`partition:${a}`)] : bad('partition <a,b>/<c,d,e>');
    case 'burst':
      return a && words.length === 2 ? [fault(`burst:${a}`)] : bad('burst <duration>, e.g. burst 1.5s');
    case 'heal':
      return words.length === 1 ? [fault('heal')] : bad('heal');
    default:
      if (verb?.includes(':') || verb === 'kill-leader') return [fault(text.trim())];
      throw new UsageError('BAD_FAULT', `unknown fault "${text}"`, {
        hint: `use one of: ${LAB_FAULT_FORMS.join('; ')}; or a vocabulary fault like kill:leader`,
      });
  }
}

const duration = z.union([z.string(), z.number()]);

const expectationSchema = z
  .object({
    /** What must hold: see EXPECTATIONS. */
    kind: z.enum([
      'new-leader',
      'all-ready',
      'no-leader-change',
      'demoted',
      'converged',
      'workload-ready',
      'no-duplicate-ip',
      'addresses-freed',
      'no-restart',
      'no-lost-writes',
    ]),
    /** The fault step (its `id`) the clock starts at; default the first fault. */
    after: z.string().optional(),
    within: duration.optional(),
  })
  .strict();

const stepSchema = z
  .object({
    id: z
      .string()
      .regex(/^[a-z0-9-]+$/, 'use lower-case letters, digits and dashes')
      .optional(),
    at: duration,
    fault: z.string().min(1),
    /** Repeat the fault every this long, until `until`. */
    every: duration.optional(),
    until: duration.optional(),
  })
  .strict();

const scenarioSchema = z
  .object({
    name: z.string().regex(/^[a-z0-9-]+$/, 'use lower-case letters, digits and dashes'),
    description: z.string().default(''),
    robots: z.number().int().min(1).max(20),
    /** What runs on each robot: real (containerd + kubelet, the default) or lite (the lab kubelet). */
    node: z.enum(['real', 'lite']).default('real'),
    voters: z.number().int().min(1).max(7).optional(),
    /** Witnesses w1..wN beside the robots: they vote, never lead. */
    witnesses: z.number().int().min(0).max(6).default(0),
    /** The agents' timing profile: lab (fast, the default) or fleet (as on robots, rides out 1.5 s bursts). */
    profile: z.enum(['lab', 'fleet']).default('lab'),
    /** How long the site may take to form before the first fault. */
    settle: duration.default('60s'),
    /** How long to keep observing after the first fault. */
    duration: duration,
    /** Membership dead-after for the agents (lost-node cleanup). */
    deadAfter: duration.optional(),
    /**
     * Real nodes only: the demo workload (lab/workload.ts) applied once the site has formed, with
     * the site network; the faults start when every replica runs with a site address.
     */
    workload: z
      .object({
        deployment: z.number().int().min(0).max(20).default(2),
        statefulset: z.number().int().min(0).max(5).default(1),
        /** Where the StatefulSet's pods prefer to run: a worker (default) or the leader. */
        statefulsetOn: z.enum(['worker', 'leader']).default('worker'),
      })
      .strict()
      .optional(),
    faults: z.array(stepSchema).default([]),
    expect: z.array(expectationSchema).default([]),
  })
  .strict();

export interface ScenarioStep {
  readonly id: string;
  readonly atMs: number;
  readonly text: string;
  readonly actions: readonly LabAction[];
}

/** Expectations judged on the workload: they need `workload:` and real nodes. */
export const WORKLOAD_EXPECTATIONS = [
  'workload-ready',
  'no-duplicate-ip',
  'addresses-freed',
  'no-restart',
] as const;
/** Expectations that hold over the whole run after their fault, so they have no time limit. */
const UNTIMED = ['no-leader-change', 'no-duplicate-ip', 'no-restart'];

export interface Expectation {
  /**
   * no-lost-writes: a client writes a ConfigMap every 100 ms through the leader the site formed
   * with; every write it acknowledged before the fault must be on the final leader's server, except
   * those acknowledged within `within` before the fault (the RPO bound; lab/rpo.ts).
   */
  readonly kind:
    | 'new-leader'
    | 'all-ready'
    | 'no-leader-change'
    | 'demoted'
    | 'converged'
    | 'no-lost-writes'
    | (typeof WORKLOAD_EXPECTATIONS)[number];
  readonly after: string;
  readonly withinMs: number | null;
}

export interface Scenario {
  readonly name: string;
  readonly description: string;
  readonly robots: number;
  readonly node: 'real' | 'lite';
  readonly voters: number;
  readonly witnesses: number;
  readonly profile: 'lab' | 'fleet';
  readonly settleMs: number;
  readonly durationMs: number;
  readonly deadAfterMs: number | undefined;
  /** The demo workload (real nodes), or null. */
  readonly workload: WorkloadSpec | null;
  /** Every fault occurrence, repeats expanded, in time order. */
  readonly steps: readonly ScenarioStep[];
  readonly expect: readonly Expectation[];
}

const ms = (v: string | number, what: string) => (typeof v === 'number' ? v * 1000 : parseDuration(v, what));

/** parseScenario validates a scenario document; `source` names it in errors. */
export function parseScenario(text: string, source: string): Scenario {
  const doc = parseYamlText(text, source);
  const r = scenarioSchema.safeParse(doc);
  if (!r.success)
    throw new ConfigError(
      source,
      r.error.issues.map((i) => `${i.path.join('.') || '(document)'}: ${i.message}`),
      { hint: `fix ${source}; lab/scenarios/ has examples and docs/lab.md the reference` },
    );
  const s = r.data;
  const problems: string[] = [];
  const voters = s.voters ?? Math.min(s.robots, 5);
  if (voters > s.robots) problems.push(`voters: ${voters} is more than robots (${s.robots})`);
  if (voters + s.witnesses > 7) problems.push(`witnesses: voters and witnesses together are at most 7`);
  const steps: ScenarioStep[] = [];
  const ids = new Set<string>();
  s.faults.forEach((f, i) => {
    const id = f.id ?? `f${i + 1}`;
    if (ids.has(id)) problems.push(`faults.${i}.id: "${id}" is used twice; ids must be unique`);
    ids.add(id);
    let actions: LabAction[] = [];
    try {
      actions = parseLabFault(f.fault);
      for (const a of actions) {
        const t = JSON.stringify(a).match(/"r(\d+)"/g) ?? [];
        for (const m of t)
          if (Number(m.slice(2, -1)) > s.robots)
            problems.push(`faults.${i}.fault: "${f.fault}" names a robot beyond r${s.robots}`);
      }
    } catch (e) {
      problems.push(`faults.${i}.fault: ${(e as Error).message}; ${(e as UsageError).hint ?? ''}`.trim());
    }
    const at = ms(f.at, `faults.${i}.at`);
    if (f.every !== undefined) {
      const every = ms(f.every, `faults.${i}.every`);
      const until = f.until === undefined ? ms(s.duration, 'duration') : ms(f.until, `faults.${i}.until`);
      if (every <= 0) problems.push(`faults.${i}.every: must be positive`);
      else
        for (let t = at, k = 0; t < until; t += every, k++)
          steps.push({ id: k === 0 ? id : `${id}#${k}`, atMs: t, text: f.fault, actions });
    } else steps.push({ id, atMs: at, text: f.fault, actions });
  });
  const expect = s.expect.map((e, i) => {
    const after = e.after ?? steps[0]?.id ?? 'start';
    if (e.after !== undefined && !ids.has(e.after))
      problems.push(
        `expect.${i}.after: no fault has id "${e.after}" (ids: ${[...ids].join(', ') || 'none'})`,
      );
    const needsWithin = !UNTIMED.includes(e.kind);
    if ((WORKLOAD_EXPECTATIONS as readonly string[]).includes(e.kind) && (!s.workload || s.node !== 'real'))
      problems.push(`expect.${i}.kind: ${e.kind} is judged on the workload: add workload: and node: real`);
    if (needsWithin && e.within === undefined)
      problems.push(`expect.${i}.within: ${e.kind} needs a time limit, e.g. within: 5s`);
    return {
      kind: e.kind,
      after,
      withinMs: e.within === undefined ? null : ms(e.within, `expect.${i}.within`),
    };
  });
  if (s.workload && s.node !== 'real') problems.push('workload: pods run on real nodes only: node: real');
  if (!s.workload && s.faults.some((f) => /\bstateful\b/.test(f.fault)))
    problems.push(
      'faults: "stateful" names the robot running the workload\'s StatefulSet pod: add workload:',
    );
  if (problems.length) throw new ConfigError(source, problems);
  steps.sort((a, b) => a.atMs - b.atMs);
  return {
    name: s.name,
    description: s.description,
    robots: s.robots,
    node: s.node,
    voters,
    witnesses: s.witnesses,
    profile: s.profile,
    settleMs: ms(s.settle, 'settle'),
    durationMs: ms(s.duration, 'duration'),
    deadAfterMs: s.deadAfter === undefined ? undefined : ms(s.deadAfter, 'deadAfter'),
    workload: s.workload ?? null,
    steps,
    expect,
  };
}
