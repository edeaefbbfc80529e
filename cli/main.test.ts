import assert from 'node:assert/strict';
import { test } from 'node:test';
import { main } from './main.ts';

function io() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (t: string) => out.push(t), err: (t: string) => err.push(t) }, out, err };
}

test('sim prints the report as JSON with the fields the issue names', async () => {
  const c = io();
  const code = await main(
    [
      'sim',
      '--seed',
      '42',
      '--duration',
      '30s',
      '--loss',
      '0.1',
      '--burst',
      '1.5s@12s',
      '--fault',
      'kill-leader@10s',
      '--output',
      'json',
    ],
    c.io,
  );
  assert.equal(code, 0, c.err.join('\n'));
  const rep = JSON.parse(c.out.join(''));
  for (const k of [
    'timeline',
    'firstLeaderMs',
    'failovers',
    'failoverLatencyMs',
    'falseFailovers',
    'safetyViolations',
  ])
    assert.ok(k in rep, k);
  assert.equal(rep.failovers.length, 1);
  assert.deepEqual(rep.safetyViolations, []);
});

test('sim prints a readable table by default', async () => {
  const c = io();
  assert.equal(await main(['sim', '--duration', '5s'], c.io), 0);
  assert.match(c.out.join('\n'), /first leader\s+\d+\.\d{3}s \(r\d, term \d+\)/);
});

test('an unknown flag exits 2 with a hint, before anything runs', async () => {
  const c = io();
  assert.equal(await main(['sim', '--bogus'], c.io), 2);
  assert.match(c.err.join('\n'), /Unknown argument: bogus/);
  assert.match(c.err.join('\n'), /hint: run the command with --help/);
  assert.equal(c.out.length, 0);
});

test('a fault naming a robot the site lacks is refused with the fix', async () => {
  const c = io();
  assert.equal(await main(['sim', '--nodes', '3', '--fault', 'kill:r9@1s'], c.io), 2);
  assert.match(c.err.join('\n'), /robot "r9"/);
  assert.match(c.err.join('\n'), /robots are r1\.\.r3/);
});

test('errors are JSON under --output json', async () => {
  const c = io();
  assert.equal(await main(['sim', '--voters', '9', '--output', 'json'], c.io), 2);
  const e = JSON.parse(c.err.join(''));
  assert.equal(e.error.code, 'EDGE_BAD_VOTERS');
  assert.ok(e.error.hint);
});

test('no command is a usage error', async () => {
  const c = io();
  assert.equal(await main([], c.io), 2);
});

test('status names the fix when no agent answers', async () => {
  const c = io();
  assert.equal(await main(['status', '--addr', '127.0.0.1:9'], c.io), 1);
  assert.match(c.err.join('\n'), /no agent answers at http:\/\/127\.0\.0\.1:9\/status/);
  assert.match(c.err.join('\n'), /hint: is edgectl-agent running/);
});

test('agent run refuses a missing or invalid config before touching anything', async () => {
  const c = io();
  assert.equal(await main(['agent', 'run', '--config', '/nonexistent/agent.yaml'], c.io), 2);
  assert.match(c.err.join('\n'), /cannot read the file/);
  assert.match(c.err.join('\n'), /templates\/agent\.yaml/);
});

test('status renders a readable table from a live agent', async () => {
  const { renderStatus } = await import('./ops/status.ts');
  const text = renderStatus({
    node: 'r1',
    site: 'lab',
    role: 'leader',
    voter: true,
    witness: false,
    term: 3,
    leader: 'r1',
    quorum: { voters: 3, reachable: 3, ok: true, noQuorumSince: null },
    commitIndex: 4,
    lifecycle: 'leading.serving',
    controlPlane: {
      runtime: 'memory',
      server: { epoch: 3, state: 'serving' },
      worker: null,
      siteAppliedEpoch: 3,
    },
    members: [
      {
        id: 'r2',
        state: 'alive',
        lastHeardAgoMs: 80,
        rttMs: 4.2,
        voter: true,
        witness: false,
        addresses: ['10.0.0.2'],
      },
    ],
    lastErrors: [],
    transport: {
      sent: 10,
      sendErrors: 0,
      received: 9,
      dropped: { 'bad-mac': 2 } as never,
      misaddressed: 0,
      unknownPeer: 0,
      noKey: 0,
      handlerErrors: 0,
      challengesSent: 0,
      challengesAnswered: 0,
      incarnationsConfirmed: 0,
    },
    discovery: { received: 40, badTxt: 2, malformed: 0 },
    uptimeMs: 1000,
  });
  assert.match(text, /r1\s+lab\s+leader\s+3\s+r1\s+leading\.serving/);
  assert.match(text, /r2\s+alive\s+yes\s+0\.1s ago\s+4\.2 ms\s+10\.0\.0\.2/);
  assert.match(text, /dropped: bad-mac 2/);
  assert.match(text, /discovery: received 40, badTxt 2$/m);
});

test('an agent of an earlier version that reports no quorum is rendered, not a crash (rolling upgrade)', async () => {
  const { renderStatus } = await import('./ops/status.ts');
  const { renderObservation } = await import('./ops/lab.ts');
  const status = {
    node: 'r1',
    site: 'lab',
    role: 'follower',
    voter: true,
    term: 2,
    leader: 'r2',
    commitIndex: 1,
    lifecycle: 'following.ready',
    controlPlane: { runtime: 'lab', server: null, worker: null, siteAppliedEpoch: null },
    members: [],
    lastErrors: [],
    transport: {},
    discovery: {},
    uptimeMs: 1,
  } as unknown as Parameters<typeof renderStatus>[0];
  assert.match(renderStatus(status), /r1\s+lab\s+follower\s+2\s+r2/);
  assert.doesNotMatch(renderStatus(status), /no quorum/);
  const table = renderObservation({
    robots: [{ name: 'r1', address: '10.0.0.1', powered: true, paused: false, wifi: true, status }],
    leader: null,
    term: null,
    nodes: null,
  } as unknown as Parameters<typeof renderObservation>[0]);
  assert.match(table, /^no leader\n/);
  assert.match(table, /r1\s+10\.0\.0\.1\s+up\s+follower/);
});

test('a run with a safety violation prints its report, then fails with exit code 3', async () => {
  const { runSim } = await import('./ops/sim.ts');
  const { Simulator } = await import('../lab/sim/simulator.ts');
  const c = io();
  const opts = {
    nodes: 3,
    seed: 1,
    duration: '5s',
    loss: 0,
    delay: '2ms-10ms',
    dup: 0,
    burst: [],
    fault: [],
    profile: 'fleet' as const,
    proposeEvery: '5s',
    trace: false,
    output: 'json' as const,
  };
  // A genuine run, with a violation injected into its result: the checker's findings must end the run red.
  const withViolation = (o: ConstructorParameters<typeof Simulator>[0]) => {
    const r = new Simulator(o).run();
    return {
      ...r,
      violations: [{ kind: 'two-leaders' as const, atMs: 1234, detail: 'r1 and r2 both led term 1' }],
    };
  };
  assert.throws(
    () => runSim(opts, c.io, withViolation),
    (e: unknown) =>
      e instanceof Error &&
      (e as { exitCode?: number }).exitCode === 3 &&
      /two-leaders/.test(e.message) &&
      /seed 1/.test((e as { hint?: string }).hint ?? ''),
  );
  assert.equal(
    JSON.parse(c.out.join('')).safetyViolations.length,
    1,
    'the report is printed before the failure',
  );
});
