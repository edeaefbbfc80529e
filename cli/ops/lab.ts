/** `edgectl lab …`: the lab's operations, with tables for people and JSON for machines. */
import { readTextFile } from '../../agent/input-file.ts';
import { UsageError } from '../../agent/errors.ts';
import { converged } from '../../lab/analysis.ts';
import {
  applyLabFault,
  labDown,
  labUp,
  leftovers,
  observeLab,
  readLabState,
  wifiOn,
  type LabObservation,
  type LabState,
} from '../../lab/lab.ts';
import { seconds, table, type Io, type OutputFormat } from '../output.ts';
import { makeOutDir } from './local-files.ts';

export interface LabCommand {
  readonly action: 'up' | 'down' | 'status' | 'fault' | 'run';
  readonly words: readonly string[];
  readonly site: string;
  readonly robots: number;
  readonly voters: number;
  readonly witnesses?: number;
  readonly allowNoFailover?: boolean;
  readonly runtime: 'apiserver' | 'k3s';
  readonly seed: number;
  readonly subnet?: string;
  readonly wait: boolean;
  readonly report?: string;
  readonly keep: boolean;
  readonly output: OutputFormat;
}

function needLab(site: string): LabState {
  const s = readLabState(site);
  if (!s)
    throw new UsageError('NO_LAB', `lab "${site}" is not up`, {
      hint: `start it: edgectl lab up --site ${site}`,
    });
  return s;
}

/** renderObservation is `lab status` as a table. */
export function renderObservation(o: LabObservation): string {
  const rows = o.robots.map((r) => {
    const s = r.status;
    const power = !r.powered ? 'off' : r.paused ? 'paused' : !r.wifi ? 'no wifi' : s ? 'up' : 'no answer';
    const cp = s?.controlPlane.server
      ? `server e${s.controlPlane.server.epoch} ${s.controlPlane.server.state}`
      : s?.controlPlane.worker
        ? `worker of ${s.controlPlane.worker.leader} ${s.controlPlane.worker.state}`
        : '-';
    const node = o.nodes?.find((n) => n.name === r.name);
    return [
      r.name,
      r.address,
      power,
      s ? `${s.role}${s.witness ? ' (witness)' : ''}` : '-',
      s?.term ?? '-',
      s?.leader ?? '-',
      s?.lifecycle ?? '-',
      cp,
      o.nodes === null ? '?' : node ? (node.ready ? 'Ready' : 'NotReady') : 'absent',
    ];
  });
  const noQuorum = o.robots.find((r) => r.status?.quorum && !r.status.quorum.ok)?.status?.quorum;
  const head = o.leader
    ? `leader ${o.leader}, term ${o.term}; ${converged(o) ? 'every robot Ready' : 'not every robot Ready'}`
    : noQuorum
      ? `no leader: no quorum (${noQuorum.reachable} of ${noQuorum.voters} voters reachable${noQuorum.noQuorumSince ? ` since ${noQuorum.noQuorumSince.slice(11, 19)}` : ''})`
      : 'no leader';
  return `${head}\n${table(['ROBOT', 'ADDRESS', 'POWER', 'ROLE', 'TERM', 'LEADER', 'LIFECYCLE', 'CONTROL PLANE', 'NODE'], rows)}`;
}

async function waitConverged(state: LabState, ms: number): Promise<LabObservation> {
  const end = Date.now() + ms;
  let o = await observeLab(state);
  while (!converged(o) && Date.now() < end) {
    await new Promise((r) => setTimeout(r, 250));
    o = await observeLab(state);
  }
  return o;
}

export async function runLab(c: LabCommand, io: Io): Promise<void> {
  const json = c.output === 'json';
  switch (c.action) {
    case 'up': {
      if (c.words.length)
        throw new UsageError('BAD_ARGUMENTS', 'lab up takes no positional arguments', {
          hint: 'name the robots with --robots N (and --voters, --site), e.g. edgectl lab up --robots 3',
        });
      const started = Date.now();
      const state = await labUp({
        site: c.site,
        robots: c.robots,
        voters: c.voters,
        witnesses: c.witnesses ?? 0,
        allowNoFailover: c.allowNoFailover ?? false,
        runtime: c.runtime,
        seed: c.seed,
        subnet: c.subnet,
      });
      if (!json) {
        const { quorumAdvice } = await import('../bootstrap/inventory.ts');
        const advice = quorumAdvice(c.voters, c.witnesses ?? 0);
        io.err(
          `lab ${c.site}: ${c.robots} robots${c.witnesses ? ` and ${c.witnesses} witness(es)` : ''} up in ${state.dir}; quorum: ${advice.summary}${advice.warnings.map((w) => `\n  warning: ${w}`).join('')}\nwaiting for the site to form`,
        );
      }
      const o = c.wait ? await waitConverged(state, 90_000) : await observeLab(state);
      const formedMs = converged(o) ? Date.now() - started : null;
      if (json) io.out(JSON.stringify({ lab: state, formedMs, observation: o }));
      else io.out(`${renderObservation(o)}\n${formedMs !== null ? `formed in ${seconds(formedMs)}` : ''}`);
      return;
    }
    case 'down': {
      const state = readLabState(c.site);
      const r = labDown(c.site);
      const left = leftovers(c.site, state?.prefix);
      if (json) io.out(JSON.stringify({ ...r, leftovers: left }));
      else
        io.out(
          `removed ${r.removed.netns.length} namespaces and ${r.removed.links.length} links of lab ${c.site}; left behind: ${
            left.netns.length + left.links.length + left.nftTables.length + left.processes.length === 0
              ? 'nothing'
              : JSON.stringify(left)
          }`,
        );
      return;
    }
    case 'status': {
      const o = await observeLab(needLab(c.site));
      io.out(json ? JSON.stringify(o) : renderObservation(o));
      return;
    }
    case 'fault': {
      const state = needLab(c.site);
      if (c.words.length === 0)
        throw new UsageError('BAD_FAULT', 'name a fault', {
          hint: 'e.g. edgectl lab fault power-off leader',
        });
      const { parseLabFault } = await import('../../lab/scenario.ts');
      const actions = parseLabFault(c.words.join(' '));
      const done: unknown[] = [];
      for (const a of actions) {
        if (a.kind === 'wifi-on') {
          wifiOn(state, a.node);
          done.push({ fault: `wifi-on:${a.node}`, robots: [a.node] });
        } else done.push(await applyLabFault(state, a.fault));
      }
      io.out(json ? JSON.stringify({ applied: done }) : `applied: ${JSON.stringify(done)}`);
      return;
    }
    case 'run': {
      const file = c.words[0];
      if (!file || c.words.length > 1)
        throw new UsageError('BAD_ARGUMENTS', 'lab run takes one scenario file', {
          hint: 'e.g. edgectl lab run lab/scenarios/leader-power-loss.yaml',
        });
      const text = readTextFile(file, { missingHint: 'lab/scenarios/ has the built-in scenarios' });
      const { parseScenario } = await import('../../lab/scenario.ts');
      const sc = parseScenario(text, file);
      // Before the lab comes up: a report that cannot be written would waste the whole run.
      if (c.report !== undefined) makeOutDir('--report', c.report);
      // The scenario parser and runner (and what they load) only when needed: `lab status` starts fast.
      const { assertPassed, runScenario } = await import('../../lab/runner.ts');
      const report = await runScenario(sc, {
        site: c.site === 'lab' ? undefined : c.site,
        subnet: c.subnet,
        seed: c.seed,
        reportDir: c.report,
        keep: c.keep,
        progress: json ? undefined : (l) => io.err(`[lab run] ${l}`),
        milestone: json
          ? undefined
          : (label, o) => io.err(`\n[lab run] ${label}:\n${renderObservation(o)}\n`),
      });
      if (json) io.out(JSON.stringify(report));
      else {
        const d = report.analysis.durations;
        io.out(
          [
            `${report.scenario}: ${report.passed ? 'PASSED' : 'FAILED'} (formed in ${seconds(report.formedMs)}, kube-apiserver cold start ${seconds(report.apiServerColdStartMs)})`,
            d.length
              ? table(
                  ['FAULT', 'DETECTION', 'NEW LEADER', 'API SERVER READY', 'ALL READY'],
                  d.map((x) => [
                    x.fault,
                    seconds(x.detectionMs),
                    seconds(x.electionMs),
                    seconds(x.controlPlaneReadyMs),
                    seconds(x.allReadyMs),
                  ]),
                )
              : '',
            table(
              ['EXPECTATION', 'AFTER', 'MEASURED', 'RESULT'],
              report.analysis.expectations.map((e) => [
                e.expectation.kind,
                e.expectation.after,
                seconds(e.measuredMs),
                e.ok ? 'ok' : 'FAILED',
              ]),
            ),
            `invariants: ${report.analysis.violations.length === 0 ? 'all held' : report.analysis.violations.map((v) => v.message).join('; ')}`,
            c.report ? `report: ${c.report}/report.md, ${c.report}/timeline.svg` : '',
          ]
            .filter(Boolean)
            .join('\n'),
        );
      }
      assertPassed(report);
      return;
    }
  }
}
