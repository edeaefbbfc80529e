import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sample } from './testing/samples.ts';
import { EMPTY_TRACKER, nextView, sameView, type SiteSample, type Tracker } from './view.ts';

function replay(samples: readonly SiteSample[]): {
  tracker: Tracker;
  views: ReturnType<typeof nextView>['view'][];
} {
  let tracker = EMPTY_TRACKER;
  const views = [];
  for (const s of samples) {
    const r = nextView(tracker, s);
    tracker = r.tracker;
    views.push(r.view);
  }
  return { tracker, views };
}

const three = (lead: string, off: string[] = [], term = 1) =>
  ['r1', 'r2', 'r3'].map((name) => ({
    name,
    role: off.includes(name) ? ('off' as const) : name === lead ? ('leader' as const) : ('follower' as const),
    term,
  }));

test('a leader power loss is measured from the fault to the new leader and to the re-formed site', () => {
  const fault = { t: 10_000, fault: 'kill:r1', robots: ['r1'] };
  const { views } = replay([
    sample(9_000, three('r1')),
    sample(10_500, three('none', ['r1']), { faults: [fault] }),
    sample(
      11_900,
      three('r2', ['r1'], 2).map((r) => ({ ...r, ready: r.name === 'r2' })),
      { faults: [fault] },
    ),
    sample(17_000, three('r2', ['r1'], 2), { faults: [fault] }),
  ]);
  const timeline = views.at(-1)!.timeline;
  assert.deepEqual(
    timeline.map((e) => [e.kind, e.afterMs]),
    [
      ['leader', null],
      ['reformed', null],
      ['fault', null],
      ['no-leader', 500],
      ['leader', 1_900],
      ['reformed', 7_000],
    ],
  );
  assert.equal(timeline[4]!.text, 'r2 leads at term 2');
  assert.equal(timeline[4]!.after, 'kill:r1');
  assert.equal(views.at(-1)!.leader, 'r2');
  assert.equal(views.at(-1)!.robots.find((r) => r.name === 'r1')!.power, 'off');
});

test('a fault logged only after the site reacted still measures what happened since it began', () => {
  const fault = { t: 10_000, fault: 'kill:r1', robots: ['r1'] };
  const { views } = replay([
    sample(9_000, three('r1')),
    sample(10_300, three('none', ['r1'])),
    sample(
      11_800,
      three('r2', ['r1'], 2).map((r) => ({ ...r, ready: r.name === 'r2' })),
    ),
    sample(
      12_000,
      three('r2', ['r1'], 2).map((r) => ({ ...r, ready: r.name === 'r2' })),
      { faults: [fault] },
    ),
    sample(16_000, three('r2', ['r1'], 2), { faults: [fault] }),
  ]);
  assert.deepEqual(
    views.at(-1)!.timeline.map((e) => [e.kind, e.t, e.afterMs]),
    [
      ['leader', 9_000, null],
      ['reformed', 9_000, null],
      ['fault', 10_000, null],
      ['no-leader', 10_300, 300],
      ['leader', 11_800, 1_800],
      ['reformed', 16_000, 6_000],
    ],
  );
});

test('faults from before the dashboard started are history: they are listed but start no measurement', () => {
  const old = { t: 1_000, fault: 'kill:r3', robots: ['r3'] };
  const { views, tracker } = replay([sample(50_000, three('r1', ['r3']), { faults: [old] })]);
  assert.deepEqual(
    views[0]!.timeline.map((e) => [e.kind, e.afterMs]),
    [
      ['fault', null],
      ['leader', null],
      ['reformed', null],
    ],
  );
  assert.equal(tracker.openFault, null);
});

test("each robot's last-heard time and link RTT are the leader's view of it", () => {
  const { views } = replay([sample(1_000, three('r2', ['r3']))]);
  const rows = Object.fromEntries(views[0]!.robots.map((r) => [r.name, r]));
  assert.equal(rows['r2']!.lastHeardMs, 0);
  assert.equal(rows['r1']!.lastHeardMs, 150);
  assert.equal(rows['r1']!.rttMs, 2);
  assert.equal(rows['r3']!.power, 'off');
  assert.equal(rows['r3']!.node, 'NotReady');
});

test('a changed leader is a different view; the same site sampled again is not', () => {
  const first = nextView(EMPTY_TRACKER, sample(1_000, three('r1')));
  const again = nextView(first.tracker, sample(1_400, three('r1')));
  const moved = nextView(first.tracker, sample(1_400, three('r2', [], 2)));
  assert.equal(sameView(first.view, again.view), true);
  assert.equal(sameView(first.view, moved.view), false);
  assert.equal(sameView(null, first.view), false);
});

test('the timeline keeps only its newest entries', () => {
  let tracker = EMPTY_TRACKER;
  for (let i = 0; i < 300; i++) {
    const lead = i % 2 ? 'r1' : 'r2';
    tracker = nextView(tracker, sample(i * 1000, three(lead, [], i + 1))).tracker;
  }
  assert.equal(tracker.timeline.length, 200);
  assert.match(tracker.timeline.at(-1)!.text, /term 300/);
});
