/**
 * Model-based tests of the election statechart with xstate/graph.
 *
 * `getShortestPaths` traverses `electionMachine` itself for node `a` of a 3-voter site (voters a, b, c),
 * and for a learner `d` of the same site. The events offered in a state are computed from that state
 * (its term, log, timers) so that they are valid inputs: votes and appends from b at the right terms,
 * timer events at the time they would fire, responses to the campaign in progress. Each event carries a
 * `label`; time only moves forward (see `baseTime`).
 *
 * The traversal cannot key states on the full context (terms, times, the PRNG and the log are
 * unbounded), so `abstractState` keeps the role and sub-state plus bounded facts: who a votes for and
 * follows (relative to itself), lease and timer facts, the votes tallied, and for a leader whether its
 * no-op is committed, how long ago it was elected (capped), its server, its transferee and, per peer,
 * whether it caught up and how long ago it acknowledged (capped at the lease).
 *
 * Every path found is then replayed from `startElection` with `stepElection`, regenerating each event
 * by label from the replayed state, and checked step by step (see `checkStep`). The replay must follow
 * the traversal's abstract states exactly.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { getShortestPaths, getSimplePaths } from 'xstate/graph';
import {
  durableOf,
  electionMachine,
  leaderPhaseOf,
  roleOf,
  startElection,
  stepElection,
  type DurableState,
  type ElectionContext,
  type ElectionEffect,
  type ElectionEvent,
  type ElectionInput,
  type ElectionSnapshot,
  type Role,
} from '../../statecharts/election.ts';
import type { Message, NodeId } from '../../statecharts/messages.ts';
import { lastIndex, lastTerm } from '../../statecharts/site-log.ts';
import { fenceDelayMs, testTiming } from '../../statecharts/timing.ts';

const T = testTiming;
const VOTERS: readonly NodeId[] = ['a', 'b', 'c'];
const QUORUM = 2;
const PEERS: readonly NodeId[] = ['b', 'c'];

type LabeledEvent = ElectionEvent & { readonly label: string };
type Phase = ReturnType<typeof leaderPhaseOf>;

const inputFor = (id: NodeId, learners: readonly NodeId[] = []): ElectionInput => ({
  id,
  voters: VOTERS,
  learners,
  timing: T,
  seed: 7,
  fitness: 0.5,
  now: 0,
});

// ---------------------------------------------------------------------------------------------
// Time and events.

/**
 * baseTime: the latest time the context recorded. Every event is offered at baseTime or later, and an
 * event offered later than baseTime always records its own time (a leader's heartbeat, a timer that
 * starts a campaign, a vote that makes a follower reset its period); so, along any path, `now` never
 * decreases.
 */
function baseTime(c: ElectionContext): number {
  let t = Math.max(c.electionResetAt, c.becameLeaderAt, c.lastLeaderContactAt ?? -Infinity);
  for (const p of Object.values(c.progress)) t = Math.max(t, p.lastAck);
  return t;
}

/** The lease a follower (or candidate) grants a leader it heard: the stickiness window. */
const leaseActive = (c: ElectionContext, now: number): boolean =>
  c.leader !== null && c.lastLeaderContactAt !== null && now - c.lastLeaderContactAt < T.electionTimeoutMinMs;

const labeled = (label: string, e: ElectionEvent): LabeledEvent => ({ ...e, label });

/** eventsFor: the events offered to node `c.id` in a state, each valid in it. */
function eventsFor(snapshot: ElectionSnapshot): LabeledEvent[] {
  const c = snapshot.context;
  const role = roleOf(snapshot);
  const phase = leaderPhaseOf(snapshot);
  const now = baseTime(c);
  const term = c.term;
  const li = lastIndex(c.log);
  const lt = lastTerm(c.log);
  const self = c.id;
  const msg = (label: string, m: Message, at = now): LabeledEvent =>
    labeled(label, { type: 'message', msg: m, now: at });
  const out: LabeledEvent[] = [];

  // Timers, at the time they fire.
  if (role === 'follower') {
    out.push(
      labeled('electionTimeout', {
        type: 'electionTimeout',
        now: Math.max(now, c.electionResetAt + c.electionTimeoutMs),
      }),
    );
    out.push(labeled('electionTimeout(early)', { type: 'electionTimeout', now }));
    out.push(labeled('campaign', { type: 'campaign', now }));
  } else if (role === 'preCandidate' || role === 'candidate') {
    out.push(
      labeled('electionTimeout', {
        type: 'electionTimeout',
        now: Math.max(now, c.electionResetAt + c.retryMs),
      }),
    );
    out.push(labeled('heartbeatTimeout(resend)', { type: 'heartbeatTimeout', now }));
  } else {
    out.push(labeled('heartbeatTimeout', { type: 'heartbeatTimeout', now: now + T.heartbeatMs }));
    out.push(labeled('heartbeatTimeout(late)', { type: 'heartbeatTimeout', now: now + T.leaderLeaseMs }));
    // The campaign timer is never disarmed when a candidate wins: it fires, stale, in leader.
    out.push(labeled('electionTimeout(stale)', { type: 'electionTimeout', now }));
    if (phase === 'transferring' || phase === 'handingOff')
      out.push(labeled('transferTimeout', { type: 'transferTimeout', now }));
  }

  // Answers to a's campaign.
  for (const p of PEERS) {
    if (role === 'preCandidate') {
      out.push(
        msg(`preVoteResp(${p},granted)`, {
          type: 'preVoteResp',
          from: p,
          to: self,
          term: term + 1,
          granted: true,
        }),
      );
      out.push(
        msg(`preVoteResp(${p},refused)`, { type: 'preVoteResp', from: p, to: self, term, granted: false }),
      );
    }
    if (role === 'candidate') {
      out.push(msg(`voteResp(${p},granted)`, { type: 'voteResp', from: p, to: self, term, granted: true }));
      out.push(msg(`voteResp(${p},refused)`, { type: 'voteResp', from: p, to: self, term, granted: false }));
    }
  }

  // A leader's work.
  if (role === 'leader') {
    for (const p of PEERS) {
      out.push(
        msg(`appendResp(${p},ok)`, {
          type: 'appendResp',
          from: p,
          to: self,
          term,
          success: true,
          matchIndex: li,
          echo: now,
        }),
      );
    }
    out.push(
      msg('appendResp(b,refused)', {
        type: 'appendResp',
        from: 'b',
        to: self,
        term,
        success: false,
        matchIndex: 0,
        echo: now,
      }),
    );
    out.push(labeled('transferLeadership(b)', { type: 'transferLeadership', to: 'b', now }));
    out.push(labeled('transferLeadership', { type: 'transferLeadership', now }));
  }
  out.push(labeled('propose', { type: 'propose', kind: 'site', data: 'spec', now }));

  // b, at a higher term: it won an election (with c) and appends its no-op after a's log; it campaigns.
  out.push(
    msg('append(b,term+1)', {
      type: 'append',
      from: 'b',
      to: self,
      term: term + 1,
      prevIndex: li,
      prevTerm: lt,
      entries: [{ term: term + 1, kind: 'noop', data: '' }],
      commit: li + 1,
      sentAt: now,
    }),
  );
  // b leads a's own term: possible unless a leads it or voted for c (b then could not get a majority).
  if (role !== 'leader' && (c.votedFor === null || c.votedFor === 'b' || c.votedFor === self)) {
    out.push(
      msg('append(b,term)', {
        type: 'append',
        from: 'b',
        to: self,
        term,
        prevIndex: li,
        prevTerm: lt,
        entries: [],
        commit: c.commitIndex,
        sentAt: now,
      }),
    );
  }
  const vote = (transfer: boolean): Message => ({
    type: 'vote',
    from: 'b',
    to: self,
    term: term + 1,
    lastIndex: li,
    lastTerm: lt,
    transfer,
  });
  out.push(msg('vote(b,term+1)', vote(false)));
  if (c.lastLeaderContactAt !== null) {
    // The same vote once a's stickiness window has passed.
    out.push(
      msg('vote(b,term+1,late)', vote(false), Math.max(now, c.lastLeaderContactAt + T.electionTimeoutMinMs)),
    );
  }
  out.push(msg('vote(b,term+1,transfer)', vote(true)));
  out.push(
    msg('preVote(b,term+1)', {
      type: 'preVote',
      from: 'b',
      to: self,
      term: term + 1,
      lastIndex: li,
      lastTerm: lt,
    }),
  );
  if (role === 'follower' && c.leader === 'b')
    out.push(msg('timeoutNow(b)', { type: 'timeoutNow', from: 'b', to: self, term }));
  return out;
}

// ---------------------------------------------------------------------------------------------
// The abstraction the traversal keys states on.

const ackAge = (c: ElectionContext, p: NodeId, now: number): number | null => {
  const pr = c.progress[p];
  return pr ? Math.min(now - pr.lastAck, T.leaderLeaseMs) : null;
};

function abstractState(snapshot: ElectionSnapshot): string {
  const c = snapshot.context;
  const role = roleOf(snapshot);
  const now = baseTime(c);
  const rel = (id: NodeId | null): string => (id === null ? '-' : id === c.id ? 'self' : id);
  const facts: Record<string, unknown> = {
    value: snapshot.value,
    votedFor: rel(c.votedFor),
    leader: rel(c.leader),
    lease: leaseActive(c, now),
    boot: c.electionTimeoutMs < T.electionTimeoutMinMs,
    started: c.started,
    log: c.log.length === 0 ? 'empty' : lastTerm(c.log) === c.term ? 'own term' : 'older',
    allCommitted: c.commitIndex === lastIndex(c.log),
    server: c.serverEpoch === null ? 'none' : c.serverEpoch === c.term ? 'this term' : 'older',
  };
  if (role === 'preCandidate' || role === 'candidate') {
    facts.votes = Object.entries(c.votes).sort();
    facts.transfer = c.campaignTransfer;
    facts.leaseAtRetry = leaseActive(c, Math.max(now, c.electionResetAt + c.retryMs));
  }
  if (role === 'leader') {
    facts.established = c.commitIndex >= c.noopIndex;
    facts.sinceElected = Math.min(now - c.becameLeaderAt, 2 * T.heartbeatMs);
    facts.transferee = c.transferee;
    facts.peers = PEERS.map((p) => [c.progress[p]?.match === lastIndex(c.log), ackAge(c, p, now)]);
  }
  return JSON.stringify(facts);
}

// ---------------------------------------------------------------------------------------------
// Per-step invariants of a replay.

interface Tracker {
  /** Granted votes a saw per term (itself included when it campaigned). */
  readonly votes: Map<number, Set<NodeId>>;
  /** The epoch whose server runs, as the effects told. */
  server: number | null;
  /** Terms in which a became leader (entered leader.establishing). */
  readonly ledTerms: Set<number>;
  readonly startedEpochs: Set<number>;
  /** The durable twin built only from the persistence effects. */
  durable: DurableState;
  readonly learner: boolean;
}

const kindIndex = (fx: readonly ElectionEffect[], kind: ElectionEffect['kind']): number =>
  fx.findIndex((e) => e.kind === kind);

function applyPersistence(t: Tracker, fx: readonly ElectionEffect[]): void {
  for (const e of fx) {
    if (e.kind === 'persistHardState') t.durable = { ...t.durable, term: e.term, votedFor: e.votedFor };
    if (e.kind === 'persistLog')
      t.durable = { ...t.durable, log: t.durable.log.slice(0, e.fromIndex - 1).concat(e.entries) };
  }
}

function checkState(snapshot: ElectionSnapshot, t: Tracker, where: string): void {
  const c = snapshot.context;
  const role = roleOf(snapshot);
  const phase = leaderPhaseOf(snapshot);
  assert.deepEqual(
    t.durable,
    durableOf(snapshot),
    `${where}: the persistence effects must rebuild the durable state`,
  );
  if (t.learner) assert.ok(role === 'follower', `${where}: a learner is always a follower, not ${role}`);
  if (role === 'leader') {
    assert.equal(c.votedFor, c.id, `${where}: a leader voted for itself`);
    assert.ok(
      t.ledTerms.has(c.term),
      `${where}: leader without having entered leader.establishing at term ${c.term}`,
    );
    assert.ok(
      (t.votes.get(c.term)?.size ?? 0) >= QUORUM,
      `${where}: leader at ${c.term} without a majority of granted votes`,
    );
    const noop = c.log[c.noopIndex - 1];
    assert.ok(
      noop !== undefined && noop.kind === 'noop' && noop.term === c.term,
      `${where}: leader's no-op of term ${c.term} in its log`,
    );
    assert.ok(
      c.log.some((e) => e.term === c.term),
      `${where}: leader's log has an entry of its term`,
    );
  }
  // The server runs only on a leader past establishing, at its own term, and never while handing off.
  assert.equal(t.server, c.serverEpoch, `${where}: the effects and the context agree on the server`);
  if (t.server !== null) {
    assert.equal(role, 'leader', `${where}: a server runs only on a leader`);
    assert.ok(phase === 'serving' || phase === 'transferring', `${where}: server running in ${phase}`);
    assert.equal(t.server, c.term, `${where}: the server's epoch is the term`);
  }
}

function checkStep(
  prev: ElectionSnapshot,
  event: ElectionEvent,
  step: { snapshot: ElectionSnapshot; effects: readonly ElectionEffect[] },
  t: Tracker,
  where: string,
): void {
  const p = prev.context;
  const n = step.snapshot.context;
  const fx = step.effects;
  const prevRole = roleOf(prev);
  const role = roleOf(step.snapshot);
  const phase = leaderPhaseOf(step.snapshot);
  const prevPhase: Phase = leaderPhaseOf(prev);
  const firstSend = kindIndex(fx, 'send');

  // Terms and votes.
  assert.ok(n.term >= p.term, `${where}: the term never decreases (${p.term} → ${n.term})`);
  if (n.votedFor !== p.votedFor) {
    assert.ok(
      n.term !== p.term || p.votedFor === null,
      `${where}: votedFor changed ${p.votedFor} → ${n.votedFor} within term ${n.term}`,
    );
  }
  if (n.term !== p.term || n.votedFor !== p.votedFor) {
    const i = fx.findIndex(
      (e) => e.kind === 'persistHardState' && e.term === n.term && e.votedFor === n.votedFor,
    );
    assert.ok(i >= 0, `${where}: term/votedFor changed without persistHardState`);
    if (firstSend >= 0) assert.ok(i < firstSend, `${where}: persistHardState precedes every send`);
  }
  if (firstSend >= 0 && JSON.stringify(n.log) !== JSON.stringify(p.log)) {
    const i = kindIndex(fx, 'persistLog');
    assert.ok(i >= 0 && i < firstSend, `${where}: persistLog precedes every send when the log changed`);
  }
  applyPersistence(t, fx);
  if (t.learner) assert.ok(role === 'follower', `${where}: a learner never enters ${role}`);

  // Votes seen: a candidate's own vote, then granted VoteResps of its term.
  if (role === 'candidate' && (prevRole !== 'candidate' || n.term !== p.term))
    t.votes.set(n.term, new Set([n.id]));
  if (
    event.type === 'message' &&
    event.msg.type === 'voteResp' &&
    event.msg.granted &&
    event.msg.term === p.term &&
    prevRole === 'candidate'
  ) {
    t.votes.get(p.term)?.add(event.msg.from);
  }
  if (role === 'leader' && (prevRole !== 'leader' || n.term !== p.term)) {
    assert.equal(prevRole, 'candidate', `${where}: only a candidate becomes leader`);
    t.ledTerms.add(n.term);
  }

  // Server effects: stops come before any send; starts only on a leader that went through establishing.
  const stops = fx.filter((e) => e.kind === 'stopServer');
  const starts = fx.filter(
    (e): e is Extract<ElectionEffect, { kind: 'startServer' }> => e.kind === 'startServer',
  );
  for (const e of fx) {
    if (e.kind === 'stopServer') {
      assert.equal(e.epoch, t.server, `${where}: stopServer names the running epoch`);
      t.server = null;
    }
    if (e.kind === 'startServer') {
      assert.equal(t.server, null, `${where}: startServer while a server runs`);
      t.server = e.epoch;
    }
  }
  const stepsDown = prevRole === 'leader' && (role !== 'leader' || n.term !== p.term);
  const handsOff = phase === 'handingOff' && prevPhase !== 'handingOff';
  if ((stepsDown || handsOff) && p.serverEpoch !== null) {
    const i = fx.findIndex((e) => e.kind === 'stopServer' && e.epoch === p.serverEpoch);
    assert.ok(i >= 0, `${where}: leaving leader/serving stops the running server`);
    // Stepping down: before anything leaves. Handing off: before the TimeoutNow leaves (the Append that
    // brought the transferee up to date may go first).
    const firstTimeoutNow = fx.findIndex(
      (e) => e.kind === 'send' && e.messages.some((m) => m.type === 'timeoutNow'),
    );
    if (stepsDown && firstSend >= 0)
      assert.ok(i < firstSend, `${where}: stopServer precedes every send when stepping down`);
    if (handsOff) assert.ok(firstTimeoutNow > i, `${where}: stopServer precedes the TimeoutNow`);
  }
  assert.ok(stops.length <= 1 && starts.length <= 1, `${where}: at most one stop and one start per step`);
  for (const s of starts) {
    assert.equal(role, 'leader', `${where}: startServer only on a leader`);
    assert.equal(phase, 'serving', `${where}: startServer on entering serving`);
    assert.equal(s.epoch, n.term, `${where}: the server's epoch is the term`);
    assert.ok(t.ledTerms.has(n.term), `${where}: startServer after leader.establishing at term ${n.term}`);
    assert.ok(n.commitIndex >= n.noopIndex, `${where}: startServer only once the no-op is committed`);
    assert.ok(
      event.now >= n.becameLeaderAt + fenceDelayMs(T),
      `${where}: startServer only after the fence delay`,
    );
    if (!(prevPhase === 'transferring' || prevPhase === 'handingOff')) {
      assert.ok(
        !t.startedEpochs.has(s.epoch),
        `${where}: epoch ${s.epoch} started twice without a transfer in between`,
      );
    }
    t.startedEpochs.add(s.epoch);
  }
  checkState(step.snapshot, t, where);
}

// ---------------------------------------------------------------------------------------------
// Traversal and replay.

type Path = ReturnType<typeof getShortestPaths<typeof electionMachine>>[number];

interface ReplayResult {
  readonly states: readonly ElectionSnapshot[];
  readonly steps: number;
}

const cloneTracker = (t: Tracker): Tracker => ({
  votes: new Map([...t.votes].map(([k, v]) => [k, new Set(v)])),
  server: t.server,
  ledTerms: new Set(t.ledTerms),
  startedEpochs: new Set(t.startedEpochs),
  durable: t.durable,
  learner: t.learner,
});

type ExtraCheck = (
  prev: ElectionSnapshot,
  event: ElectionEvent,
  step: { snapshot: ElectionSnapshot; effects: readonly ElectionEffect[] },
  where: string,
) => void;

/**
 * replay re-runs a path from startElection, regenerating each event by label, and checks every step.
 * Then, from the path's last state, it takes every event offered there once more (checked the same
 * way): shortest paths reach every abstract state, these last steps cover every transition out of it.
 */
function replay(path: Path, input: ElectionInput, name: string, extra?: ExtraCheck): ReplayResult {
  const start = startElection(input);
  const t: Tracker = {
    votes: new Map(),
    server: null,
    ledTerms: new Set(),
    startedEpochs: new Set(),
    durable: { term: 0, votedFor: null, log: [] },
    learner: !input.voters.includes(input.id),
  };
  applyPersistence(t, start.effects);
  checkState(start.snapshot, t, `${name} init`);
  let snapshot = start.snapshot;
  const states = [snapshot];
  const labels: string[] = [];
  for (const s of path.steps.slice(1)) {
    const label = (s.event as LabeledEvent).label;
    labels.push(label);
    const where = `${name} [${labels.join(' → ')}]`;
    const event = eventsFor(snapshot).find((e) => e.label === label);
    assert.ok(event, `${where}: event ${label} is not offered in the replayed state`);
    const { label: _, ...plain } = event;
    const step = stepElection(snapshot, plain as ElectionEvent);
    checkStep(snapshot, plain as ElectionEvent, step, t, where);
    extra?.(snapshot, plain as ElectionEvent, step, where);
    assert.equal(
      abstractState(step.snapshot),
      abstractState(s.state),
      `${where}: the replay follows the traversal`,
    );
    snapshot = step.snapshot;
    states.push(snapshot);
  }
  let steps = labels.length;
  for (const event of eventsFor(snapshot)) {
    const where = `${name} [${[...labels, event.label].join(' → ')}]`;
    const { label: _, ...plain } = event;
    const step = stepElection(snapshot, plain as ElectionEvent);
    checkStep(snapshot, plain as ElectionEvent, step, cloneTracker(t), where);
    extra?.(snapshot, plain as ElectionEvent, step, where);
    states.push(step.snapshot);
    steps++;
  }
  return { states, steps };
}

const traverse = (input: ElectionInput): Path[] =>
  getShortestPaths(electionMachine, {
    input,
    events: (snapshot) => eventsFor(snapshot),
    serializeState: (snapshot) => abstractState(snapshot),
    serializeEvent: (event) => (event as LabeledEvent).label,
  });

const stateName = (s: ElectionSnapshot): string => {
  const phase = leaderPhaseOf(s);
  return phase ? `leader.${phase}` : roleOf(s);
};

test('model: every shortest path of voter a (voters a, b, c) keeps the per-state invariants', (t) => {
  const input = inputFor('a');
  const started = performance.now();
  const paths = traverse(input);
  const traversedMs = performance.now() - started;
  const reached = new Set(paths.map((p) => stateName(p.state)));
  let steps = 0;
  const replayed = new Set<string>();
  for (const [i, path] of paths.entries()) {
    const r = replay(path, input, `path ${i}`);
    steps += r.steps;
    for (const s of r.states) replayed.add(stateName(s));
  }
  const roles: Role[] = ['follower', 'preCandidate', 'candidate', 'leader'];
  for (const role of roles)
    assert.ok(
      [...reached].some((s) => s.startsWith(role)),
      `the traversal reaches ${role}`,
    );
  for (const phase of ['establishing', 'serving', 'transferring', 'handingOff']) {
    assert.ok(reached.has(`leader.${phase}`), `the traversal reaches leader.${phase}`);
    assert.ok(replayed.has(`leader.${phase}`), `the replays reach leader.${phase}`);
  }
  const longest = Math.max(...paths.map((p) => p.steps.length - 1));
  const line =
    `voter a: ${paths.length} shortest paths (one per abstract state), ${steps} replayed steps (each path plus every transition out of its end), longest path ${longest}; ` +
    `traversal ${(traversedMs / 1000).toFixed(1)} s, total ${((performance.now() - started) / 1000).toFixed(1)} s; reached ${[...reached].sort().join(', ')}`;
  t.diagnostic(line);
  console.log(line);
});

test('model: a learner (d, with voters a, b, c) never campaigns on any shortest path', (t) => {
  const input = inputFor('d', ['d']);
  const paths = traverse(input);
  let steps = 0;
  for (const [i, path] of paths.entries()) {
    assert.equal(roleOf(path.state), 'follower', `learner path ${i} ends in ${roleOf(path.state)}`);
    steps += replay(path, input, `learner path ${i}`).steps;
  }
  const line = `learner d: ${paths.length} shortest paths, ${steps} replayed steps, all as follower`;
  t.diagnostic(line);
  console.log(line);
});

test('model: every simple path through a campaign and its interruptions keeps the invariants', (t) => {
  // getSimplePaths enumerates every cycle-free path, so it gets a small alphabet: the answers to a's
  // (Pre)Vote requests in any order, retries, and b taking over mid-campaign. Targets: a leads, or a
  // follows a later term.
  const alphabet = new Set([
    'electionTimeout',
    'heartbeatTimeout(resend)',
    ...PEERS.flatMap((p) => [
      `preVoteResp(${p},granted)`,
      `preVoteResp(${p},refused)`,
      `voteResp(${p},granted)`,
      `voteResp(${p},refused)`,
    ]),
    'append(b,term+1)',
    'vote(b,term+1,transfer)',
  ]);
  const input = inputFor('a');
  const paths = getSimplePaths(electionMachine, {
    input,
    events: (snapshot) => eventsFor(snapshot).filter((e) => alphabet.has(e.label)),
    serializeState: (snapshot) => abstractState(snapshot),
    serializeEvent: (event) => (event as LabeledEvent).label,
    toState: (snapshot) =>
      roleOf(snapshot) === 'leader' || (roleOf(snapshot) === 'follower' && snapshot.context.term >= 1),
  });
  let steps = 0;
  for (const [i, path] of paths.entries()) steps += replay(path, input, `simple path ${i}`).steps;
  assert.ok(
    paths.some((p) => roleOf(p.state) === 'leader'),
    'some simple path wins',
  );
  assert.ok(
    paths.some((p) => roleOf(p.state) === 'follower'),
    'some simple path loses',
  );
  const line = `simple paths of a campaign: ${paths.length}, ${steps} replayed steps`;
  t.diagnostic(line);
  console.log(line);
});

// Regressions, as statechart-level properties (see the property tests' REGRESSIONS).

test('model: a leader that sent TimeoutNow never restarts its server for that term', () => {
  const input = inputFor('a');
  for (const [i, path] of traverse(input).entries()) {
    const handedOff = new Set<number>();
    replay(path, input, `path ${i}`, (_prev, _event, step, where) => {
      const c = step.snapshot.context;
      for (const e of step.effects) {
        if (e.kind === 'startServer')
          assert.ok(
            !handedOff.has(e.epoch),
            `${where}: server of epoch ${e.epoch} restarted after TimeoutNow`,
          );
        if (e.kind === 'send' && e.messages.some((m) => m.type === 'timeoutNow')) handedOff.add(c.term);
      }
    });
  }
});

test('model: a voter that heard a leader campaigns only after a full election timeout of silence', () => {
  const input = inputFor('a');
  for (const [i, path] of traverse(input).entries()) {
    replay(path, input, `path ${i}`, (prev, event, step, where) => {
      const p = prev.context;
      if (
        event.type === 'electionTimeout' &&
        roleOf(prev) === 'follower' &&
        roleOf(step.snapshot) === 'preCandidate' &&
        p.lastLeaderContactAt !== null
      ) {
        assert.ok(
          event.now - p.lastLeaderContactAt >= T.electionTimeoutMinMs,
          `${where}: campaigned ${event.now - p.lastLeaderContactAt} ms after last hearing ${p.leader}`,
        );
      }
    });
  }
});
