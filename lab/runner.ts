/**
 * `edgectl lab run scenario.yaml`: bring a lab up, wait for the site to form, apply the timed
 * faults while observing every robot every 200 ms, then heal and power everything on, check that
 * the site converges, collect every agent's log, judge the run (lab/analysis.ts), write the report
 * and take the lab down, checking that nothing was left behind.
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SafetyViolationError } from '../agent/errors.ts';
import { analyse, parseAgentLog, type FaultEvent, type LogEvent } from './analysis.ts';
import {
  applyLabFault,
  labDown,
  labUp,
  leftovers,
  adminApi,
  observeLab,
  robotNodeDir,
  siteOnServer,
  wifiOn,
  type LabObservation,
  type LabState,
} from './lab.ts';
import { renderMarkdown, renderTimelineSvg, segments, type RunReport } from './report.ts';
import type { LabAction, Scenario } from './scenario.ts';
import { converged } from './analysis.ts';
import { applyWorkload, renderWorkload, workloadReady, type WorkloadSpec } from './workload.ts';
import { labApi, presentWrites, Writer } from './rpo.ts';
import {
  addonFilesMissing,
  addonsRunning,
  observeAddonPods,
  type AddonPodObservation,
} from './node/addons.ts';

export interface RunOptions {
  readonly site?: string;
  readonly prefix?: string;
  readonly subnet?: string;
  readonly seed?: number;
  readonly reportDir?: string;
  /** Progress lines for people (stderr). */
  readonly progress?: (line: string) => void;
  /** Keep the lab up after the run (for inspection). */
  readonly keep?: boolean;
  readonly observeEveryMs?: number;
  /** Called with a whole observation when the site has formed, re-formed after a fault, and at the end. */
  readonly milestone?: (label: string, o: LabObservation) => void;
  /** How long the site may take to converge after the final heal. */
  readonly healTimeoutMs?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(
  state: LabState,
  pred: (o: LabObservation) => boolean,
  timeoutMs: number,
  sink: LabObservation[],
  everyMs: number,
): Promise<LabObservation | null> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    const o = await observeLab(state);
    sink.push(o);
    if (pred(o)) return o;
    await sleep(everyMs);
  }
  return null;
}

/** The robot that runs the workload's StatefulSet pod (the fault target `stateful`), or null. */
function statefulHost(o: LabObservation): string | null {
  const pod = o.workload?.pods.find((p) => p.workload === 'StatefulSet' && !p.deleting && p.node);
  return pod?.node ?? null;
}

function substituteStateful(a: LabAction, host: string | null): LabAction {
  const text = JSON.stringify(a);
  if (!text.includes('"stateful"')) return a;
  if (!host) throw new Error('"stateful" names the robot running the StatefulSet pod, and none runs it');
  return JSON.parse(text.replace(/"stateful"/g, JSON.stringify(host))) as LabAction;
}

/**
 * waitForAddons waits until every robot runs the site's Multus and Whereabouts DaemonSet pods
 * (read from the leader's API): a pod that asks for the site network before Multus has configured
 * its node would get the pod network alone. Returns the addon pods last seen and whether they ran.
 */
export async function waitForAddons(
  state: LabState,
  leaderName: string,
  timeoutMs: number,
  everyMs: number,
): Promise<{ ok: boolean; why: string; pods: AddonPodObservation[]; ms: number }> {
  const leader = state.robots.find((r) => r.name === leaderName)!;
  const nodes = state.robots.filter((r) => !r.witness).map((r) => r.name);
  const t = Date.now();
  let last = { ok: false, why: 'the addon pods could not be read', pods: [] as AddonPodObservation[] };
  while (Date.now() - t < timeoutMs) {
    const pods = await observeAddonPods(adminApi(state, leader.address, 5000)).catch(() => null);
    if (pods) last = { ...addonsRunning(pods, nodes), pods };
    if (last.ok) {
      const missing = nodes.flatMap((n) =>
        addonFilesMissing(robotNodeDir(state, n)).map((f) => `${n}: ${f}`),
      );
      if (missing.length === 0) break;
      last = { ...last, ok: false, why: `not yet written: ${missing.join(', ')}` };
    }
    await sleep(everyMs);
  }
  return { ...last, ms: Date.now() - t };
}

/**
 * startWorkload applies the scenario's demo workload to the leader's server and waits until every
 * replica runs with a site address; the StatefulSet prefers a worker (or the leader, as the
 * scenario says), so that "power off the robot that runs it" is the loss the scenario means.
 */
async function startWorkload(
  state: LabState,
  spec: WorkloadSpec,
  formed: LabObservation,
  timeoutMs: number,
  sink: LabObservation[],
  everyMs: number,
): Promise<LabObservation | null> {
  const leader = state.robots.find((r) => r.name === formed.leader)!;
  const { readRealNodeBundle } = await import('./node/real-node.ts');
  const image = readRealNodeBundle(state.nodeBundle!).demoImage;
  await applyWorkload(
    adminApi(state, leader.address, 5000),
    renderWorkload(state.site, image, spec, { leader: leader.name }),
  );
  return waitFor(
    state,
    (o) => !!o.workload && workloadReady(o.workload, spec, new Set(o.robots.map((r) => r.name))).ok,
    timeoutMs,
    sink,
    everyMs,
  );
}

function substituteVictims(a: LabAction, victims: readonly string[]): LabAction[] {
  const text = JSON.stringify(a);
  if (!text.includes('"victim"')) return [a];
  if (victims.length === 0) return [];
  return victims.map((v) => JSON.parse(text.replace(/"victim"/g, JSON.stringify(v))) as LabAction);
}

/** runScenario runs one scenario end to end and returns its report (it never leaves a lab up unless asked). */
export async function runScenario(sc: Scenario, o: RunOptions = {}): Promise<RunReport> {
  const say = o.progress ?? (() => {});
  const every = o.observeEveryMs ?? 200;
  const site = o.site ?? sc.name.slice(0, 12).replace(/-+$/, '');
  const startedAt = new Date().toISOString();
  const tStart = Date.now();
  say(
    `lab ${site}: ${sc.robots} robots (${sc.voters} voters, ${sc.profile} profile, ${sc.node} nodes), scenario ${sc.name}`,
  );
  const state = await labUp({
    site,
    robots: sc.robots,
    voters: sc.voters,
    witnesses: sc.witnesses,
    runtime: 'apiserver',
    node: sc.node,
    seed: o.seed ?? 1,
    prefix: o.prefix,
    subnet: o.subnet,
    deadAfterMs: sc.deadAfterMs,
    profile: sc.profile,
  });
  const observations: LabObservation[] = [];
  const faults: FaultEvent[] = [];
  let report: RunReport | null = null;
  let workloadStartMs: number | null = null;
  let addonPods: AddonPodObservation[] | null = null;
  try {
    let formed = await waitFor(state, converged, sc.settleMs, observations, every);
    const formedMs = formed ? formed.t - tStart : null;
    if (!formed) say(`the site did not form within ${sc.settleMs / 1000} s`);
    else say(`formed in ${(formedMs! / 1000).toFixed(1)} s: ${formed.leader} leads term ${formed.term}`);
    if (formed) o.milestone?.('formed', formed);
    if (formed && sc.workload) {
      const addons = await waitForAddons(state, formed.leader!, sc.settleMs, 500);
      addonPods = addons.pods;
      say(
        addons.ok
          ? `addons running in ${(addons.ms / 1000).toFixed(1)} s: ${addons.why}`
          : `the addons did not run within ${sc.settleMs / 1000} s: ${addons.why}`,
      );
    }
    if (formed && sc.workload) {
      const t = Date.now();
      formed = await startWorkload(state, sc.workload, formed, sc.settleMs, observations, every);
      if (!formed) say(`the workload did not run within ${sc.settleMs / 1000} s`);
      else {
        workloadStartMs = formed.t - t;
        say(`workload running in ${(workloadStartMs / 1000).toFixed(1)} s`);
        o.milestone?.('workload running', formed);
      }
    }
    // The writer of no-lost-writes: through the leader the site formed with, from now on.
    const writer =
      formed?.leader && sc.expect.some((e) => e.kind === 'no-lost-writes')
        ? new Writer(labApi(state, formed.leader), `site-${state.site}`, 'rpo', 100)
        : null;
    const t0 = Date.now();
    const tEnd = t0 + sc.durationMs;
    let victims: string[] = [];
    let latest = formed ?? observations.at(-1)!;
    const pending = [...sc.steps];
    const running: Promise<void>[] = [];
    while (formed && Date.now() < tEnd) {
      while (pending.length && pending[0]!.atMs <= Date.now() - t0) {
        const step = pending.shift()!;
        const leaderBefore = latest.leader;
        const termBefore = latest.term;
        const applied: string[] = [];
        const robots: string[] = [];
        const t = Date.now();
        const host = statefulHost(latest);
        const run = async () => {
          const actions = step.actions
            .flatMap((a) => substituteVictims(a, victims))
            .map((a) => substituteStateful(a, host));
          if (actions.length === 0)
            throw new Error(
              '"victim" names the robots the last power-off, wifi-off or pause took away, and none did',
            );
          for (const a of actions) {
            if (a.kind === 'wifi-on') {
              wifiOn(state, a.node);
              applied.push(`wifi-on:${a.node}`);
              robots.push(a.node);
              continue;
            }
            const r = await applyLabFault(state, a.fault, { leader: leaderBefore });
            applied.push(r.fault);
            robots.push(...r.robots);
            if (['kill', 'isolate', 'pause'].includes(a.fault.kind)) victims = r.robots;
          }
        };
        const ev: FaultEvent = {
          t,
          stepId: step.id,
          text: step.text,
          applied,
          robots,
          leaderBefore,
          termBefore,
        };
        faults.push(ev);
        say(
          `${((t - t0) / 1000).toFixed(1)} s: ${step.text}${leaderBefore ? ` (leader ${leaderBefore}, term ${termBefore})` : ''}`,
        );
        // A burst blocks for its length: run faults concurrently with observation.
        // A fault that could not be applied fails the run: what follows it shows nothing about it.
        running.push(
          run().catch((e: Error) => {
            ev.error = e.message;
            say(`fault ${step.text} was NOT applied: ${e.message}`);
          }),
        );
      }
      const wasConverged = converged(latest);
      latest = await observeLab(state);
      observations.push(latest);
      if (!wasConverged && converged(latest) && faults.length)
        o.milestone?.(
          `re-formed ${((latest.t - faults.at(-1)!.t) / 1000).toFixed(1)} s after "${faults.at(-1)!.text}"`,
          latest,
        );
      await sleep(every);
    }
    await Promise.all(running);
    await writer?.stop();
    const tFaultsEnd = Date.now();
    // The end of every run: heal the network, power on and resume every robot, and require the
    // site to converge (the "after heal, one leader and all robots Ready" invariant).
    say('healing: network healed, every robot powered on and resumed');
    const healT = Date.now();
    const healApplied: string[] = [];
    await applyLabFault(state, { kind: 'heal' });
    healApplied.push('heal');
    for (const r of state.robots) {
      if (r.paused) {
        await applyLabFault(state, { kind: 'resume', node: r.name });
        healApplied.push(`resume:${r.name}`);
      }
      if (!r.powered) {
        await applyLabFault(state, { kind: 'restart', node: r.name });
        healApplied.push(`restart:${r.name}`);
      }
    }
    faults.push({
      t: healT,
      stepId: 'final-heal',
      text: 'final heal',
      applied: healApplied,
      robots: state.robots.map((r) => r.name),
      leaderBefore: latest.leader,
      termBefore: latest.term,
    });
    const final = await waitFor(state, converged, o.healTimeoutMs ?? 60_000, observations, every);
    say(
      final
        ? `converged after heal: ${final.leader} leads term ${final.term}`
        : 'did NOT converge after heal',
    );
    if (final) o.milestone?.('after the final heal', final);
    // The site's configuration must be on the final leader's server, for its epoch.
    const finalLeader = final ? state.robots.find((r) => r.name === final.leader) : undefined;
    const site = finalLeader ? await siteOnServer(state, finalLeader.address).catch(() => null) : null;
    if (site)
      say(
        `site on ${finalLeader!.name}'s server: namespace ${site.namespace ? 'present' : 'MISSING'} (epoch ${site.epoch}), networks ${site.networks.join(', ') || 'none'}`,
      );
    const logs: Record<string, LogEvent[]> = {};
    for (const r of state.robots) {
      let text = '';
      try {
        text = readFileSync(join(state.dir, 'robots', r.name, 'agent.log'), 'utf8');
      } catch {
        // a robot that never started has no log
      }
      logs[r.name] = parseAgentLog(r.name, text);
    }
    const endT = Date.now();
    const rec = {
      robots: state.robots.map((r) => r.name),
      voters: state.robots.filter((r) => r.voter).map((r) => r.name),
      witnesses: state.robots.filter((r) => r.witness).map((r) => r.name),
      t0,
      tEnd: endT,
      faults,
      observations,
      logs,
      final: final ?? observations.at(-1) ?? null,
      workload: sc.workload,
      ...(writer
        ? {
            writes: {
              acked: writer.acked,
              present: finalLeader
                ? [
                    ...((await presentWrites(
                      labApi(state, finalLeader.name, 5000),
                      `site-${state.site}`,
                      'rpo',
                    ).catch(() => null)) ?? []),
                  ]
                : null,
            },
          }
        : {}),
    };
    const analysis = analyse(rec, sc.expect);
    const coldStarts = observations
      .flatMap((ob) => ob.robots.map((r) => r.status?.controlPlane.details?.['apiServerColdStartMs']))
      .filter((x): x is number => typeof x === 'number');
    report = {
      scenario: sc.name,
      description: sc.description,
      robots: rec.robots,
      voters: rec.voters,
      startedAt,
      tStart,
      t0,
      tEnd: endT,
      formedMs,
      ...(sc.workload
        ? {
            workloadStartMs,
            addonPods,
            workloadPods: {
              before: observations.filter((x) => x.t < t0 && x.workload).at(-1)?.workload?.pods ?? [],
              after: (final ?? observations.at(-1))?.workload?.pods ?? [],
            },
          }
        : {}),
      apiServerColdStartMs: coldStarts.length ? Math.min(...coldStarts) : null,
      site,
      faults,
      analysis,
      leaks: null,
      passed:
        formed !== null &&
        faults.every((f) => f.error === undefined) &&
        analysis.violations.length === 0 &&
        analysis.expectations.every((e) => e.ok) &&
        site !== null &&
        site.namespace &&
        site.epoch === String(final?.term),
    };
    void tFaultsEnd;
    if (o.reportDir) {
      writeReport(o.reportDir, report, observations, logs);
      // The raw evidence: every agent's structured log and the lab's event log.
      mkdirSync(join(o.reportDir, 'logs'), { recursive: true });
      for (const r of state.robots)
        copyIfThere(
          join(state.dir, 'robots', r.name, 'agent.log'),
          join(o.reportDir, 'logs', `${r.name}.log`),
        );
      copyIfThere(join(state.dir, 'events.ndjson'), join(o.reportDir, 'events.ndjson'));
    }
  } finally {
    if (!o.keep) {
      labDown(site, { keepLogs: false });
      const leaks = leftovers(site, state.prefix);
      if (report) {
        const clean =
          leaks.netns.length +
            leaks.links.length +
            leaks.nftTables.length +
            leaks.processes.length +
            leaks.cgroups.length ===
          0;
        report = { ...report, leaks, passed: report.passed && clean };
        if (o.reportDir)
          writeFileSync(join(o.reportDir, 'report.json'), `${JSON.stringify(report, null, 2)}\n`);
        if (o.reportDir) writeFileSync(join(o.reportDir, 'report.md'), renderMarkdown(report));
      }
    }
  }
  return report!;
}

function copyIfThere(from: string, to: string): void {
  if (existsSync(from)) copyFileSync(from, to);
}

/** writeReport writes report.json, report.md, timeline.svg and the raw records into `dir`. */
export function writeReport(
  dir: string,
  report: RunReport,
  observations: readonly LabObservation[],
  logs: Readonly<Record<string, readonly LogEvent[]>>,
): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'report.json'), `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(join(dir, 'report.md'), renderMarkdown(report));
  const elections = Object.values(logs)
    .flat()
    .filter((e) => e.kind === 'role' && e.role === 'leader');
  writeFileSync(
    join(dir, 'timeline.svg'),
    renderTimelineSvg(report, segments(observations, report.robots, report.tEnd), elections),
  );
  writeFileSync(
    join(dir, 'observations.ndjson'),
    observations.map((ob) => JSON.stringify(ob)).join('\n') + '\n',
  );
}

/** assertPassed turns a failed run into the CLI's safety error (exit code 3), with the evidence. */
export function assertPassed(r: RunReport): void {
  if (r.passed) return;
  const why = [
    ...r.faults
      .filter((f) => f.error !== undefined)
      .map((f) => `fault ${f.stepId} (${f.text}) was not applied: ${f.error}`),
    ...r.analysis.violations.map((v) => `${v.invariant}: ${v.message}`),
    ...r.analysis.expectations
      .filter((e) => !e.ok)
      .map(
        (e) =>
          `expectation ${e.expectation.kind} after ${e.expectation.after}: ${e.detail} (measured ${e.measuredMs ?? '-'} ms, limit ${e.expectation.withinMs ?? '-'} ms)`,
      ),
    ...(r.formedMs === null ? ['the site did not form before the first fault'] : []),
    ...(r.site?.namespace ? [] : ["the site's namespace is not on the final leader's server"]),
    ...(r.leaks &&
    r.leaks.netns.length +
      r.leaks.links.length +
      r.leaks.nftTables.length +
      r.leaks.processes.length +
      (r.leaks.cgroups?.length ?? 0) >
      0
      ? [`lab down left things behind: ${JSON.stringify(r.leaks)}`]
      : []),
  ];
  throw new SafetyViolationError(`lab run ${r.scenario} failed:\n  - ${why.join('\n  - ')}`, {
    hint: 'the report (--report dir) has the timeline and the evidence; agent logs are in the report dir',
  });
}
