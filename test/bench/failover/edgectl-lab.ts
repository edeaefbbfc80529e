/**
 * The edgectl side of the failover benchmark: the real lab (lab/lab.ts) with 5 robots, all voters,
 * and the agents on the **fleet** timing profile (heartbeat 100 ms, election timeout 1800–2100 ms),
 * the profile robots run. `lab up` writes the lab profile into every agent.yaml, so `up` powers the
 * fresh site off, switches each config to fleet, clears the robots' state and powers them on again.
 * Each new leader starts a real kube-apiserver + etcd; survivors' lab kubelets join it.
 */
import { readFileSync, writeFileSync, rmSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseDocument } from 'yaml';
import {
  allReady,
  converged,
  parseAgentLog,
  stepDurations,
  type LogEvent,
  type StepDurations,
} from '../../../lab/analysis.ts';
import {
  applyLabFault,
  labDown,
  labUp,
  leftovers,
  observeLab,
  wifiOn,
  type LabState,
} from '../../../lab/lab.ts';
import { fetchStatus } from '../../../cli/ops/status.ts';
import { fleetTiming } from '../../../statecharts/timing.ts';
import type { NetFaults } from './net.ts';
import type { FailoverSystem, MemberView, Poll, RoleEvent, Settled } from './system.ts';

export interface EdgectlLabOptions {
  readonly site: string;
  readonly prefix: string;
  readonly subnet: string;
}

/** EdgectlLab is the lab site as a FailoverSystem; see the module comment. */
export class EdgectlLab implements FailoverSystem, NetFaults {
  readonly id = 'edgectl' as const;
  readonly name: string;
  readonly members: readonly string[];
  readonly heartbeatMs = fleetTiming.heartbeatMs;
  readonly electionTimeoutMs = fleetTiming.electionTimeoutMinMs;
  readonly electionTimeoutMaxMs = fleetTiming.electionTimeoutMaxMs;
  readonly description: string;
  readonly state: LabState;
  private readonly o: EdgectlLabOptions;

  private constructor(o: EdgectlLabOptions, state: LabState) {
    this.o = o;
    this.state = state;
    this.name = state.bridge;
    this.members = state.robots.map((r) => r.name);
    this.description = `edgectl agents, ${this.members.length} voters, fleet profile (heartbeat ${fleetTiming.heartbeatMs} ms, election timeout ${fleetTiming.electionTimeoutMinMs}–${fleetTiming.electionTimeoutMaxMs} ms, lease ${fleetTiming.leaderLeaseMs} ms), lab control plane (kube-apiserver + etcd per epoch)`;
  }

  /** up builds the lab (refusing nothing: a stale lab of this site is taken down first). */
  static async up(o: EdgectlLabOptions): Promise<EdgectlLab> {
    labDown(o.site, { prefix: o.prefix });
    const state = await labUp({
      site: o.site,
      robots: 5,
      voters: 5,
      runtime: 'apiserver',
      node: 'lite',
      seed: 1,
      prefix: o.prefix,
      subnet: o.subnet,
      sshd: false,
    });
    const lab = new EdgectlLab(o, state);
    await lab.useFleetProfile();
    return lab;
  }

  /**
   * useFleetProfile powers every robot off, sets `profile: fleet` in its agent.yaml, empties its
   * state directory and log, and powers it on: a brand-new site on the fleet profile.
   */
  private async useFleetProfile(): Promise<void> {
    await applyLabFault(this.state, { kind: 'kill', node: 'all' });
    for (const r of this.state.robots) {
      const dir = join(this.state.dir, 'robots', r.name);
      const file = join(dir, 'agent.yaml');
      const doc = parseDocument(readFileSync(file, 'utf8'));
      doc.set('profile', 'fleet');
      writeFileSync(file, String(doc));
      rmSync(join(dir, 'state'), { recursive: true, force: true });
      mkdirSync(join(dir, 'state'), { recursive: true, mode: 0o700 });
      writeFileSync(join(dir, 'agent.log'), '');
    }
    await applyLabFault(this.state, { kind: 'restart', node: 'all' });
  }

  private robot(m: string): LabState['robots'][number] {
    const r = this.state.robots.find((x) => x.name === m);
    if (!r) throw new Error(`the lab has no robot ${m}`);
    return r;
  }

  async poll(): Promise<Poll> {
    const present = this.state.robots.filter((r) => r.powered && !r.paused && r.wifi);
    const answers = await Promise.all(
      present.map(
        async (r) => [r.name, await fetchStatus(`${r.address}:7947`, 250).catch(() => null)] as const,
      ),
    );
    const views: MemberView[] = answers.flatMap(([member, s]) =>
      s ? [{ member, leader: s.role === 'leader', term: s.term }] : [],
    );
    return { t: Date.now(), views };
  }

  async settled(away: readonly string[], minTerm: number): Promise<Settled | null> {
    const o = await observeLab(this.state);
    const ok = away.length
      ? allReady(o, new Set(away), minTerm)
      : converged(o) && o.robots.every((r) => r.status !== null);
    const term = o.robots.find((r) => r.name === o.leader)?.status?.term ?? 0;
    return ok && o.leader && term >= minTerm ? { leader: o.leader, term } : null;
  }

  async powerOff(m: string): Promise<void> {
    await applyLabFault(this.state, { kind: 'kill', node: this.robot(m).name });
  }

  async powerOn(m: string): Promise<void> {
    await applyLabFault(this.state, { kind: 'restart', node: this.robot(m).name });
  }

  /** powerOffAll and powerOnAll take the whole site off the machine and bring it back. */
  async powerOffAll(): Promise<void> {
    await applyLabFault(this.state, { kind: 'kill', node: 'all' });
  }

  async powerOnAll(): Promise<void> {
    await applyLabFault(this.state, { kind: 'restart', node: 'all' });
  }

  async wifiOff(m: string): Promise<void> {
    await applyLabFault(this.state, { kind: 'isolate', node: this.robot(m).name });
  }

  async wifiOn(m: string): Promise<void> {
    wifiOn(this.state, this.robot(m).name);
  }

  /** logs parses every agent's log (lab/analysis.ts). */
  logs(): Record<string, LogEvent[]> {
    return Object.fromEntries(
      this.members.map((m) => [
        m,
        parseAgentLog(m, readFileSync(join(this.state.dir, 'robots', m, 'agent.log'), 'utf8')),
      ]),
    );
  }

  events(): RoleEvent[] {
    return Object.values(this.logs()).flatMap((evs) =>
      evs.flatMap((e) =>
        e.kind === 'role'
          ? [{ t: e.t, member: e.node, term: e.term, role: e.role as RoleEvent['role'] }]
          : [],
      ),
    );
  }

  /**
   * durations measures one leader loss from the agents' logs (lab/analysis.ts stepDurations):
   * detection, new leader, the new API server ready, and every survivor Ready on it.
   */
  durations(t: number, victim: string, termBefore: number, logs = this.logs()): StepDurations {
    return stepDurations(
      {
        robots: this.members,
        voters: this.members,
        t0: t,
        tEnd: Date.now(),
        faults: [],
        observations: [],
        logs,
        final: null,
      },
      {
        t,
        stepId: 'fault',
        text: `leader loss of ${victim}`,
        applied: [`kill:${victim}`],
        robots: [victim],
        leaderBefore: victim,
        termBefore,
      },
    );
  }

  // NetFaults: the lab's own loss and bursts on its bridge.
  async setLoss(rate: number): Promise<void> {
    await applyLabFault(this.state, { kind: 'drop', from: 'all', to: 'all', rate });
  }

  async burst(ms: number): Promise<void> {
    await applyLabFault(this.state, { kind: 'burst', durationMs: ms });
  }

  async heal(): Promise<void> {
    await applyLabFault(this.state, { kind: 'heal' });
  }

  /** down takes the lab down and returns what is left of it (empty when clean). */
  down(): ReturnType<typeof leftovers> {
    labDown(this.o.site, { prefix: this.o.prefix });
    return leftovers(this.o.site, this.o.prefix);
  }

  /** downStale takes down a lab of this site left by an earlier, crashed run. */
  static downStale(o: EdgectlLabOptions): void {
    labDown(o.site, { prefix: o.prefix });
  }
}
