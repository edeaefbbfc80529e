/**
 * The lab campaign hook: campaign schedules run in the network-namespace lab (lab/runner.ts), with
 * real agents, real UDP and mDNS, real SIGKILL/SIGSTOP, nftables loss and partitions. The issue asks
 * for at least 50 lab runs in the long mode: `npm run test:campaign -- --long --lab` (root).
 *
 * Not part of the CI-sized campaign (50 runs take about an hour); docs/reliability.md has the
 * latest long run. A schedule becomes a lab scenario with these differences:
 *   - times are shifted so that the first fault's clock starts once the site has formed (the
 *     simulator's 3 s of boot);
 *   - `transfer` is not a lab fault (a clean SIGTERM is the lab's handover): left out;
 *   - clock jumps are left out: Linux has no per-namespace wall clock (time namespaces offset only
 *     the monotonic and boot clocks), so jumping one robot's wall clock would jump the whole
 *     machine's. The agent reads only performance.now() for its timers (campaign.test.ts checks the
 *     sources), which is what makes a wall-clock jump harmless;
 *   - the runner judges the run with lab/analysis.ts (one leader per term, no overlapping server
 *     epochs from the agents' logs) and the `converged` expectation after the heal.
 */
import type { Fault } from '../../lab/faults.ts';
import { formatFault } from '../../lab/faults.ts';
import type { Scenario, ScenarioStep } from '../../lab/scenario.ts';
import { TIMING_PROFILES } from '../../statecharts/timing.ts';
import { convergenceRule } from './run.ts';
import { generateSchedule, robotNames, type CampaignSchedule } from './schedule.ts';

/** The simulator's boot period before the first fault (schedule.ts). */
const BOOT_MS = 3_000;

export const LAB_PREFIX = 'esy-';
export const LAB_SUBNET = '10.77.41';

/** labScenario turns a campaign schedule into a lab scenario (see the file comment for what differs). */
export function labScenario(s: CampaignSchedule): Scenario {
  const steps: ScenarioStep[] = [];
  const step = (atMs: number, fault: Fault): void => {
    steps.push({
      id: `f${steps.length + 1}`,
      atMs: Math.max(0, atMs - BOOT_MS),
      text: formatFault(fault),
      actions: [{ kind: 'fault', fault }],
    });
  };
  for (const f of s.faults) if (f.fault.kind !== 'transfer') step(f.atMs, f.fault);
  step(s.healAtMs, { kind: 'heal' });
  const healId = steps.at(-1)!.id;
  step(s.healAtMs, { kind: 'restart', node: 'all' });
  step(s.healAtMs, { kind: 'resume', node: 'all' });
  const rule = convergenceRule(TIMING_PROFILES[s.profile === 'fleet' ? 'fleet' : 'lab'], s.delayMaxMs);
  return {
    name: `campaign-${s.campaignSeed}-${s.index}`.slice(0, 40),
    description: `campaign seed ${s.campaignSeed}, schedule ${s.index}`,
    robots: robotNames(s).length,
    // The campaign is about elections: the lab kubelet keeps it fast.
    node: 'lite',
    workload: null,
    voters: s.voters,
    witnesses: 0,
    profile: s.profile === 'fleet' ? 'fleet' : 'lab',
    settleMs: 60_000,
    durationMs: s.healAtMs - BOOT_MS + rule.boundMs + rule.stableMs,
    deadAfterMs: undefined,
    steps,
    expect: [{ kind: 'converged', after: healId, withinMs: rule.boundMs + rule.stableMs }],
  };
}

export interface LabCampaignResult {
  readonly runs: number;
  readonly failed: readonly { readonly index: number; readonly why: string }[];
}

/**
 * runLabCampaign runs schedules `from`..`from + runs − 1` of `seed` in the lab, one after another.
 * The lab runner is imported lazily, so the simulator campaign does not load it.
 */
export async function runLabCampaign(o: {
  seed: number;
  from: number;
  runs: number;
  progress: (line: string) => void;
}): Promise<LabCampaignResult> {
  const { runScenario } = await import('../../lab/runner.ts');
  const failed: { index: number; why: string }[] = [];
  for (let k = o.from; k < o.from + o.runs; k++) {
    const sc = labScenario(generateSchedule(o.seed, k));
    o.progress(`lab run ${k - o.from + 1}/${o.runs}: schedule ${k}, ${sc.steps.length} steps`);
    const report = await runScenario(sc, {
      prefix: LAB_PREFIX,
      subnet: LAB_SUBNET,
      seed: o.seed,
      progress: o.progress,
    });
    if (!report.passed) {
      const why = [
        ...report.analysis.violations.map((v) => `${v.invariant}: ${v.message}`),
        ...report.analysis.expectations.filter((e) => !e.ok).map((e) => `${e.expectation.kind}: ${e.detail}`),
      ].join('; ');
      failed.push({ index: k, why: why || 'the run did not pass' });
      o.progress(
        `lab schedule ${k} FAILED: ${why}\n  replay: npm run test:campaign -- --lab --seed ${o.seed} --schedule ${k}`,
      );
    }
  }
  return { runs: o.runs, failed };
}
