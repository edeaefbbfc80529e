import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ElectionDriver, type CancelReason, type DriverPorts } from './driver.ts';
import type { TimerId } from './election.ts';
import type { LogEntry, Message, NodeId } from './messages.ts';
import { testTiming } from './timing.ts';

/** A manual world: a clock, a list of scheduled timers, and a journal of every port call. */
function world() {
  const journal: string[] = [];
  let now = 0;
  let token = 0;
  const scheduled: { token: number; id: TimerId; at: number; fire: () => void }[] = [];
  const ports: DriverPorts<number> = {
    clock: { now: () => now },
    timers: {
      start: (id, delayMs, fire) => {
        scheduled.push({ token: ++token, id, at: now + delayMs, fire });
        return token;
      },
      cancel: (handle: number, id: TimerId, reason: CancelReason) => journal.push(`cancel ${id} ${reason}`),
    },
    send: { send: (ms: readonly Message[]) => ms.forEach((m) => journal.push(`send ${m.type}->${m.to}`)) },
    persist: {
      persistHardState: (term: number, votedFor: NodeId | null) =>
        journal.push(`hardState ${term} ${votedFor}`),
      persistLog: (from: number, entries: readonly LogEntry[]) =>
        journal.push(`log ${from} ${entries.map((e) => e.kind).join(',')}`),
    },
    lifecycle: {
      startServer: (epoch) => journal.push(`start ${epoch}`),
      stopServer: (epoch) => journal.push(`stop ${epoch}`),
      commit: (from, entries) => journal.push(`commit ${from}+${entries.length}`),
      leaderChanged: (leader, term) => journal.push(`leader ${leader} ${term}`),
    },
    observer: { settled: (_b, after) => journal.push(`settled ${after.context.term}`) },
  };
  return {
    journal,
    ports,
    scheduled,
    /** advance runs every scheduled timer due by `to`, in time order, the way a shell's timers fire. */
    advance(to: number) {
      for (;;) {
        scheduled.sort((a, b) => a.at - b.at || a.token - b.token);
        const next = scheduled[0];
        if (!next || next.at > to) break;
        scheduled.shift();
        now = next.at;
        next.fire();
      }
      now = to;
    },
  };
}

test('a lone voter campaigns on its timer, persists before it sends, and serves after the fence', () => {
  const w = world();
  const d = new ElectionDriver({ id: 'a', voters: ['a'], timing: testTiming, seed: 1 }, w.ports);
  assert.equal(d.role(), 'follower');
  assert.deepEqual(
    d.armed().map((t) => t.id),
    ['election'],
  );
  w.advance(1000);
  assert.equal(d.role(), 'leader');
  assert.equal(d.snapshot.context.serverEpoch, 1);
  // The vote is durable before anything else; the no-op is durable before it commits; the server
  // starts only after the leader's fence timer.
  const j = w.journal;
  const at = (s: string) => j.indexOf(s);
  assert.ok(at('hardState 1 a') >= 0 && at('hardState 1 a') < at('log 1 noop'), j.join('\n'));
  assert.ok(at('log 1 noop') < at('commit 1+1'), j.join('\n'));
  assert.ok(at('commit 1+1') < at('start 1'), j.join('\n'));
  assert.ok(j.includes('leader a 1'));
});

test('a re-armed timer replaces the pending one, a stale one does nothing, and halt cancels everything', () => {
  const w = world();
  const d = new ElectionDriver({ id: 'a', voters: ['a', 'b', 'c'], timing: testTiming, seed: 1 }, w.ports);
  const first = d.armed()[0]!;
  // A campaign re-arms the election timer (the pre-campaign's retry timer).
  d.step({ type: 'campaign', now: 0 });
  assert.ok(w.journal.includes('cancel election replaced') || w.journal.includes('cancel election disarmed'));
  assert.notEqual(d.armed().find((t) => t.id === 'election')?.handle, first.handle);
  // The replaced timer's callback still fires in a shell that cannot unschedule it: nothing happens.
  const settledCount = () => w.journal.filter((l) => l.startsWith('settled')).length;
  const stale = w.scheduled.find((t) => t.token === first.handle)!;
  const n = settledCount();
  stale.fire();
  assert.equal(settledCount(), n);
  const before = w.journal.length;
  d.halt();
  assert.ok(w.journal.slice(before).every((l) => l.endsWith('halted')));
  assert.deepEqual(d.armed(), []);
  // Nothing steps once halted, not even a timer that was already scheduled.
  const steps = settledCount();
  w.advance(10_000);
  d.step({ type: 'campaign', now: 10_000 });
  assert.equal(settledCount(), steps);
});

test('fire runs an armed timer at once and reports a missing one', () => {
  const w = world();
  const d = new ElectionDriver({ id: 'a', voters: ['a', 'b', 'c'], timing: testTiming, seed: 1 }, w.ports);
  assert.equal(d.fire('heartbeat'), false);
  assert.equal(d.fire('election'), true);
  assert.ok(w.journal.includes('cancel election fired'));
});
