/** `edgectl status`: read an agent's /status endpoint and show it. */
import type { AgentStatus } from '../../agent/agent.ts';
import { EdgeError } from '../../agent/errors.ts';
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
    ...(s.quorum.ok
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
            m.lastHeardAgoMs < 0 ? 'never' : `${(m.lastHeardAgoMs / 1000).toFixed(1)}s ago`,
            m.rttMs === null ? '-' : `${m.rttMs} ms`,
            m.addresses.join(',') || '-',
          ]),
        )
      : 'no members seen yet',
  ];
  const drops = Object.entries(s.transport.dropped).filter(([, n]) => n > 0);
  lines.push(
    '',
    `datagrams: ${s.transport.sent} sent, ${s.transport.received} received, dropped: ${drops.length ? drops.map(([r, n]) => `${r} ${n}`).join(', ') : 'none'}`,
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
  const s = await fetchStatus(o.addr);
  io.out(o.output === 'json' ? JSON.stringify(s, null, 2) : renderStatus(s));
  return s;
}
