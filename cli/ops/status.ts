/** `edgectl status`: read an agent's /status endpoint and show it. */
import type { AgentStatus } from '../../agent/agent.ts';
import { EdgeError, UsageError } from '../../agent/errors.ts';
import type { CommandRunner } from '../../agent/exec/runner.ts';
import type { RobotReport } from '../bootstrap/site-ready.ts';
import type { BootstrapDeps } from './bootstrap.ts';
import { table, type Io, type OutputFormat } from '../output.ts';

export async function fetchStatus(addr: string, timeoutMs = 3000): Promise<AgentStatus> {
  const url = `http://${addr}/status`;
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  } catch (e) {
    throw new EdgeError('AGENT_UNREACHABLE', `no agent answers at ${url}`, {
      hint: 'is edgectl-agent running (systemctl status edgectl-agent)? Is status.listen in its config this address? Pass --addr host:port',
      cause: e,
    });
  }
  if (!res.ok)
    throw new EdgeError('AGENT_STATUS', `${url} answered HTTP ${res.status}`, {
      hint: "an agent answers /status with 200: is --addr the agent's status.listen (default 127.0.0.1:7947)?",
    });
  const notAgent = (why: string) =>
    new EdgeError('NOT_AN_AGENT', `${url} is not an edgectl agent: ${why}`, {
      hint: "pass --addr the agent's status.listen (host:port in /etc/edgectl/agent.yaml; default 127.0.0.1:7947)",
    });
  let body: unknown;
  try {
    body = JSON.parse(await res.text());
  } catch {
    throw notAgent('its answer is not JSON');
  }
  const missing = missingStatusFields(body);
  if (missing.length) throw notAgent(`its answer lacks ${missing.join(', ')}`);
  return body as AgentStatus;
}

/** The fields `edgectl status` shows, by the type each must have. */
const STATUS_FIELDS: Readonly<Record<string, (v: unknown) => boolean>> = {
  node: (v) => typeof v === 'string',
  site: (v) => typeof v === 'string',
  role: (v) => typeof v === 'string',
  term: (v) => typeof v === 'number',
  lifecycle: (v) => typeof v === 'string',
  controlPlane: (v) => typeof v === 'object' && v !== null,
  members: Array.isArray,
  lastErrors: Array.isArray,
  transport: (v) => typeof v === 'object' && v !== null,
};

function missingStatusFields(body: unknown): string[] {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return ['an object'];
  return Object.entries(STATUS_FIELDS)
    .filter(([k, ok]) => !ok((body as Record<string, unknown>)[k]))
    .map(([k]) => k);
}

export function renderStatus(s: AgentStatus): string {
  const cp = s.controlPlane;
  const server = cp.server ? `server epoch ${cp.server.epoch} ${cp.server.state}` : 'no server';
  const worker = cp.worker
    ? `worker of ${cp.worker.leader} (epoch ${cp.worker.epoch}) ${cp.worker.state}`
    : 'no worker';
  const lines = [
    table(
      ['node', 'site', 'role', 'term', 'leader', 'lifecycle', 'control plane'],
      [
        [
          s.node,
          s.site,
          `${s.role}${s.witness ? ' (witness)' : s.voter ? '' : ' (learner)'}`,
          s.term,
          s.leader ?? '-',
          s.lifecycle,
          `${cp.runtime}: ${server}, ${worker}`,
        ],
      ],
    ),
    // An agent of an earlier version (a rolling upgrade) does not report its quorum.
    ...(!s.quorum || s.quorum.ok
      ? []
      : [
          '',
          `no quorum: ${s.quorum.reachable} of ${s.quorum.voters} voters reachable${s.quorum.noQuorumSince ? ` since ${s.quorum.noQuorumSince.slice(11, 19)}` : ''}; no leader can be elected until a majority is back`,
        ]),
    '',
    s.members.length
      ? table(
          ['member', 'state', 'voter', 'last heard', 'rtt', 'addresses'],
          s.members.map((m) => [
            m.id,
            m.state,
            m.witness ? 'witness' : m.voter ? 'yes' : 'no',
            m.lastHeardAgoMs === null || m.lastHeardAgoMs < 0
              ? 'never'
              : `${(m.lastHeardAgoMs / 1000).toFixed(1)}s ago`,
            m.rttMs === null ? '-' : `${m.rttMs} ms`,
            m.addresses.join(',') || '-',
          ]),
        )
      : 'no members seen yet',
  ];
  const drops = Object.entries(s.transport.dropped ?? {}).filter(([, n]) => n > 0);
  lines.push(
    '',
    `datagrams: ${s.transport.sent} sent, ${s.transport.received} received, dropped: ${drops.length ? drops.map(([r, n]) => `${r} ${n}`).join(', ') : 'none'}`,
  );
  const discovery = Object.entries(s.discovery ?? {}).filter(([, n]) => n > 0);
  if (discovery.length) lines.push(`discovery: ${discovery.map(([k, n]) => `${k} ${n}`).join(', ')}`);
  if (s.members.some((m) => m.state === 'not-heard'))
    lines.push(
      'not heard: this robot does not hear those members directly; the leader’s status has their state',
    );
  if (s.lastErrors.length)
    lines.push(
      '',
      'last errors:',
      ...s.lastErrors.map((e) => `  +${(e.atMs / 1000).toFixed(1)}s ${e.message}`),
    );
  return lines.join('\n');
}

export async function runStatus(o: { addr: string; output: OutputFormat }, io: Io): Promise<AgentStatus> {
  const s = await fetchStatus(parseStatusAddr(o.addr));
  io.out(o.output === 'json' ? JSON.stringify(s, null, 2) : renderStatus(s));
  return s;
}

/**
 * parseStatusAddr checks `--addr` before anything is asked: host:port with a port in 1..65535
 * (`[v6]:port` for IPv6), so a typo is a usage error that names the flag, not a failed connection.
 */
export function parseStatusAddr(addr: string): string {
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?):(\d{1,5})$/.exec(addr.trim());
  const port = m ? Number(m[2]) : NaN;
  if (!m || port < 1 || port > 65535)
    throw new UsageError('BAD_ADDR', `--addr ${JSON.stringify(addr)} is not host:port`, {
      hint: 'write the agent status address as host:port, e.g. 127.0.0.1:7947 (status.listen in agent.yaml)',
      path: '--addr',
    });
  return `${m[1]}:${port}`;
}

/** What `edgectl status -f site.yaml` prints as JSON: every robot's /status, or why it gave none. */
export interface SiteStatusReport {
  readonly site: string;
  readonly robots: readonly ({ readonly robot: string } & RobotReport)[];
}

/** renderSiteStatus: one line per robot, then who leads and who did not answer. Pure. */
export function renderSiteStatus(r: SiteStatusReport): string {
  const rows = r.robots.map((x) => {
    if ('error' in x) return [x.robot, 'NO ANSWER', '-', '-', '-', '-', x.error];
    const s = x.status;
    const cp = s.controlPlane;
    const alive = s.members.filter((m) => m.state === 'alive').length;
    return [
      x.robot,
      `${s.role}${s.voter ? '' : ' (learner)'}`,
      s.term,
      s.leader ?? '-',
      s.lifecycle,
      `${alive}/${s.members.length} alive`,
      cp.server
        ? `server epoch ${cp.server.epoch} ${cp.server.state}`
        : cp.worker
          ? `worker ${cp.worker.state}`
          : '-',
    ];
  });
  const answered = r.robots.flatMap((x) => ('status' in x ? [x.status] : []));
  const leaders = [
    ...new Set(answered.filter((s) => s.role === 'leader').map((s) => `${s.node} (term ${s.term})`)),
  ];
  const ready = answered.filter(
    (s) => s.lifecycle === 'leading.serving' || s.lifecycle === 'following.ready',
  );
  return [
    table(['robot', 'role', 'term', 'leader', 'lifecycle', 'members', 'control plane'], rows),
    '',
    `site ${r.site}: ${leaders.length ? `leader ${leaders.join(', ')}` : 'no leader'}; ${ready.length}/${r.robots.length} robots ready`,
  ].join('\n');
}

/**
 * runSiteStatus asks every robot of an inventory for its /status over SSH (host keys verified
 * against the site's known_hosts; the status endpoints listen on loopback), all at once. A robot
 * that cannot be asked is in the report, and makes the command fail after printing it.
 */
export async function runSiteStatus(
  o: { file: string; siteDir?: string | undefined; output: OutputFormat },
  io: Io,
  deps: BootstrapDeps = {},
): Promise<SiteStatusReport> {
  const [{ loadInventory }, { siteDirFor }, { askRobot }, { sshConnect }] = await Promise.all([
    import('../bootstrap/inventory-files.ts'),
    import('../bootstrap/site-dir.ts'),
    import('../bootstrap/site-ready.ts'),
    import('./bootstrap.ts'),
  ]);
  const env = deps.env ?? process.env;
  const loaded = loadInventory(o.file, env);
  const inv = loaded.inventory;
  const ctx = {
    siteDir: siteDirFor(inv.site.id, o.file, o.siteDir),
    acceptNewHostKeys: false,
    sudoPassword: undefined,
  };
  const connect = deps.connect ?? ((r, l, c) => sshConnect(r, l, c, env));
  const robots = await Promise.all(
    inv.robots.map(async (r): Promise<{ robot: string } & RobotReport> => {
      let runner: CommandRunner | undefined;
      try {
        runner = await connect(r, loaded, ctx);
        return { robot: r.name, ...(await askRobot(inv, r.name, runner)) };
      } catch (e) {
        return { robot: r.name, error: e instanceof Error ? e.message : String(e) };
      } finally {
        await runner?.close().catch(() => {});
      }
    }),
  );
  const report: SiteStatusReport = { site: inv.site.id, robots };
  io.out(o.output === 'json' ? JSON.stringify(report, null, 2) : renderSiteStatus(report));
  const silent = robots.filter((r) => 'error' in r).map((r) => r.robot);
  if (silent.length)
    throw new EdgeError('SITE_STATUS_INCOMPLETE', `no status from ${silent.join(', ')}`, {
      hint: 'is the robot on and reachable over SSH, and edgectl-agent running on it (systemctl status edgectl-agent)?',
    });
  return report;
}
