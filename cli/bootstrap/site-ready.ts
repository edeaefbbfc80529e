/**
 * After bootstrap: wait until the site has elected a leader and every robot is Ready, then write a
 * kubeconfig for the site. The robots are asked over the same SSH connections as the bootstrap
 * (their status endpoints listen on loopback); the judgement and the kubeconfig editing are pure,
 * and the kubeconfig is edited as YAML, never by string replacement.
 */
import { parse, stringify } from 'yaml';
import type { AgentStatus } from '../../agent/agent.ts';
import { EdgeError } from '../../agent/errors.ts';
import type { CommandRunner } from '../../agent/exec/runner.ts';
import { installPath, renderAgentConfig, type Inventory } from './inventory.ts';
import { PATHS } from './plan.ts';

/** What each robot's agent said, or why it could not be asked. */
export type RobotReport = { readonly status: AgentStatus } | { readonly error: string };

export interface SiteReadiness {
  readonly ready: boolean;
  readonly leader: string | null;
  readonly term: number;
  /** What is still missing, for people. */
  readonly waitingFor: readonly string[];
}

/** siteReadiness: one leader serving, every robot Ready on its server for its term. Pure. */
export function siteReadiness(
  robots: readonly string[],
  reports: Readonly<Record<string, RobotReport>>,
): SiteReadiness {
  const statuses = robots.flatMap((r) => {
    const x = reports[r];
    return x && 'status' in x ? [x.status] : [];
  });
  const leaders = statuses.filter((s) => s.role === 'leader').sort((a, b) => b.term - a.term);
  const lead = leaders[0] ?? null;
  const waitingFor: string[] = [];
  if (!lead) waitingFor.push('no robot leads yet');
  else if (lead.lifecycle !== 'leading.serving')
    waitingFor.push(`${lead.node} leads term ${lead.term}; its server is ${lead.lifecycle}`);
  for (const r of robots) {
    const x = reports[r];
    if (!x || 'error' in x) {
      waitingFor.push(`${r}: ${x && 'error' in x ? x.error : 'no answer'}`);
      continue;
    }
    const s = x.status;
    if (
      lead &&
      s.node !== lead.node &&
      !(s.leader === lead.node && s.term === lead.term && s.lifecycle === 'following.ready')
    )
      waitingFor.push(`${r}: ${s.role} in term ${s.term}, ${s.lifecycle}`);
  }
  return { ready: waitingFor.length === 0, leader: lead?.node ?? null, term: lead?.term ?? 0, waitingFor };
}

// Asks the agent's status endpoint with the Node runtime bootstrap installed: no curl needed.
const STATUS_SCRIPT =
  "fetch('http://'+process.argv[1]+'/status',{signal:AbortSignal.timeout(3000)}).then(r=>r.text()).then(t=>process.stdout.write(t),e=>{process.stderr.write(String(e));process.exit(1)})";

/** askRobot reads one robot's /status over its CommandRunner. */
export async function askRobot(inv: Inventory, robot: string, runner: CommandRunner): Promise<RobotReport> {
  const listen = renderAgentConfig(inv, robot).status?.listen ?? '127.0.0.1:7947';
  try {
    const r = await runner.run([installPath(inv, robot, PATHS.node), '-e', STATUS_SCRIPT, listen], {
      timeoutMs: 10_000,
    });
    if (r.code !== 0) return { error: `status: ${r.stderr.trim().split('\n').at(-1) ?? `exit ${r.code}`}` };
    return { status: JSON.parse(r.stdout) as AgentStatus };
  } catch (e) {
    return { error: (e as Error).message };
  }
}

/** waitForSite polls every robot until the site is ready, or throws with what it still waits for. */
export async function waitForSite(o: {
  inventory: Inventory;
  runners: ReadonlyMap<string, CommandRunner>;
  timeoutMs: number;
  pollMs?: number;
  onProgress?: (r: SiteReadiness) => void;
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
}): Promise<SiteReadiness> {
  const now = o.now ?? (() => performance.now());
  const sleep = o.sleep ?? ((ms: number) => new Promise((r) => setTimeout(r, ms)));
  const robots = o.inventory.robots.map((r) => r.name);
  const end = now() + o.timeoutMs;
  let last = '';
  for (;;) {
    const reports = Object.fromEntries(
      await Promise.all(
        robots.map(async (r) => [r, await askRobot(o.inventory, r, o.runners.get(r)!)] as const),
      ),
    );
    const s = siteReadiness(robots, reports);
    const line = s.waitingFor.join('; ');
    if (line !== last) o.onProgress?.(s);
    last = line;
    if (s.ready) return s;
    if (now() > end)
      throw new EdgeError(
        'SITE_NOT_READY',
        `the site did not form in ${Math.round(o.timeoutMs / 1000)} s: ${line}`,
        {
          hint: 'look at the agents: edgectl status on a robot, or journalctl -u edgectl-agent; then run edgectl site ready -f <inventory>',
        },
      );
    await sleep(o.pollMs ?? 1000);
  }
}

/** Where the leader's runtime keeps its admin kubeconfig. */
export function adminKubeconfigPath(inv: Inventory, robot: string): string {
  return inv.controlPlane.runtime === 'lab'
    ? installPath(inv, robot, `${PATHS.stateDir}/lab-cp/admin.kubeconfig`)
    : '/etc/rancher/k3s/k3s.yaml';
}

type Named<T> = { name: string } & T;
interface KubeconfigDoc {
  apiVersion?: string;
  kind?: string;
  clusters?: Named<{ cluster: Record<string, unknown> }>[];
  users?: Named<{ user: Record<string, unknown> }>[];
  contexts?: Named<{ context: { cluster: string; user: string; namespace?: string } }>[];
  'current-context'?: string;
  [k: string]: unknown;
}

/**
 * siteKubeconfig turns the leader's admin kubeconfig into the site's: one cluster, user and context
 * named edgectl-<site>, the server at the leader's site address. Pure.
 */
export function siteKubeconfig(
  adminYaml: string,
  o: { site: string; server: string; namespace: string },
): string {
  const doc = parse(adminYaml) as KubeconfigDoc;
  const cluster = doc.clusters?.[0]?.cluster;
  const user = doc.users?.[0]?.user;
  if (!cluster || !user)
    throw new EdgeError('KUBECONFIG_UNREADABLE', "the leader's admin kubeconfig has no cluster or user", {
      hint: 'look at the file on the leader; the control plane may still be starting',
    });
  const name = `edgectl-${o.site}`;
  const out: KubeconfigDoc = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name, cluster: { ...cluster, server: o.server } }],
    users: [{ name, user }],
    contexts: [{ name, context: { cluster: name, user: name, namespace: o.namespace } }],
    'current-context': name,
  };
  return stringify(out);
}

/**
 * mergeKubeconfig puts the site's entries into an existing kubeconfig (~/.kube/config), replacing
 * entries of the same names and keeping everything else, including the current context. Pure.
 */
export function mergeKubeconfig(existingYaml: string | null, siteYaml: string): string {
  const base = ((existingYaml && parse(existingYaml)) || {
    apiVersion: 'v1',
    kind: 'Config',
  }) as KubeconfigDoc;
  const site = parse(siteYaml) as KubeconfigDoc;
  const merge = <T extends { name: string }>(a: T[] | undefined, b: T[] | undefined): T[] => {
    const names = new Set((b ?? []).map((x) => x.name));
    return [...(a ?? []).filter((x) => !names.has(x.name)), ...(b ?? [])];
  };
  const out: KubeconfigDoc = {
    ...base,
    clusters: merge(base.clusters, site.clusters),
    users: merge(base.users, site.users),
    contexts: merge(base.contexts, site.contexts),
  };
  if (!out['current-context']) out['current-context'] = site['current-context'];
  return stringify(out);
}
