import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatEvent, TaskList, ttyRenderer, type ProgressEvent } from './progress.ts';

const events: ProgressEvent[] = [
  {
    type: 'apply.start',
    at: 0,
    kind: 'bootstrap',
    site: 'lab',
    robots: [
      { name: 'r1', steps: 3 },
      { name: 'r22', steps: 3 },
    ],
  },
  { type: 'robot.start', at: 1, robot: 'r1' },
  { type: 'robot.start', at: 1, robot: 'r22' },
  { type: 'robot.connected', at: 5, robot: 'r1', runner: 'r1' },
  {
    type: 'step.start',
    at: 6,
    robot: 'r1',
    step: 'bundle.agent',
    description: 'upload the agent',
    index: 1,
    total: 3,
  },
  { type: 'step.output', at: 7, robot: 'r1', step: 'bundle.agent', stream: 'stderr', line: 'noise' },
  {
    type: 'step.end',
    at: 9,
    robot: 'r1',
    step: 'bundle.agent',
    description: 'upload the agent',
    index: 1,
    total: 3,
    outcome: 'changed',
  },
  {
    type: 'robot.failed',
    at: 10,
    robot: 'r22',
    failure: {
      step: 'connect',
      description: 'connect',
      code: 'EDGE_SSH_UNREACHABLE',
      message: 'cannot reach r22',
      stderr: '',
      recover: [],
    },
  },
  {
    type: 'robot.done',
    at: 2500,
    robot: 'r1',
    outcomes: { changed: 1, unchanged: 1, ok: 0, 'done-before': 1, 'not-needed': 0 },
  },
  { type: 'apply.end', at: 2600, ok: ['r1'], failed: ['r22'] },
];

test('plain lines: one per finished step and per robot, none for step output', () => {
  assert.deepEqual(
    events.map(formatEvent).filter((l) => l !== null),
    [
      'bootstrap site lab: 2 robot(s)',
      '[r1] connecting',
      '[r22] connecting',
      '[r1] connected',
      '[r1] 1/3 bundle.agent: changed',
      '[r22] FAILED at connect: cannot reach r22',
      '[r1] done in 2.5s: 1 changed, 1 unchanged or checked, 1 skipped',
      '1 robot(s) done, 1 failed: r22',
    ],
  );
});

test('the task list shows one row per robot with its progress', () => {
  const list = new TaskList();
  for (const e of events.slice(0, 5)) list.apply(e);
  assert.deepEqual(list.lines(), [
    'bootstrap site lab',
    '▶ r1    1/3  bundle.agent: upload the agent',
    '… r22   0/3  connecting',
  ]);
  for (const e of events.slice(5)) list.apply(e);
  assert.deepEqual(list.lines(30), [
    'bootstrap site lab',
    '✔ r1    3/3  1 changed',
    '✖ r22   0/3  failed at connec…',
  ]);
});

test('the terminal renderer redraws the list in place', () => {
  const writes: string[] = [];
  const r = ttyRenderer({ write: (s) => writes.push(s), columns: 80 });
  r.event(events[0]!);
  r.event(events[1]!);
  assert.ok(!writes[0]!.startsWith('\x1b[3F'));
  assert.ok(writes[1]!.startsWith('\x1b[3F'), JSON.stringify(writes[1]));
});
