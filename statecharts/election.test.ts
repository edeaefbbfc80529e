import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  roleOf,
  leaderPhaseOf,
  leaseExpiresAt,
  startElection,
  stepElection,
  type ElectionEffect,
  type ElectionEvent,
  type ElectionSnapshot,
} from './election.ts';
import type { Message } from './messages.ts';
import { fenceDelayMs, testTiming } from './timing.ts';

const kinds = (effects: readonly ElectionEffect[]) => effects.map((e) => e.kind);
const sends = (effects: readonly ElectionEffect[]): Message[] =>
  effects.flatMap((e) => (e.kind === 'send' ? e.messages : []));

function node(id: string, voters: string[], learners: string[] = []) {
  return startElection({ id, voters, learners, timing: testTiming, seed: 7, now: 0 }).snapshot;
}
function step(s: ElectionSnapshot, e: ElectionEvent) {
  return stepElection(s, e);
}

/** electedWithB: voter a of (a, b, c) campaigns at 0 ms and wins term 1 with b's PreVote and Vote. */
function electedWithB(): ElectionSnapshot {
  let s = node('a', ['a', 'b', 'c']);
  s = step(s, { type: 'campaign', now: 0 }).snapshot;
  s = step(s, {
    type: 'message',
    now: 1,
    msg: { type: 'preVoteResp', from: 'b', to: 'a', term: 1, granted: true },
  }).snapshot;
  return step(s, {
    type: 'message',
    now: 2,
    msg: { type: 'voteResp', from: 'b', to: 'a', term: 1, granted: true },
  }).snapshot;
}

test('a node boots as follower and arms its boot election timer', () => {
  const { snapshot, effects } = startElection({
    id: 'a',
    voters: ['a', 'b', 'c'],
    timing: testTiming,
    seed: 1,
    now: 0,
  });
  assert.equal(roleOf(snapshot), 'follower');
  const arm = effects.find((e) => e.kind === 'armTimer');
  assert.ok(arm && arm.kind === 'armTimer' && arm.id === 'election');
  assert.ok(arm.delayMs >= testTiming.bootElectionTimeoutMs && arm.delayMs < testTiming.electionTimeoutMinMs);
});

test('a single voter elects itself at once, and serves only after the fence delay', () => {
  let s = node('a', ['a']);
  const r = step(s, { type: 'campaign', now: 5 });
  s = r.snapshot;
  assert.equal(roleOf(s), 'leader');
  assert.equal(leaderPhaseOf(s), 'establishing');
  assert.ok(!kinds(r.effects).includes('startServer'));
  assert.equal(s.context.commitIndex, 1, 'the no-op commits with a quorum of one');
  const early = step(s, { type: 'heartbeatTimeout', now: 5 + fenceDelayMs(testTiming) - 1 });
  assert.equal(leaderPhaseOf(early.snapshot), 'establishing');
  const later = step(early.snapshot, { type: 'heartbeatTimeout', now: 5 + fenceDelayMs(testTiming) });
  assert.equal(leaderPhaseOf(later.snapshot), 'serving');
  const start = later.effects.find((e) => e.kind === 'startServer');
  assert.deepEqual(start, { kind: 'startServer', epoch: 1 });
});

test('a granted vote is persisted before the reply is sent', () => {
  const s = node('b', ['a', 'b', 'c']);
  const r = step(s, {
    type: 'message',
    now: 10,
    msg: { type: 'vote', from: 'a', to: 'b', term: 1, lastIndex: 0, lastTerm: 0, transfer: false },
  });
  const k = kinds(r.effects);
  assert.ok(
    k.indexOf('persistHardState') >= 0 && k.indexOf('persistHardState') < k.indexOf('send'),
    k.join(','),
  );
  assert.deepEqual(sends(r.effects), [{ type: 'voteResp', from: 'b', to: 'a', term: 1, granted: true }]);
  assert.equal(r.snapshot.context.votedFor, 'a');
});

test('one vote per term: a second candidate in the same term is refused', () => {
  let s = node('b', ['a', 'b', 'c']);
  s = step(s, {
    type: 'message',
    now: 10,
    msg: { type: 'vote', from: 'a', to: 'b', term: 1, lastIndex: 0, lastTerm: 0, transfer: false },
  }).snapshot;
  const r = step(s, {
    type: 'message',
    now: 11,
    msg: { type: 'vote', from: 'c', to: 'b', term: 1, lastIndex: 0, lastTerm: 0, transfer: false },
  });
  assert.deepEqual(sends(r.effects), [{ type: 'voteResp', from: 'b', to: 'c', term: 1, granted: false }]);
});

test('while a leader is live, a vote for a higher term is ignored and the term is not adopted', () => {
  let s = node('b', ['a', 'b', 'c']);
  s = step(s, {
    type: 'message',
    now: 10,
    msg: {
      type: 'append',
      from: 'a',
      to: 'b',
      term: 1,
      prevIndex: 0,
      prevTerm: 0,
      entries: [],
      commit: 0,
      sentAt: 10,
    },
  }).snapshot;
  const r = step(s, {
    type: 'message',
    now: 20,
    msg: { type: 'vote', from: 'c', to: 'b', term: 5, lastIndex: 9, lastTerm: 4, transfer: false },
  });
  assert.equal(r.snapshot.context.term, 1);
  assert.deepEqual(sends(r.effects), []);
  // A transfer vote (the leader asked for it) is not subject to stickiness.
  const t = step(s, {
    type: 'message',
    now: 20,
    msg: { type: 'vote', from: 'c', to: 'b', term: 2, lastIndex: 0, lastTerm: 0, transfer: true },
  });
  assert.equal(t.snapshot.context.term, 2);
  assert.equal(sends(t.effects)[0]?.type, 'voteResp');
});

test('a learner never campaigns, even when its election timer fires', () => {
  let s = node('l', ['a', 'b', 'c'], ['l']);
  for (let now = 100; now < 2000; now += 100) s = step(s, { type: 'electionTimeout', now }).snapshot;
  assert.equal(roleOf(s), 'follower');
  assert.equal(roleOf(step(s, { type: 'campaign', now: 2000 }).snapshot), 'follower');
});

test('a proposal to a follower is rejected with the leader it knows', () => {
  let s = node('b', ['a', 'b', 'c']);
  s = step(s, {
    type: 'message',
    now: 10,
    msg: {
      type: 'append',
      from: 'a',
      to: 'b',
      term: 1,
      prevIndex: 0,
      prevTerm: 0,
      entries: [],
      commit: 0,
      sentAt: 10,
    },
  }).snapshot;
  const r = step(s, { type: 'propose', kind: 'site', data: 'x', now: 11 });
  assert.deepEqual(
    r.effects.find((e) => e.kind === 'proposalRejected'),
    { kind: 'proposalRejected', reason: 'not the leader', leader: 'a' },
  );
});

test('a leader rejects an entry larger than one datagram can carry', () => {
  const s = step(node('a', ['a']), { type: 'campaign', now: 1 }).snapshot;
  const r = step(s, {
    type: 'propose',
    kind: 'site',
    data: 'x'.repeat(testTiming.maxEntryBytes + 1),
    now: 2,
  });
  const rej = r.effects.find((e) => e.kind === 'proposalRejected');
  assert.ok(rej && rej.kind === 'proposalRejected' && rej.reason.includes('maxEntryBytes'));
  assert.equal(r.snapshot.context.log.length, 1);
});

test('a leader that sees a higher term stops its server before it replies', () => {
  let s = step(node('a', ['a']), { type: 'campaign', now: 1 }).snapshot;
  s = step(s, { type: 'heartbeatTimeout', now: 1000 }).snapshot;
  assert.equal(leaderPhaseOf(s), 'serving');
  const r = step(s, {
    type: 'message',
    now: 1001,
    msg: {
      type: 'append',
      from: 'z',
      to: 'a',
      term: 9,
      prevIndex: 0,
      prevTerm: 0,
      entries: [],
      commit: 0,
      sentAt: 1,
    },
  });
  const k = kinds(r.effects);
  assert.equal(roleOf(r.snapshot), 'follower');
  assert.ok(k.includes('stopServer'));
  assert.ok(k.indexOf('stopServer') < k.indexOf('send'), k.join(','));
});

test('a leader that stops hearing a majority steps down after one lease (CheckQuorum)', () => {
  let s = electedWithB();
  assert.equal(roleOf(s), 'leader');
  s = step(s, { type: 'heartbeatTimeout', now: testTiming.electionTimeoutMinMs - 1 }).snapshot;
  assert.equal(roleOf(s), 'leader');
  const r = step(s, { type: 'heartbeatTimeout', now: 2 + testTiming.electionTimeoutMinMs });
  assert.equal(roleOf(r.snapshot), 'follower');
  assert.ok(r.effects.some((e) => e.kind === 'trace' && e.text.includes('CheckQuorum')));
  // It no longer names itself leader: the shell hears leaderChanged(null), and the lease is gone.
  assert.deepEqual(
    r.effects.find((e) => e.kind === 'leaderChanged'),
    { kind: 'leaderChanged', leader: null, term: 1 },
  );
  assert.equal(r.snapshot.context.leader, null);
});

test('the same inputs give the same outputs (no hidden clock or randomness)', () => {
  const run = () => {
    let s = node('a', ['a', 'b', 'c']);
    const out: unknown[] = [];
    for (const e of [
      { type: 'campaign', now: 3 },
      { type: 'electionTimeout', now: 50 },
      { type: 'heartbeatTimeout', now: 60 },
    ] as ElectionEvent[]) {
      const r = step(s, e);
      s = r.snapshot;
      out.push(r.effects);
    }
    return JSON.stringify(out);
  };
  assert.equal(run(), run());
});

test('boot stickiness: a robot that followed before refuses votes for one window after boot; a new one does not', () => {
  const vote = {
    type: 'vote' as const,
    from: 'a',
    to: 'b',
    term: 5,
    lastIndex: 0,
    lastTerm: 0,
    transfer: false,
  };
  // It may have acknowledged a leader just before it lost power: that leader's lease still counts it.
  const rebooted = startElection({
    id: 'b',
    voters: ['a', 'b', 'c'],
    timing: testTiming,
    seed: 1,
    now: 1000,
    durable: { term: 4, votedFor: 'c', log: [] },
  }).snapshot;
  const early = step(rebooted, {
    type: 'message',
    now: 1000 + testTiming.electionTimeoutMinMs - 1,
    msg: vote,
  });
  assert.equal(early.snapshot.context.term, 4, 'the term is not adopted');
  assert.deepEqual(sends(early.effects), []);
  const later = step(rebooted, { type: 'message', now: 1000 + testTiming.electionTimeoutMinMs, msg: vote });
  assert.deepEqual(sends(later.effects), [{ type: 'voteResp', from: 'b', to: 'a', term: 5, granted: true }]);
  // A brand-new robot has acknowledged nothing, so the site can elect at once on first power-on.
  const fresh = step(node('b', ['a', 'b', 'c']), { type: 'message', now: 1, msg: { ...vote, term: 1 } });
  assert.deepEqual(sends(fresh.effects), [{ type: 'voteResp', from: 'b', to: 'a', term: 1, granted: true }]);
});

test('a leader whose handover does not complete steps down instead of serving its old epoch again', () => {
  let s = electedWithB();
  s = step(s, {
    type: 'message',
    now: 3,
    msg: { type: 'appendResp', from: 'b', to: 'a', term: 1, success: true, matchIndex: 1, echo: 2 },
  }).snapshot;
  s = step(s, { type: 'fenceElapsed', now: 2 + fenceDelayMs(testTiming) }).snapshot;
  assert.equal(leaderPhaseOf(s), 'serving');
  s = step(s, { type: 'transferLeadership', to: 'b', now: 30 }).snapshot;
  assert.equal(leaderPhaseOf(s), 'handingOff', 'b is up to date, so TimeoutNow leaves at once');
  const r = step(s, { type: 'transferTimeout', now: 30 + testTiming.transferTimeoutMs });
  assert.equal(roleOf(r.snapshot), 'follower');
  assert.ok(!r.effects.some((e) => e.kind === 'startServer'), 'the old epoch must not serve again');
});

test('leaseExpiresAt: a serving leader may serve its epoch until a majority echo ages past the lease', () => {
  let s = electedWithB();
  s = step(s, {
    type: 'message',
    now: 3,
    msg: { type: 'appendResp', from: 'b', to: 'a', term: 1, success: true, matchIndex: 1, echo: 2 },
  }).snapshot;
  s = step(s, { type: 'fenceElapsed', now: 2 + fenceDelayMs(testTiming) }).snapshot;
  assert.equal(leaderPhaseOf(s), 'serving');
  // a + b are a majority of three; b's echo of the Append sent at 2 ms bounds the lease.
  assert.equal(leaseExpiresAt(s, 1), 2 + testTiming.leaderLeaseMs);
  assert.equal(leaseExpiresAt(s, 2), null, 'not an epoch this robot serves');
  const later = step(s, {
    type: 'message',
    now: 40,
    msg: { type: 'appendResp', from: 'c', to: 'a', term: 1, success: true, matchIndex: 1, echo: 35 },
  }).snapshot;
  assert.equal(leaseExpiresAt(later, 1), 35 + testTiming.leaderLeaseMs, 'the freshest majority counts');
  assert.equal(leaseExpiresAt(node('b', ['a', 'b', 'c']), 0), null, 'a follower serves nothing');
});

test('a follower answers a plain heartbeat only every ackIntervalMs, and everything else at once', () => {
  // testTiming: heartbeat 10 ms, ackIntervalMs 20 ms, so a heartbeat is answered once the last
  // answer is 15 ms old (half a heartbeat of slack for arrival jitter).
  const append = (now: number, o: Partial<Extract<Message, { type: 'append' }>> = {}): ElectionEvent => ({
    type: 'message',
    now,
    msg: {
      type: 'append',
      from: 'a',
      to: 'b',
      term: 1,
      prevIndex: 1,
      prevTerm: 1,
      entries: [],
      commit: 1,
      sentAt: now - 1,
      ...o,
    },
  });
  const answers = (r: { effects: readonly ElectionEffect[] }) =>
    sends(r.effects).filter((m) => m.type === 'appendResp');
  let s = node('b', ['a', 'b', 'c']);

  let r = step(s, append(10, { prevIndex: 0, prevTerm: 0, entries: [{ term: 1, kind: 'noop', data: '' }] }));
  assert.deepEqual(
    answers(r).map((m) => m.type === 'appendResp' && [m.success, m.matchIndex, m.echo]),
    [[true, 1, 9]],
    'entries are always answered',
  );
  s = r.snapshot;
  r = step(s, append(20));
  assert.deepEqual(answers(r), [], 'a heartbeat 10 ms after the last answer is not');
  assert.equal(r.snapshot.context.commitIndex, 1, 'but it is still applied');
  assert.equal(r.snapshot.context.lastLeaderContactAt, 20, 'and it still counts as hearing the leader');
  s = r.snapshot;
  r = step(s, append(25));
  assert.equal(answers(r).length, 1, '15 ms after the last answer, it is');
  s = r.snapshot;

  // A heartbeat went missing (20 ms since the last one): for two answer intervals (40 ms), every
  // heartbeat is answered, then every other one again.
  let lossy = s;
  const answered: number[] = [];
  for (const t of [45, 55, 65, 75, 85, 95, 105]) {
    r = step(lossy, append(t));
    if (answers(r).length > 0) answered.push(t);
    lossy = r.snapshot;
  }
  assert.deepEqual(answered, [45, 55, 65, 75, 95]);

  r = step(s, append(27, { prevIndex: 4, prevTerm: 1 }));
  assert.deepEqual(
    answers(r).map((m) => m.type === 'appendResp' && m.success),
    [false],
    'a mismatch is answered at once',
  );
  r = step(s, append(27, { prevIndex: 0, prevTerm: 0 }));
  assert.deepEqual(
    answers(r).map((m) => m.type === 'appendResp' && m.matchIndex),
    [0],
    'so is a heartbeat that moves what the leader may count (here: from a leader that backed up)',
  );
  r = step(s, append(27, { from: 'c', term: 2 }));
  assert.deepEqual(
    answers(r).map((m) => [m.to, m.term]),
    [['c', 2]],
    'and the first heartbeat of a new leader',
  );
});

test('a learner that never answers is probed ever more rarely; one that answers gets every learner heartbeat', () => {
  let s = node('a', ['a']);
  s = step(s, { type: 'campaign', now: 0 }).snapshot;
  s = step(s, { type: 'setLearners', learners: ['quiet', 'talker'], now: 0 }).snapshot;
  const beat = testTiming.heartbeatMs;
  const every = testTiming.learnerHeartbeatMs / beat;
  const appendsTo: Record<string, number[]> = { quiet: [], talker: [] };
  for (let i = 1; i <= 2000; i++) {
    const now = i * beat;
    const r = step(s, { type: 'heartbeatTimeout', now });
    s = r.snapshot;
    for (const m of sends(r.effects)) {
      if (m.type !== 'append' || !(m.to in appendsTo)) continue;
      appendsTo[m.to]!.push(now);
      if (m.to === 'talker')
        s = step(s, {
          type: 'message',
          now,
          msg: {
            type: 'appendResp',
            from: 'talker',
            to: 'a',
            term: 1,
            success: true,
            matchIndex: 1,
            echo: m.sentAt,
          },
        }).snapshot;
    }
  }
  const learnerBeats = 2000 / every;
  assert.equal(
    appendsTo.talker!.length,
    learnerBeats,
    'the learner that answers gets every learner heartbeat',
  );
  const quiet = appendsTo.quiet!;
  const gaps = quiet.slice(1).map((t, i) => t - quiet[i]!);
  assert.ok(quiet.length < learnerBeats / 10, `the silent one got ${quiet.length} of ${learnerBeats}`);
  assert.ok(
    gaps.every((g, i) => i === 0 || g >= gaps[i - 1]!),
    'the probes never come closer together',
  );
  assert.equal(
    Math.max(...gaps),
    32 * testTiming.learnerHeartbeatMs,
    'down to one probe every 32 learner heartbeats',
  );
});

test('a stream of made-up learners does not grow the leader’s state', () => {
  let s = node('a', ['a']);
  s = step(s, { type: 'campaign', now: 0 }).snapshot;
  for (let i = 0; i < 1000; i++)
    s = step(s, { type: 'setLearners', learners: [`fake-${i}`, 'real'], now: i }).snapshot;
  assert.deepEqual(Object.keys(s.context.progress).sort(), ['fake-999', 'real']);
});

test('freshest replica: a voter refuses a candidate with the same log and an older replica, and grants a fresher one', () => {
  let b = node('b', ['a', 'b', 'c']);
  b = step(b, { type: 'setReplica', epoch: 4, revision: 900, now: 0 }).snapshot;
  const ask = (replicaEpoch: number, replicaRev: number, lastIndex = 0) => {
    const r = step(b, {
      type: 'message',
      now: 10,
      msg: {
        type: 'vote',
        from: 'c',
        to: 'b',
        term: 1,
        lastIndex,
        lastTerm: lastIndex ? 1 : 0,
        transfer: false,
        ...(replicaEpoch || replicaRev ? { replicaEpoch, replicaRev } : {}),
      },
    });
    const reply = sends(r.effects).find((m) => m.type === 'voteResp');
    return reply?.type === 'voteResp' && reply.granted;
  };
  assert.equal(ask(0, 0), false, 'no replica against ours');
  assert.equal(ask(4, 899), false, 'one revision behind');
  assert.equal(ask(3, 99_999), false, 'an older epoch, whatever its revisions');
  assert.equal(ask(4, 900), true, 'as fresh as ours');
  assert.equal(ask(5, 1), true, 'a newer epoch');
  // A newer log wins whatever the replica: the site log's safety comes first.
  assert.equal(ask(0, 0, 1), true, 'a newer log, no replica');
});

test('freshest replica: campaigns carry this robot’s replica position, and none while it holds none', () => {
  let a = node('a', ['a', 'b', 'c']);
  const plain = sends(step(a, { type: 'campaign', now: 0 }).effects).find((m) => m.type === 'preVote');
  assert.ok(plain && !('replicaEpoch' in plain));
  a = step(a, { type: 'setReplica', epoch: 2, revision: 51, now: 0 }).snapshot;
  const pv = sends(step(a, { type: 'campaign', now: 0 }).effects).find((m) => m.type === 'preVote');
  assert.ok(pv?.type === 'preVote');
  assert.equal(pv.replicaEpoch, 2);
  assert.equal(pv.replicaRev, 51);
});

test('a new leader learns the followers’ replica positions from their acknowledgements, and hands over before serving', () => {
  // a wins term 1 with b's votes; b's acknowledgement says it holds a replica a does not.
  let a = electedWithB();
  const noop = a.context.noopIndex;
  const r = step(a, {
    type: 'message',
    now: 3,
    msg: {
      type: 'appendResp',
      from: 'b',
      to: 'a',
      term: 1,
      success: true,
      matchIndex: noop,
      echo: 2,
      replicaEpoch: 3,
      replicaRev: 70,
    },
  });
  a = r.snapshot;
  assert.deepEqual(a.context.peerReplicas['b'], { epoch: 3, revision: 70, term: 1 });
  const later = step(a, { type: 'heartbeatTimeout', now: 3 + fenceDelayMs(testTiming) });
  assert.equal(later.snapshot.context.transferee, 'b');
  assert.ok(!kinds(later.effects).includes('startServer'), 'it never serves this epoch');
});
