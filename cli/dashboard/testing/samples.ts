/** Site samples for the dashboard's tests: a site described in a few words, as an observation. */
import type { AgentStatus } from '../../../agent/agent.ts';
import type { FaultRecord, PodSample, SiteSample } from '../view.ts';

export interface RobotSpec {
  readonly name: string;
  /** 'off' robots are powered off; others answer with this role. */
  readonly role: 'leader' | 'follower' | 'off' | 'preCandidate';
  readonly term?: number;
  readonly ready?: boolean;
}

/** sample builds a lab sample in which `leader` leads and the others follow it. */
export function sample(
  t: number,
  robots: readonly RobotSpec[],
  opts: { faults?: readonly FaultRecord[]; pods?: readonly PodSample[] | null; site?: string } = {},
): SiteSample {
  const lead = robots.find((r) => r.role === 'leader') ?? null;
  const term = lead?.term ?? Math.max(1, ...robots.map((r) => r.term ?? 1));
  const status = (r: RobotSpec): AgentStatus =>
    ({
      node: r.name,
      site: opts.site ?? 'lab',
      role: r.role,
      voter: true,
      witness: false,
      quorum: { voters: robots.length, reachable: robots.length, ok: lead !== null, noQuorumSince: null },
      term: r.term ?? term,
      leader: lead?.name ?? null,
      commitIndex: 1,
      lifecycle: r.role === 'leader' ? 'leading.serving' : 'following',
      controlPlane: {
        runtime: 'lab',
        server: r.role === 'leader' ? { epoch: term, state: 'serving' } : null,
        worker: r.role === 'leader' || !lead ? null : { leader: lead.name, epoch: term, state: 'ready' },
        siteAppliedEpoch: null,
      },
      members:
        r.role === 'leader'
          ? robots
              .filter((o) => o.name !== r.name)
              .map((o) => ({
                id: o.name,
                state: o.role === 'off' ? 'dead' : 'alive',
                lastHeardAgoMs: o.role === 'off' ? 12_000 : 150,
                rttMs: o.role === 'off' ? null : 2,
                voter: true,
                addresses: [],
              }))
          : [],
      lastErrors: [],
      transport: { sent: 0, received: 0, dropped: {} },
      uptimeMs: t,
    }) as unknown as AgentStatus;
  return {
    t,
    site: opts.site ?? 'lab',
    kind: 'lab',
    robots: robots.map((r, i) => ({
      name: r.name,
      address: `10.77.1.${i + 1}`,
      powered: r.role !== 'off',
      paused: false,
      wifi: true,
      status: r.role === 'off' ? null : status(r),
    })),
    leader: lead?.name ?? null,
    term,
    nodes: lead
      ? robots.map((r) => ({ name: r.name, ready: r.role !== 'off' && r.ready !== false, leaseAgeMs: 100 }))
      : null,
    faults: opts.faults ?? [],
    pods: opts.pods === undefined ? (lead ? [] : null) : opts.pods,
  };
}
