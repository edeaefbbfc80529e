/**
 * The agent's unit leaves writable every file the agent's k3s runtime writes or removes on a leader
 * change (the datastore's restore and start included), a replica's start, a demotion, a worker
 * (re)join, a snapshot and a node clean-up, and nothing else is needed: under ProtectSystem=strict
 * any other path would fail on a robot. (The install and uninstall plans run over SSH from
 * bootstrap, outside the sandbox.)
 * test/security/agent-unit-sandbox.test.ts runs the agent itself in the sandbox.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import type { Plan } from '../../agent/plan/plan.ts';
import { LOCAL_SNAPSHOT_DIR, RECEIVED_SNAPSHOT_DIR } from '../../agent/k3s/paths.ts';
import {
  forgetNodesPlan,
  joinWorkerPlan,
  resetWorkerPlan,
  snapshotSavePlan,
  startServerPlan,
  stopServerPlan,
} from '../../agent/k3s/plans.ts';
import { replicaStartPlan, takeoverPlan } from '../../agent/k3s/replica-plans.ts';
import { SERVER_SPEC, WORKER_SPEC } from '../../agent/k3s/testing/fixtures.ts';

const R1 = { id: SERVER_SPEC.nodeName, host: SERVER_SPEC.nodeIp };

const unit = readFileSync(new URL('../../templates/edgectl-agent.service', import.meta.url), 'utf8');

function writablePaths(text: string): string[] {
  const values = (key: string) =>
    text
      .split('\n')
      .filter((l) => l.startsWith(`${key}=`))
      .flatMap((l) => l.slice(key.length + 1).split(/\s+/));
  return [
    ...values('ReadWritePaths').map((p) => p.replace(/^-/, '')),
    ...values('StateDirectory').map((d) => `/var/lib/${d}`),
    ...values('ConfigurationDirectory').map((d) => `/etc/${d}`),
  ];
}

test("every path the agent's k3s runtime writes or removes is writable under the unit's ProtectSystem=strict", () => {
  assert.match(unit, /^ProtectSystem=strict$/m);
  const writable = writablePaths(unit);
  const inside = (p: string) => writable.some((w) => p === w || p.startsWith(`${w}/`));
  const plans: Plan[] = [
    startServerPlan(SERVER_SPEC, 5),
    takeoverPlan(R1, 5, {
      kind: 'snapshot',
      path: `${RECEIVED_SNAPSHOT_DIR}/s`,
      sha256: 'a'.repeat(64),
    }),
    takeoverPlan(R1, 5, { kind: 'replica', epoch: 4 }),
    replicaStartPlan(R1, { id: 'r2', host: '10.20.0.12' }, 5, 4),
    stopServerPlan(SERVER_SPEC, 5),
    joinWorkerPlan(WORKER_SPEC, { id: 'r1', host: '10.20.0.11' }, 5),
    resetWorkerPlan(WORKER_SPEC),
    snapshotSavePlan(SERVER_SPEC, `${LOCAL_SNAPSHOT_DIR}/edgectl-x`),
    forgetNodesPlan(SERVER_SPEC, ['r9']),
  ];
  const paths = plans.flatMap((p) =>
    p.steps.flatMap((s) =>
      s.kind === 'writeFile' || s.kind === 'remove' || s.kind === 'upload' ? [s.path] : [],
    ),
  );
  assert.ok(paths.length > 10, 'the plans write and remove files');
  for (const p of [...paths, LOCAL_SNAPSHOT_DIR, RECEIVED_SNAPSHOT_DIR])
    assert.ok(inside(p), `${p} is read-only to the agent: add it to ReadWritePaths`);
  // And the unit opens no more than that: the state, the config directory and k3s's two trees.
  assert.deepEqual(writable.sort(), [
    '/etc/edgectl',
    '/etc/rancher/k3s',
    '/var/lib/edgectl',
    '/var/lib/rancher/k3s',
  ]);
});
