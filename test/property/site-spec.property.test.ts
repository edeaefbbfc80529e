/**
 * The site log is the source of truth for the site spec: a new leader applies the newest spec
 * committed in it (agent/agent.ts applySite, with newestCommittedSpec from agent/site/spec-log.ts),
 * never one that was not committed. This runs the fault campaign's schedules (kills, pauses,
 * partitions, loss bursts, transfers) in the simulator while an operator proposes a new spec
 * version to whoever leads every few hundred milliseconds, and judges every robot that starts its
 * server: the spec the agent's rule picks from its state at that moment must be the newest version
 * any robot has committed so far, and must itself be committed.
 *
 * EDGECTL_SPEC_RUNS sets the number of schedules (default 40).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { newestCommittedSpec, specEntries } from '../../agent/site/spec-log.ts';
import { Simulator } from '../../lab/sim/simulator.ts';
import {
  stepElection,
  type ElectionEvent,
  type ElectionSnapshot,
  type ElectionStep,
} from '../../statecharts/election.ts';
import type { LogEntry } from '../../statecharts/messages.ts';
import { simOptionsOf } from '../campaign/run.ts';
import { describeSchedule, generateSchedule } from '../campaign/schedule.ts';

const RUNS = Number(process.env.EDGECTL_SPEC_RUNS ?? 40);
const SEED = 20261206;
const PROPOSE_EVERY_MS = 400;

const specText = (version: number) =>
  JSON.stringify({ id: 'prop', quota: { hard: { pods: String(version) } }, pad: 'p'.repeat(900) });

test(`a new leader applies the newest committed site spec, never an uncommitted one, over ${RUNS} faulty sites`, () => {
  let judged = 0;
  let withVersion = 0;
  /** New leaders that started while another robot held a spec version that never committed. */
  let uncommittedElsewhere = 0;
  for (let i = 0; i < RUNS; i++) {
    const schedule = generateSchedule(SEED, i);
    const where = () => `schedule ${i} (${describeSchedule(schedule)})`;
    /** Committed manifests (index → term) as robots report them, and the newest committed one. */
    const committed = new Map<number, number>();
    let newest: { index: number; version: number } | null = null;
    let sim: Simulator | null = null;
    const step = (snapshot: ElectionSnapshot, event: ElectionEvent): ElectionStep => {
      const r = stepElection(snapshot, event);
      const c = r.snapshot.context;
      // Commits first: a leader's own step may commit its no-op and start its server.
      for (const e of r.effects) {
        if (e.kind !== 'commit') continue;
        const v = newestCommittedSpec(c.log, e.fromIndex + e.entries.length - 1);
        if (v && (!newest || v.index > newest.index)) newest = { index: v.index, version: v.version };
        for (let k = 0; k < e.entries.length; k++) committed.set(e.fromIndex + k, e.entries[k]!.term);
      }
      if (!r.effects.some((e) => e.kind === 'startServer')) return r;
      judged++;
      const chosen = newestCommittedSpec(c.log, c.commitIndex);
      assert.equal(
        chosen?.index ?? null,
        newest?.index ?? null,
        `${c.id} starts its server at term ${c.term} with spec ${chosen?.version ?? 'none'}, but version ${newest?.version} is the newest committed: ${where()}`,
      );
      if (chosen) {
        withVersion++;
        assert.equal(committed.get(chosen.index), chosen.term, `applies an uncommitted spec: ${where()}`);
      }
      if (sim && [...sim.nodes.values()].some((n) => holdsUncommittedVersion(n.durable.log, committed)))
        uncommittedElsewhere++;
      return r;
    };
    sim = new Simulator({
      ...simOptionsOf(schedule),
      proposeEveryMs: null,
      durationMs: schedule.healAtMs + 15_000,
      step,
    });
    const maxEntryBytes = sim.opts.timing.maxEntryBytes;
    runWithProposals(sim, maxEntryBytes);
    assert.deepEqual(sim.result().violations, [], where());
  }
  // Not vacuous: leaders started with and without versions, and while uncommitted versions existed.
  assert.ok(judged > RUNS, `${judged} server starts judged`);
  assert.ok(withVersion > RUNS / 2, `${withVersion} server starts with a committed version`);
  assert.ok(uncommittedElsewhere > 0, 'no leader started while an uncommitted version existed');
});

/** runWithProposals runs the site as Simulator.run does, proposing a version to the serving leader on a schedule. */
function runWithProposals(sim: Simulator, maxEntryBytes: number): void {
  const end = sim.opts.durationMs;
  sim.bootAll();
  let version = 0;
  for (let t = PROPOSE_EVERY_MS; t < end; t += PROPOSE_EVERY_MS) {
    sim.runUntil(t);
    const id = sim.currentLeader();
    const n = id ? sim.nodes.get(id)! : null;
    if (!n || n.paused || sim.leaderPhase(n.id) !== 'serving') continue;
    version++;
    for (const data of specEntries(version, specText(version), '2026-12-06T00:00:00.000Z', maxEntryBytes))
      sim.feed(n, { type: 'propose', kind: 'site', data, now: sim.now });
  }
  sim.runUntil(end);
}

/** holdsUncommittedVersion: the log has a spec manifest at an index no robot has committed. */
function holdsUncommittedVersion(log: readonly LogEntry[], committed: ReadonlyMap<number, number>): boolean {
  return log.some(
    (e, i) =>
      e.kind === 'site' && e.data.startsWith('edgectl-site version ') && committed.get(i + 1) !== e.term,
  );
}
