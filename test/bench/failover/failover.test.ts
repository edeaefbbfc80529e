// The failover benchmark's judges and report on hand-made logs (no root, no network).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseEtcdLog } from './etcd-cluster.ts';
import { goals, renderMarkdown, summarise, type FailoverResult } from './report.ts';
import { judgeLoss, judgeRound, type RawLoss, type RawRound } from './schedules.ts';
import type { RoleEvent } from './system.ts';

const ev = (t: number, member: string, role: RoleEvent['role'], term: number): RoleEvent => ({
  t,
  member,
  role,
  term,
});

const raw = (over: Partial<RawRound>): RawRound => ({
  system: 'etcd-default',
  schedule: 'power',
  round: 1,
  victim: 'r1',
  termBefore: 3,
  t: 1000,
  plannedOutageMs: null,
  outageMs: null,
  end: 20_000,
  polledNewLeaderMs: 1400,
  error: null,
  ...over,
});

describe('parseEtcdLog', () => {
  it('reads role changes with their zap times and skips everything else', () => {
    const text = [
      '{"level":"info","ts":"2026-11-22T08:19:46.522Z","caller":"raft/raft.go:735","msg":"2e1259d415f2a040 became pre-candidate at term 1"}',
      '{"level":"info","ts":"2026-11-22T08:19:46.523Z","caller":"raft/node.go:327","msg":"raft.node: 2e1259d415f2a040 elected leader 2e1259d415f2a040 at term 2"}',
      '{"level":"info","ts":"2026-11-22T08:19:46.600Z","caller":"raft/raft.go:771","msg":"2e1259d415f2a040 became leader at term 2"}',
      'not json',
      '{"level":"info","ts":"2026-11-22T08:19:4',
    ].join('\n');
    assert.deepEqual(parseEtcdLog('r3', text), [
      ev(Date.parse('2026-11-22T08:19:46.522Z'), 'r3', 'preCandidate', 1),
      ev(Date.parse('2026-11-22T08:19:46.600Z'), 'r3', 'leader', 2),
    ]);
  });
});

describe('judgeRound', () => {
  it('measures detection and the new leader from survivors only, and counts one change as expected', () => {
    const events = [
      ev(900, 'r1', 'leader', 3), // before the fault
      ev(2100, 'r1', 'leader', 4), // the victim's own log does not count as a new leader
      ev(2200, 'r2', 'preCandidate', 3),
      ev(2210, 'r2', 'candidate', 4),
      ev(2230, 'r2', 'leader', 4),
    ];
    const r = judgeRound(raw({}), events, 1000);
    assert.equal(r.detectionMs, 1200);
    assert.equal(r.newLeaderMs, 1230);
    assert.equal(r.newLeader, 'r2');
    assert.equal(r.leaderChanges, 1);
    assert.equal(r.falseChanges, 0);
  });

  it('calls a change after a Wi-Fi loss no longer than the election timeout false', () => {
    const wifi = raw({ schedule: 'wifi', plannedOutageMs: 1000, outageMs: 1008 });
    const events = [ev(2300, 'r4', 'leader', 4)];
    assert.equal(judgeRound(wifi, events, 1000).falseChanges, 1);
    assert.equal(judgeRound(wifi, events, 900).falseChanges, 0);
    assert.equal(judgeRound(wifi, [], 1800).falseChanges, 0);
  });

  it('counts every term with a leader, so a second election in the round is false', () => {
    const events = [ev(2000, 'r2', 'leader', 4), ev(9000, 'r3', 'leader', 6), ev(25_000, 'r4', 'leader', 7)];
    const r = judgeRound(raw({}), events, 1000);
    assert.equal(r.leaderChanges, 2);
    assert.equal(r.falseChanges, 1);
  });
});

describe('judgeLoss', () => {
  const loss: RawLoss = {
    rate: 0.1,
    burstMs: 1500,
    burstEveryMs: 20_000,
    controlFrom: 0,
    controlTo: 60_000,
    t0: 61_000,
    t1: 121_000,
    t2: 130_000,
    bursts: [81_000, 101_000],
    termBefore: { 'etcd-default': 2 },
  };

  it('attributes leader changes to bursts or to random loss alone', () => {
    const events = [
      ev(82_300, 'r2', 'candidate', 3),
      ev(82_310, 'r2', 'leader', 3),
      ev(95_000, 'r3', 'leader', 4),
      ev(102_000, 'r1', 'preCandidate', 4),
    ];
    const l = judgeLoss('etcd-default', loss, events);
    assert.equal(l.leaderChanges, 2);
    assert.equal(l.burstsWithChange, 1);
    assert.equal(l.changesUnderLossAlone, 1);
    assert.equal(l.termRise, 2);
    assert.equal(l.controlChanges, 0);
    assert.equal(l.bursts, 2);
    assert.equal(l.lossSeconds, 60);
  });
});

describe('report', () => {
  it('judges the goals and renders every table from a small result', () => {
    const round = (system: RawRound['system'], ms: number) =>
      judgeRound(raw({ system, end: 50_000 }), [ev(1000 + ms, 'r2', 'leader', 4)], 1000);
    const res: FailoverResult = {
      when: '2026-11-22T00:00:00.000Z',
      durationMs: 60_000,
      machine: { cpus: 2, model: 'test', memGiB: 1, kernel: '6' },
      versions: { node: 'v24', etcd: '3.4.23', kubeApiserver: 'v1.36.3' },
      config: {
        powerRounds: 1,
        wifiRounds: 0,
        wifiOutagesMs: [1000, 3000, 10_000],
        lossSeconds: 60,
        controlSeconds: 10,
        lossRate: 0.1,
        burstMs: 1500,
        burstEveryMs: 20_000,
        pollMs: 50,
        etcdPreVote: true,
        lossTogether: true,
      },
      systems: [
        {
          id: 'edgectl',
          description: 'e',
          heartbeatMs: 100,
          electionTimeoutMs: 1800,
          electionTimeoutMaxMs: 2100,
        },
        {
          id: 'etcd-default',
          description: 'd',
          heartbeatMs: 100,
          electionTimeoutMs: 1000,
          electionTimeoutMaxMs: 2000,
        },
        {
          id: 'etcd-k3s',
          description: 'k',
          heartbeatMs: 500,
          electionTimeoutMs: 5000,
          electionTimeoutMaxMs: 10_000,
        },
      ],
      rounds: [
        { ...round('edgectl', 1900), survivorsReadyMs: 7000, apiServerReadyMs: 6000 },
        round('etcd-default', 1200),
        round('etcd-k3s', 6000),
      ],
      loss: [],
    };
    const sum = summarise(res);
    assert.equal(sum.edgectl?.['power']?.newLeader?.p50, 1900);
    const g = goals(res, sum);
    assert.deepEqual(
      g.map((x) => x.met),
      [true, true, null, true],
    );
    const md = renderMarkdown(res, sum);
    assert.match(md, /\| edgectl \| 100 ms \/ 1800–2100 ms \|/);
    assert.match(
      md,
      /power loss: new leader p50 \(logs\) \| 1\.90 s \| 1\.20 s \| 1\.58× \| 6\.00 s \| 0\.32× \|/,
    );
  });
});
