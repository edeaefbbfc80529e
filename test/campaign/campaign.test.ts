/**
 * The fault campaign, small: a handful of schedules pass, schedules replay exactly, the generator
 * covers the fault vocabulary, and, above all, the campaign's checks are shown to catch violations:
 * broken histories (made up, and injected into real recorded ones), a deliberately wrong shell that
 * reads the wall clock, and the CLI's failure report with a replay command that reproduces it.
 * The full campaign is `npm run test:campaign` (test/campaign/campaign.ts).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import { FAULT_KINDS } from '../../lab/faults.ts';
import {
  checkHistory,
  type ConvergenceRule,
  type History,
  type HistoryEvent,
  type InvariantName,
} from './invariants.ts';
import { problemsOf, runCampaignSchedule, type Outcome } from './run.ts';
import { generateSchedule, MAX_OUTAGE_MS, type CampaignSchedule } from './schedule.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const CAMPAIGN = join(import.meta.dirname, 'campaign.ts');
const SEED = 7;

test('a handful of campaign schedules keep every invariant', () => {
  for (let k = 0; k < 20; k++) {
    const o = runCampaignSchedule(generateSchedule(SEED, k));
    assert.deepEqual(problemsOf(o), [], `schedule ${k} of seed ${SEED}`);
    assert.notEqual(o.convergedAfterMs, null);
  }
});

test('a schedule is a pure function of (seed, index), and running it twice gives the same history', () => {
  const s = generateSchedule(SEED, 3);
  assert.deepEqual(generateSchedule(SEED, 3), s);
  assert.notDeepEqual(generateSchedule(SEED, 4), s);
  assert.notDeepEqual(generateSchedule(SEED + 1, 3), s);
  const a = runCampaignSchedule(s);
  const b = runCampaignSchedule(s);
  assert.deepEqual(a.history, b.history);
  assert.ok(a.history.events.length > 10);
});

test('the generator covers the fault vocabulary, clock jumps, and outages up to 30 s', () => {
  const kinds = new Set<string>();
  let jumps = 0;
  let longest = 0;
  for (let k = 0; k < 400; k++) {
    const s = generateSchedule(SEED, k);
    for (const f of s.faults) kinds.add(f.fault.kind);
    jumps += s.clockJumps.length;
    // Outages: a named robot's kill→restart or pause→resume.
    const open = new Map<string, number>();
    for (const f of s.faults) {
      const node = 'node' in f.fault ? f.fault.node : '';
      if (f.fault.kind === 'kill' || f.fault.kind === 'pause') open.set(`${f.fault.kind}:${node}`, f.atMs);
      const from = f.fault.kind === 'restart' ? 'kill' : f.fault.kind === 'resume' ? 'pause' : null;
      const at = from ? open.get(`${from}:${node}`) : undefined;
      if (at !== undefined) longest = Math.max(longest, f.atMs - at);
    }
    for (const f of s.faults) assert.ok(f.atMs < s.healAtMs, 'every fault comes before the heal');
  }
  assert.deepEqual(
    FAULT_KINDS.filter((k) => !kinds.has(k)),
    [],
    'every fault kind of lab/faults.ts is drawn',
  );
  assert.ok(jumps > 50, `clock jumps drawn: ${jumps}`);
  assert.ok(longest > 20_000 && longest <= MAX_OUTAGE_MS + 1, `longest outage ${longest} ms`);
});

// ---------------------------------------------------------------------------------------------
// The checks catch violations.

const RULE: ConvergenceRule = { boundMs: 1000, stableMs: 300 };

/** A correct little history: r1 leads term 1 and serves; r2 takes over at term 2 after r1 stops. */
function goodHistory(): History {
  const events: HistoryEvent[] = [
    { t: 100, kind: 'elected', node: 'r1', term: 1, log: [] },
    { t: 200, kind: 'server-start', node: 'r1', epoch: 1 },
    { t: 300, kind: 'commit', node: 'r1', index: 1, entry: '1:noop:', term: 1 },
    { t: 400, kind: 'commit', node: 'r1', index: 2, entry: '1:site:v1', term: 1 },
    { t: 500, kind: 'server-stop', node: 'r1', epoch: 1 },
    { t: 600, kind: 'elected', node: 'r2', term: 2, log: ['1:noop:', '1:site:v1'] },
    { t: 700, kind: 'server-start', node: 'r2', epoch: 2 },
  ];
  const samples = [1100, 1200, 1300, 1400, 1500].map((t) => ({ t, leader: 'r2', term: 2 }));
  const log = ['1:noop:', '1:site:v1', '2:noop:'];
  return {
    voters: ['r1', 'r2', 'r3'],
    events,
    healAtMs: 1000,
    samples,
    finalDurableLogs: { r1: log.slice(0, 2), r2: log, r3: log },
  };
}

const invariantsOf = (h: History): InvariantName[] => [
  ...new Set(checkHistory(h, RULE).map((v) => v.invariant)),
];

test('the invariants pass a correct history', () => {
  assert.deepEqual(checkHistory(goodHistory(), RULE), []);
});

const BROKEN: readonly { name: string; expect: InvariantName; breakIt: (h: History) => History }[] = [
  {
    name: 'a second robot wins a term that already has a leader',
    expect: 'one-leader-per-term',
    breakIt: (h) => ({
      ...h,
      events: [...h.events, { t: 800, kind: 'elected', node: 'r3', term: 2, log: ['1:noop:', '1:site:v1'] }],
    }),
  },
  {
    name: 'a server starts while another one runs',
    expect: 'overlapping-epochs',
    breakIt: (h) => ({ ...h, events: h.events.filter((e) => e.kind !== 'server-stop') }),
  },
  {
    name: 'a frozen server resumes while another one runs',
    expect: 'overlapping-epochs',
    breakIt: (h) => ({
      ...h,
      events: [
        ...h.events.slice(0, 4),
        { t: 450, kind: 'pause', node: 'r1' },
        ...h.events.slice(5),
        { t: 900, kind: 'resume', node: 'r1' },
      ],
    }),
  },
  {
    name: 'a later-term leader lacks a committed entry',
    expect: 'lost-commit',
    breakIt: (h) => ({
      ...h,
      events: h.events.map((e) => (e.kind === 'elected' && e.term === 2 ? { ...e, log: ['1:noop:'] } : e)),
    }),
  },
  {
    name: 'another entry is committed at an index',
    expect: 'lost-commit',
    breakIt: (h) => ({
      ...h,
      events: [...h.events, { t: 800, kind: 'commit', node: 'r3', index: 2, entry: '2:site:other', term: 2 }],
    }),
  },
  {
    name: 'a committed entry is durable on a minority at the end',
    expect: 'lost-commit',
    breakIt: (h) => ({ ...h, finalDurableLogs: { ...h.finalDurableLogs, r2: ['1:noop:'], r3: [] } }),
  },
  {
    name: 'there is no leader after the heal',
    expect: 'no-convergence',
    breakIt: (h) => ({ ...h, samples: h.samples.map((s) => ({ t: s.t, none: '0 leaders (none)' })) }),
  },
  {
    name: 'the leader flaps after the heal',
    expect: 'no-convergence',
    breakIt: (h) => ({
      ...h,
      samples: h.samples.map((s, i) => ({ t: s.t, leader: i % 2 ? 'r2' : 'r3', term: 2 + i })),
    }),
  },
  {
    name: 'the site agrees only after the bound',
    expect: 'no-convergence',
    breakIt: (h) => ({ ...h, samples: h.samples.map((s) => ({ ...s, t: s.t + 2000 })) }),
  },
];

for (const b of BROKEN) {
  test(`the invariants catch a made-up history in which ${b.name}`, () => {
    assert.deepEqual(invariantsOf(b.breakIt(goodHistory())), [b.expect]);
  });
}

/** A recorded run with a few leader changes, commits and servers, for injecting violations. */
function recorded(): Outcome {
  for (let k = 0; k < 50; k++) {
    const o = runCampaignSchedule(generateSchedule(SEED, k));
    const elected = o.history.events.filter((e) => e.kind === 'elected');
    const commits = o.history.events.filter((e) => e.kind === 'commit');
    if (elected.length >= 3 && commits.length >= 5 && problemsOf(o).length === 0) return o;
  }
  throw new Error('no schedule with three elections among the first 50');
}

test('the invariants catch violations injected into a real recorded history', () => {
  const o = recorded();
  const rule = { boundMs: Infinity, stableMs: 0 };
  const h = o.history;
  const names = (x: History) => [...new Set(checkHistory(x, rule).map((v) => v.invariant))];
  assert.deepEqual(names(h), []);
  const elections = h.events.filter((e) => e.kind === 'elected');
  const last = elections.at(-1)!;
  const other = h.voters.find((v) => v !== last.node)!;
  // Another robot claims the last leader's term.
  assert.deepEqual(names({ ...h, events: [...h.events, { ...last, node: other, t: last.t + 1 }] }), [
    'one-leader-per-term',
  ]);
  // A second server starts right after the first start, while it runs.
  const start = h.events.findIndex((e) => e.kind === 'server-start');
  const s0 = h.events[start] as Extract<HistoryEvent, { kind: 'server-start' }>;
  const intruder: HistoryEvent = {
    t: s0.t,
    kind: 'server-start',
    node: h.voters.find((v) => v !== s0.node)!,
    epoch: 99,
  };
  assert.ok(
    names({
      ...h,
      events: [...h.events.slice(0, start + 1), intruder, ...h.events.slice(start + 1)],
    }).includes('overlapping-epochs'),
  );
  // The last leader forgets its committed log.
  const forgetful = h.events.map((e) => (e === last ? { ...last, log: [] } : e));
  assert.deepEqual(names({ ...h, events: forgetful }), ['lost-commit']);
});

test('a shell that feeds the wall clock to the election is caught; the monotonic shell rides out the same clock jump', () => {
  // r-leader's wall clock jumps back 10 s, then it loses its Wi-Fi. With a monotonic clock it steps
  // down when its lease ends; reading the wall clock, its lease looks 10 s younger and it serves on
  // while the majority elects and serves a new leader.
  const s: CampaignSchedule = {
    campaignSeed: 0,
    index: 0,
    simSeed: 1,
    profile: 'fleet',
    voters: 3,
    learners: 0,
    delayMinMs: 2,
    delayMaxMs: 5,
    duplicateRate: 0,
    proposeEveryMs: 1000,
    faults: [{ atMs: 5100, fault: { kind: 'isolate', node: 'leader' } }],
    clockJumps: [{ atMs: 5000, node: 'leader', deltaMs: -10_000 }],
    healAtMs: 30_000,
  };
  assert.deepEqual(problemsOf(runCampaignSchedule(s, { clock: 'monotonic' })), []);
  const wrong = runCampaignSchedule(s, { clock: 'wall' });
  assert.deepEqual(
    [...new Set(wrong.violations.map((v) => v.invariant))],
    ['overlapping-epochs'],
    problemsOf(wrong).join('\n'),
  );
  // The simulator's own checker agrees.
  assert.ok(wrong.simViolations.some((v) => v.startsWith('overlapping-epochs')));
});

test('a failing campaign prints the schedule, the violations and a replay command that reproduces the failure', () => {
  const run = (args: string[]) =>
    spawnSync(process.execPath, [CAMPAIGN, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
  const r = run(['--seed', '1', '--schedules', '300', '--workers', '1', '--clock', 'wall']);
  assert.equal(r.status, 1, `exit code; stderr: ${r.stderr}`);
  const m = /replay: npm run test:campaign -- (--seed 1 --schedule (\d+) --clock wall)/.exec(r.stdout);
  assert.ok(m, `a replay command in:\n${r.stdout}`);
  assert.match(r.stdout, /overlapping-epochs|one-leader-per-term|lost-commit|no-convergence/);
  const replay = run(m[1]!.split(' '));
  assert.equal(replay.status, 1, replay.stdout);
  const violation = /violations:\n {2}(.*)\n/.exec(r.stdout)![1]!;
  assert.ok(
    replay.stdout.includes(violation),
    `the replay shows "${violation}":\n${replay.stdout.slice(0, 2000)}`,
  );
  // The same schedule with the agent's monotonic clock passes.
  const fixed = run(m[1]!.replace(' --clock wall', '').split(' '));
  assert.equal(fixed.status, 0, fixed.stdout);
  // Bad arguments are a usage error.
  assert.equal(run(['--schedules', 'many']).status, 2);
});

// The one module that may read the wall clock, for timestamps other machines compare (agent/wall-clock.ts).
const WALL_CLOCK_MODULE = join(ROOT, 'agent', 'wall-clock.ts');

test('timeouts use the monotonic clock: outside agent/wall-clock.ts, the agent and the election core never read the wall clock, and only agent/clock.ts reads the monotonic one', () => {
  const offenders: string[] = [];
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) {
        if (name !== 'testing' && name !== 'bundle') walk(p);
      } else if (p.endsWith('.ts') && !p.endsWith('.test.ts') && p !== WALL_CLOCK_MODULE) {
        readFileSync(p, 'utf8')
          .split('\n')
          .forEach((line, i) => {
            // Any use of Date.now counts, called or passed as a clock (`opts.now ?? Date.now`).
            if (/\bDate\.now\b|new Date\(|\bDate\(\)/.test(line.replace(/\/\/.*$/, '')))
              offenders.push(`${relative(ROOT, p)}:${i + 1}: ${line.trim()}`);
            // One monotonic clock (agent/clock.ts), so that times from different modules compare.
            const code = /^\s*(\*|\/\*)/.test(line) ? '' : line.replace(/\/\/.*$/, '');
            if (/\bperformance\.now\b/.test(code) && !p.endsWith('.contract.ts'))
              offenders.push(`${relative(ROOT, p)}:${i + 1}: ${line.trim()}`);
          });
      }
    }
  };
  walk(join(ROOT, 'agent'));
  walk(join(ROOT, 'statecharts'));
  assert.deepEqual(offenders, [], 'wall-clock reads in the agent or the core');
  assert.match(readFileSync(join(ROOT, 'agent', 'agent.ts'), 'utf8'), /deps\.now \?\? monotonicMs/);
});
