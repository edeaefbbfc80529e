/**
 * The lab's faults tell the truth, as root with real agents: 100% loss is a rule nftables accepts
 * and it works (the leader that hears nothing is demoted and the others elect a new one); a fault
 * the lab cannot apply fails the run, and no expectation after it passes. Without root it fails
 * with a message; it never skips.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { applyNetFault, EMPTY_NET, renderNftRuleset } from '../../lab/nft.ts';
import { requireRoot } from '../../lab/netns.ts';
import { assertPassed, runScenario } from '../../lab/runner.ts';
import { parseScenario } from '../../lab/scenario.ts';

test('nftables accepts the rules of every loss the lab can be asked for, 100% included', () => {
  requireRoot('the lab fault test');
  const veth = { r1: 'elf-v0', r2: 'elf-v1', r3: 'elf-v2' };
  for (const rate of [0.01, 0.1, 0.5, 0.99, 0.999, 1]) {
    let s = applyNetFault(EMPTY_NET, { kind: 'drop', from: 'all', to: 'r1', rate });
    s = applyNetFault(s, { kind: 'drop', from: 'r2', to: 'all', rate });
    s = applyNetFault(s, { kind: 'drop', from: 'all', to: 'all', rate });
    // -c: check only, nothing is loaded.
    execFileSync('nft', ['-c', '-f', '-'], { input: renderNftRuleset('elf_check_faults', s, veth) });
  }
});

test('a lab run: total loss to the leader demotes it; a fault the lab refuses fails the run', async () => {
  requireRoot('the lab fault test');
  const sc = parseScenario(
    [
      'name: loss-truth',
      'robots: 3',
      'node: lite',
      'voters: 3',
      'duration: 24s',
      'faults:',
      '  - { id: deaf, at: 2s, fault: "drop:all->leader=1" }',
      '  - { id: heal, at: 14s, fault: heal }',
      // 0.4% is below the lab's 1% step: the lab refuses it.
      '  - { id: tiny, at: 16s, fault: loss r1 0.4 }',
      'expect:',
      '  - { kind: demoted, after: deaf, within: 8s }',
      '  - { kind: new-leader, after: deaf, within: 10s }',
      '  - { kind: all-ready, after: tiny, within: 5s }',
      '',
    ].join('\n'),
    'loss-truth.yaml',
  );
  const reportDir = mkdtempSync(join(tmpdir(), 'edgectl-lab-loss-'));
  const report = await runScenario(sc, { site: 'it-loss', prefix: 'elil-', subnet: '10.77.8', reportDir });
  const byStep = Object.fromEntries(report.faults.map((f) => [f.stepId, f]));
  assert.equal(byStep['deaf']!.error, undefined, `100% loss applied (report in ${reportDir})`);
  const expectation = (kind: string) =>
    report.analysis.expectations.find((e) => e.expectation.kind === kind)!;
  assert.equal(expectation('demoted').ok, true, expectation('demoted').detail);
  assert.equal(expectation('new-leader').ok, true, expectation('new-leader').detail);
  assert.match(byStep['tiny']!.error ?? '', /below the lab's 1% step/);
  assert.equal(expectation('all-ready').ok, false);
  assert.match(expectation('all-ready').detail, /did not apply/);
  assert.equal(report.passed, false);
  assert.throws(() => assertPassed(report), /fault tiny \(loss r1 0\.4\) was not applied/);
  assert.deepEqual(report.leaks, { netns: [], links: [], nftTables: [], processes: [], cgroups: [] });
});
