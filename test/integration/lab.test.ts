/**
 * The lab end to end, as root: the CI scenarios (leader power loss and a partition, 3 robots, real
 * agents, a real kube-apiserver + etcd per epoch, real faults) must pass every expectation and
 * invariant, and `lab down` must leave no namespace, link, nft table or process behind, also for a
 * half-built lab after a crash. Without root it fails with a message; it never skips.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { labDir, labDown, leftovers, writeLabState, type LabState } from '../../lab/lab.ts';
import { EMPTY_NET } from '../../lab/nft.ts';
import { createSite, requireRoot } from '../../lab/netns.ts';
import { runScenario } from '../../lab/runner.ts';
import { parseScenario } from '../../lab/scenario.ts';

const scenario = (name: string) =>
  parseScenario(
    readFileSync(fileURLToPath(new URL(`../../lab/scenarios/${name}.yaml`, import.meta.url)), 'utf8'),
    `${name}.yaml`,
  );
const nothingLeft = { netns: [], links: [], nftTables: [], processes: [], cgroups: [] };

for (const [name, subnet] of [
  ['leader-power-loss', '10.77.4'],
  ['partition-3', '10.77.5'],
] as const) {
  test(`lab scenario ${name}: every expectation and invariant holds, and nothing is left behind`, async () => {
    requireRoot('the lab integration test');
    const reportDir = mkdtempSync(join(tmpdir(), `edgectl-lab-${name}-`));
    const report = await runScenario(scenario(name), {
      site: `it-${name.slice(0, 6)}`,
      prefix: `eli${name.slice(0, 2)}-`,
      subnet,
      reportDir,
    });
    const failed = [
      ...report.analysis.violations.map((v) => v.message),
      ...report.analysis.expectations.filter((e) => !e.ok).map((e) => `${e.expectation.kind}: ${e.detail}`),
    ];
    assert.deepEqual(failed, [], `report in ${reportDir}`);
    assert.notEqual(report.formedMs, null, 'the site formed');
    assert.equal(report.analysis.durations.length, 1, 'the leader loss was measured');
    const d = report.analysis.durations[0]!;
    assert.ok(d.newLeader && d.allReadyMs !== null, `re-formed on ${d.newLeader}`);
    assert.deepEqual(report.leaks, nothingLeft);
    assert.equal(report.passed, true);
    for (const f of ['report.json', 'report.md', 'timeline.svg', 'logs/r1.log'])
      assert.ok(existsSync(join(reportDir, f)), `${f} is in the report`);
    assert.match(readFileSync(join(reportDir, 'timeline.svg'), 'utf8'), /^<svg /);
  });
}

// Two robots and a witness: either robot's loss fails over, the witness's loss changes nothing, and
// with both robots off the one that returns leads on the witness's vote.
for (const [name, site, subnet] of [
  ['witness-robot-loss', 'it-wrobot', '10.77.8'],
  ['witness-loss', 'it-wloss', '10.77.9'],
  ['witness-both-robots-off', 'it-wboth', '10.77.10'],
] as const) {
  test(`lab scenario ${name}: every expectation and invariant holds, the witness never leads`, async () => {
    requireRoot('the lab integration test');
    const reportDir = mkdtempSync(join(tmpdir(), `edgectl-lab-${name}-`));
    const report = await runScenario(scenario(name), {
      site,
      prefix: 'eliw-',
      subnet,
      reportDir,
    });
    const failed = [
      ...report.analysis.violations.map((v) => v.message),
      ...report.analysis.expectations.filter((e) => !e.ok).map((e) => `${e.expectation.kind}: ${e.detail}`),
    ];
    assert.deepEqual(failed, [], `report in ${reportDir}`);
    assert.ok(report.analysis.expectations.length > 0);
    const witnessLed = /w1 became leader/.test(readFileSync(join(reportDir, 'logs', 'w1.log'), 'utf8'));
    assert.equal(witnessLed, false, 'the witness never leads');
    assert.deepEqual(report.leaks, nothingLeft);
    assert.equal(report.passed, true);
  });
}

test('lab down cleans up a half-built lab (crash during up) and touches nothing else', () => {
  requireRoot('the lab integration test');
  const site = 'it-crash';
  const prefix = 'elic-';
  // Someone else's namespace with a similar name must survive.
  createSite('elid-', '10.77.7', ['r1']);
  try {
    const made = createSite(prefix, '10.77.6', ['r1', 'r2']);
    const dir = labDir(site);
    mkdirSync(dir, { recursive: true });
    const state: LabState = {
      version: 1,
      site,
      prefix,
      subnet: '10.77.6',
      bridge: made.bridge,
      hostAddress: made.hostAddress,
      dir,
      runtime: 'apiserver',
      seed: 1,
      createdAt: new Date().toISOString(),
      robots: [],
      net: EMPTY_NET,
    };
    writeLabState(state);
    // A process the crashed `up` started inside a robot namespace, naming the lab directory.
    const orphan = spawn('ip', ['netns', 'exec', made.robots[0]!.netns, 'sh', '-c', `sleep 600 # ${dir}/`], {
      detached: true,
      stdio: 'ignore',
    });
    orphan.unref();
    const removed = labDown(site);
    assert.deepEqual(removed.removed.netns.sort(), ['elic-r1', 'elic-r2']);
    assert.deepEqual(leftovers(site, prefix), nothingLeft);
    assert.equal(existsSync(dir), false);
    assert.deepEqual(leftovers('it-bystander', 'elid-').netns, ['elid-r1'], 'the other lab is untouched');
  } finally {
    labDown('it-bystander', { prefix: 'elid-' });
  }
});
