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
  if (!res.ok) throw new EdgeError('AGENT_STATUS', `${url} answered HTTP ${res.status}`);
  return (await res.json()) as AgentStatus;
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
          `${s.role}${s.voter ? '' : ' (learner)'}`,
          s.term,
          s.leader ?? '-',
          s.lifecycle,
          `${cp.runtime}: ${server}, ${worker}`,
        ],
      ],
    ),
    '',
    s.members.length
      ? table(
          ['member', 'state', 'voter', 'last heard', 'rtt', 'addresses'],
          s.members.map((m) => [
            m.id,
            m.state,
            m.voter ? 'yes' : 'no',
            m.lastHeardAgoMs === null || m.lastHeardAgoMs < 0
              ? 'never'
              : `${(m.lastHeardAgoMs / 1000).toFixed(1)}s ago`,
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
  const s = await fetchStatus(o.addr);
  io.out(o.output === 'json' ? JSON.stringify(s, null, 2) : renderStatus(s));
  return s;
}
