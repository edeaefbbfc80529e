/**
 * Where the dashboard's samples come from. One narrow interface, `SiteSource`, with the lab's
 * implementation here (agents' /status over the lab bridge, the leader's API server, the lab's
 * fault log) and a fixed-sample twin for tests (`FixedSource`).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AgentStatus } from '../../agent/agent.ts';
import { UsageError } from '../../agent/errors.ts';
import type { CommandRunner } from '../../agent/exec/runner.ts';
import { loadApiServerIdentity } from '../../lab/kube-apiserver/apiserver.ts';
import { applyLabFault, observeLab, readLabState, wifiOn, type LabState } from '../../lab/lab.ts';
import { KubeHttp } from '../../lab/runtime/kube-http.ts';
import { LAB_API_PORT } from '../../lab/runtime/lab-control-plane.ts';
import { parseLabFault } from '../../lab/scenario.ts';
import type { Inventory, Robot } from '../bootstrap/inventory.ts';
import { askRobot } from '../bootstrap/site-ready.ts';
import type { FaultRecord, PodSample, SiteSample } from './view.ts';

export interface SiteSource {
  readonly site: string;
  /** Whether `fault` can act on this site (a lab, and the dashboard was started with --faults). */
  readonly canFault: boolean;
  sample(): Promise<SiteSample>;
  /** Apply one lab fault, in `edgectl lab fault` words. */
  fault(words: string): Promise<unknown>;
  /** Let go of what sampling holds open (SSH connections). */
  close?(): Promise<void>;
}

/**
 * The faults the page offers. Each is a form of `edgectl lab fault`; the server refuses anything
 * else, so a page (or a forged request) cannot reach the lab's other verbs.
 */
export const PAGE_FAULTS: readonly RegExp[] = [
  /^power-(off|on) [a-z0-9-]+$/,
  /^wifi-(off|on) [a-z0-9-]+$/,
  /^loss (all|[a-z0-9-]+) (100|[1-9]?[0-9])$/,
  /^partition [a-z0-9,-]+\/[a-z0-9,/-]+$/,
  /^heal$/,
];

/** checkPageFault refuses a fault from the page unless faults are on and it is one the page offers. */
export function checkPageFault(canFault: boolean, words: string): void {
  if (!canFault)
    throw new UsageError('DASHBOARD_READ_ONLY', 'this dashboard was started read-only', {
      hint: 'start it with --faults to drive lab faults from the page',
    });
  if (!PAGE_FAULTS.some((re) => re.test(words)))
    throw new UsageError('DASHBOARD_FAULT', `"${words}" is not a fault the page may apply`, {
      hint: 'the page offers power-off/on, wifi-off/on, loss, partition and heal',
    });
}

/** readFaultLog reads the lab's fault records from its event log, oldest first. */
export function readFaultLog(state: LabState): FaultRecord[] {
  const file = join(state.dir, 'events.ndjson');
  if (!existsSync(file)) return [];
  const out: FaultRecord[] = [];
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    try {
      const e = JSON.parse(line) as { t?: unknown; kind?: unknown; fault?: unknown; robots?: unknown };
      if (e.kind === 'fault' && typeof e.t === 'number' && typeof e.fault === 'string')
        out.push({
          t: e.t,
          fault: e.fault,
          robots: Array.isArray(e.robots) ? e.robots.filter((r) => typeof r === 'string') : [],
        });
    } catch {
      // A line cut short by a crash mid-append: the rest of the log still counts.
    }
  }
  return out;
}

interface PodItem {
  metadata: { name: string; annotations?: Record<string, string> };
  spec?: { nodeName?: string };
  status?: { phase?: string };
}

/** siteAddress reads the first secondary network's address from Multus's network-status annotation. */
export function siteAddress(annotations: Record<string, string> | undefined): string | null {
  const raw = annotations?.['k8s.v1.cni.cncf.io/network-status'];
  if (!raw) return null;
  try {
    const nets = JSON.parse(raw) as { default?: boolean; ips?: string[] }[];
    const ip = nets.find((n) => !n.default && n.ips?.length)?.ips?.[0];
    return ip ?? null;
  } catch {
    return null;
  }
}

/** LabSource samples a lab site on this machine, re-reading its state file each time. */
export class LabSource implements SiteSource {
  readonly site: string;
  readonly canFault: boolean;

  constructor(site: string, opts: { faults: boolean }) {
    if (!readLabState(site))
      throw new UsageError('NO_LAB', `lab "${site}" is not up`, {
        hint: `start it: sudo edgectl lab up --site ${site}`,
      });
    this.site = site;
    this.canFault = opts.faults;
  }

  private state(): LabState {
    const s = readLabState(this.site);
    if (!s)
      throw new UsageError('NO_LAB', `lab "${this.site}" is gone`, {
        hint: `start it again: sudo edgectl lab up --site ${this.site}`,
      });
    return s;
  }

  async sample(): Promise<SiteSample> {
    const state = this.state();
    const o = await observeLab(state, 700);
    let pods: PodSample[] | null = null;
    const lead = o.robots.find((r) => r.name === o.leader);
    if (lead && o.nodes !== null) pods = await this.pods(state, lead.address).catch(() => null);
    return { ...o, site: state.site, kind: 'lab', faults: readFaultLog(state), pods };
  }

  private async pods(state: LabState, address: string): Promise<PodSample[]> {
    const identity = loadApiServerIdentity(join(state.dir, 'identity'));
    const api = new KubeHttp({
      server: `https://${address}:${LAB_API_PORT}`,
      caPem: readFileSync(identity.caCert, 'utf8'),
      token: identity.adminToken,
      timeoutMs: 700,
    });
    const list = (await api.ok('GET', `/api/v1/namespaces/site-${state.site}/pods`)) as { items: PodItem[] };
    return list.items.map((p) => ({
      name: p.metadata.name,
      node: p.spec?.nodeName ?? null,
      phase: p.status?.phase ?? 'Unknown',
      siteAddress: siteAddress(p.metadata.annotations),
    }));
  }

  async fault(words: string): Promise<unknown> {
    checkPageFault(this.canFault, words);
    const state = this.state();
    const done: unknown[] = [];
    for (const a of parseLabFault(words)) {
      if (a.kind === 'wifi-on') {
        wifiOn(state, a.node);
        done.push({ fault: `wifi-on:${a.node}`, robots: [a.node] });
      } else done.push(await applyLabFault(state, a.fault));
    }
    return done;
  }
}

/** FixedSource plays back samples (the last one repeats): the in-memory twin for tests. */
export class FixedSource implements SiteSource {
  readonly site: string;
  readonly canFault: boolean;
  readonly applied: string[] = [];
  private readonly samples: SiteSample[];
  private i = 0;

  constructor(samples: readonly SiteSample[], opts: { faults: boolean }) {
    if (samples.length === 0) throw new Error('FixedSource needs at least one sample');
    this.samples = [...samples];
    this.site = samples[0]!.site;
    this.canFault = opts.faults;
  }

  push(s: SiteSample): void {
    this.samples.push(s);
  }

  async sample(): Promise<SiteSample> {
    const s = this.samples[Math.min(this.i, this.samples.length - 1)]!;
    this.i++;
    return s;
  }

  async fault(words: string): Promise<unknown> {
    checkPageFault(this.canFault, words);
    this.applied.push(words);
    return [{ fault: words }];
  }
}

/** How a SiteFileSource reaches a robot: the bootstrap's SSH connection (verified host keys). */
export type RobotConnect = (robot: Robot) => Promise<CommandRunner>;

/**
 * SiteFileSource samples a bootstrapped site from its inventory, the way `edgectl status -f` does:
 * over SSH (the robots' status endpoints listen on loopback), one connection per robot kept open
 * and made again when it breaks. Power and Wi-Fi are unknown on real robots: a robot that does not
 * answer shows as not answering. It offers no faults.
 */
export class SiteFileSource implements SiteSource {
  readonly site: string;
  readonly canFault = false;
  private readonly inv: Inventory;
  private readonly connect: RobotConnect;
  private readonly runners = new Map<string, CommandRunner>();

  constructor(inv: Inventory, connect: RobotConnect) {
    this.inv = inv;
    this.site = inv.site.id;
    this.connect = connect;
  }

  private async ask(robot: Robot): Promise<AgentStatus | null> {
    try {
      let runner = this.runners.get(robot.name);
      if (!runner) {
        runner = await this.connect(robot);
        this.runners.set(robot.name, runner);
      }
      const r = await askRobot(this.inv, robot.name, runner);
      if ('status' in r) return r.status;
    } catch {
      // Out of reach (Wi-Fi, power): shown as not answering; the next sample connects again.
    }
    const stale = this.runners.get(robot.name);
    this.runners.delete(robot.name);
    await stale?.close().catch(() => {});
    return null;
  }

  async sample(): Promise<SiteSample> {
    const t = Date.now();
    const robots = await Promise.all(
      this.inv.robots.map(async (r) => ({
        name: r.name,
        address: r.address,
        powered: true,
        paused: false,
        wifi: true,
        status: await this.ask(r),
      })),
    );
    const leaders = robots
      .filter((r) => r.status?.role === 'leader')
      .sort((a, b) => b.status!.term - a.status!.term);
    return {
      t,
      site: this.site,
      kind: 'site',
      robots,
      leader: leaders[0]?.name ?? null,
      term: Math.max(0, ...robots.map((r) => r.status?.term ?? 0)),
      // Node readiness and pods need the site's kubeconfig: not read here.
      nodes: null,
      faults: [],
      pods: null,
    };
  }

  async fault(): Promise<unknown> {
    checkPageFault(false, '');
    return [];
  }

  async close(): Promise<void> {
    for (const r of this.runners.values()) await r.close().catch(() => {});
    this.runners.clear();
  }
}
