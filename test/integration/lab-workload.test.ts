/**
 * Workloads on real lab nodes, as root: the scenario lab/scenarios/workload-robot-loss.yaml on 3
 * robots, each a real node (containerd + kubelet; Multus and Whereabouts from the site's addon
 * DaemonSets, run from locally built images), the leader also running kube-controller-manager and
 * kube-scheduler. A Deployment and a StatefulSet run with site
 * addresses; the robot that runs the StatefulSet pod loses power. Asserted from the real API: the
 * pod runs again on a survivor with a site address, the lost robot's addresses are freed, no
 * address is ever held by two pods, nothing is duplicated after the robot returns, and `lab down`
 * leaves no namespace, process or cgroup behind. The time limits are the scenario's (grace period
 * plus a measured bound); what is asserted is where the pods are and which addresses they hold.
 * Builds the node bundle on first use (lab/node/build.sh, cached). Without root it fails.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { LabObservation } from '../../lab/lab.ts';
import { requireRoot } from '../../lab/netns.ts';
import { addonsRunning } from '../../lab/node/addons.ts';
import { realNodeBundle } from '../../lab/node/real-node.ts';
import { runScenario } from '../../lab/runner.ts';
import { parseScenario } from '../../lab/scenario.ts';
import { duplicateAddresses } from '../../lab/workload.ts';

test('workload-robot-loss: the StatefulSet pod comes back on a survivor with a site address, no address twice', async () => {
  requireRoot('the lab workload test');
  const bundle = realNodeBundle(); // builds the node components on a fresh machine (cached afterwards)
  const file = fileURLToPath(new URL('../../lab/scenarios/workload-robot-loss.yaml', import.meta.url));
  const sc = parseScenario(readFileSync(file, 'utf8'), 'workload-robot-loss.yaml');
  const reportDir = mkdtempSync(join(tmpdir(), 'edgectl-lab-workload-'));
  const report = await runScenario(sc, { site: 'it-wl', prefix: 'eliwl-', subnet: '10.77.62', reportDir });

  const failed = [
    ...report.faults.filter((f) => f.error !== undefined).map((f) => `${f.stepId}: ${f.error}`),
    ...report.analysis.violations.map((v) => v.message),
    ...report.analysis.expectations.filter((e) => !e.ok).map((e) => `${e.expectation.kind}: ${e.detail}`),
  ];
  assert.deepEqual(failed, [], `report in ${reportDir}`);
  assert.equal(report.passed, true, `report in ${reportDir}`);
  assert.deepEqual(report.leaks, { netns: [], links: [], nftTables: [], processes: [], cgroups: [] });

  // The site's addons ran for real on every robot, from the images the nodes imported (no
  // registry, no binaries put on the nodes by hand): the site addresses below are their work.
  const addons = report.addonPods ?? [];
  assert.deepEqual(addonsRunning(addons, report.robots), {
    ok: true,
    why: `multus and whereabouts run on ${report.robots.length} nodes`,
  });
  for (const p of addons)
    assert.deepEqual(
      p.images,
      p.app === 'multus' ? [bundle.cniPluginsImage, bundle.multusImage] : [bundle.whereaboutsImage],
      `${p.name} runs the locally built images`,
    );

  // The behaviour, from the observations the expectations were judged on.
  const observations = readFileSync(join(reportDir, 'observations.ndjson'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as LabObservation);
  const off = report.faults.find((f) => f.stepId === 'off')!;
  const on = report.faults.find((f) => f.stepId === 'on')!;
  const [lost] = off.robots;
  assert.ok(lost && lost !== off.leaderBefore, `a worker lost power (${lost}), not the leader`);
  const db = (o: LabObservation) => o.workload?.pods.filter((p) => p.workload === 'StatefulSet') ?? [];
  const beforeOff = observations.filter((o) => o.t < off.t && o.workload).at(-1)!;
  assert.equal(db(beforeOff)[0]?.node, lost, 'the StatefulSet pod ran on the robot that lost power');
  const lostAddresses = beforeOff.workload!.pods.filter((p) => p.node === lost).map((p) => p.siteAddress);

  // Before the robot returns: the StatefulSet pod runs, Ready, on a survivor, with a site address.
  const beforeOn = observations.filter((o) => o.t < on.t && o.workload).at(-1)!;
  const moved = db(beforeOn).filter((p) => !p.deleting);
  assert.equal(moved.length, 1, 'one StatefulSet pod');
  assert.notEqual(moved[0]!.node, lost, 'it runs on a survivor');
  assert.equal(moved[0]!.phase, 'Running');
  assert.ok(moved[0]!.ready && moved[0]!.siteAddress, 'Ready, with a site address');
  // The lost robot's pods no longer hold their addresses in a sandbox of theirs.
  const lostAlloc = beforeOff.workload!.allocations.filter((a) => lostAddresses.includes(a.ip));
  for (const a of lostAlloc)
    assert.ok(
      !beforeOn.workload!.allocations.some((b) => b.ip === a.ip && b.id === a.id),
      `${a.ip} (${a.pod}) was freed`,
    );
  // Never an address held twice, in any observation.
  for (const o of observations)
    if (o.workload) assert.deepEqual(duplicateAddresses(o.workload), [], `at ${o.t - report.t0} ms`);

  // After the robot returned: exactly 2 + 1 pods, each Running with its own site address.
  const last = observations.filter((o) => o.workload).at(-1)!;
  const pods = last.workload!.pods.filter((p) => !p.deleting);
  assert.deepEqual(
    pods.map((p) => p.workload).sort(),
    ['Deployment', 'Deployment', 'StatefulSet'],
    'nothing duplicated after the return',
  );
  assert.equal(new Set(pods.map((p) => p.siteAddress)).size, 3, 'three distinct site addresses');
  assert.ok(
    pods.every((p) => p.phase === 'Running' && p.siteAddress),
    'all Running with a site address',
  );
});
