/**
 * The agent's Prometheus metrics (served at /metrics). One Registry per agent, so tests and
 * several agents in one process never collide.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Role } from '../statecharts/election.ts';
import type { MemberState } from '../statecharts/membership.ts';
import type { MessageType } from '../statecharts/messages.ts';
import { DROP_REASONS, type DropReason } from './transport/codec.ts';

export const ROLES: readonly Role[] = ['follower', 'preCandidate', 'candidate', 'leader'];

export class AgentMetrics {
  readonly registry = new Registry();
  readonly elections = new Counter({
    name: 'edgectl_elections_total',
    help: 'Campaigns this robot started (result="started") and won (result="won")',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly term = new Gauge({
    name: 'edgectl_term',
    help: 'Current election term',
    registers: [this.registry],
  });
  readonly role = new Gauge({
    name: 'edgectl_role',
    help: '1 for the role this robot holds',
    labelNames: ['role'] as const,
    registers: [this.registry],
  });
  readonly messages = new Counter({
    name: 'edgectl_messages_total',
    help: 'Election messages by direction and type',
    labelNames: ['direction', 'type'] as const,
    registers: [this.registry],
  });
  readonly drops = new Gauge({
    name: 'edgectl_datagram_drops_total',
    help: 'Datagrams dropped by the transport, by reason (forged, replayed, malformed, …)',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly failover = new Histogram({
    name: 'edgectl_failover_seconds',
    help: 'Time from losing the leader to knowing the next one, as this robot saw it',
    buckets: [0.5, 1, 1.5, 2, 2.5, 3, 4, 5, 7.5, 10, 20, 60],
    registers: [this.registry],
  });
  readonly members = new Gauge({
    name: 'edgectl_members',
    help: 'Peers by membership state',
    labelNames: ['state'] as const,
    registers: [this.registry],
  });
  readonly commitIndex = new Gauge({
    name: 'edgectl_site_log_commit_index',
    help: 'Committed site log index',
    registers: [this.registry],
  });

  constructor(defaults = true) {
    // The event-loop delay monitor samples every 10 ms by default: 100 wake-ups a second on an idle robot.
    // Half a second is plenty to see a stalled loop and costs two.
    if (defaults)
      collectDefaultMetrics({
        register: this.registry,
        prefix: 'edgectl_process_',
        eventLoopMonitoringPrecision: 500,
      });
    for (const r of DROP_REASONS) this.drops.set({ reason: r }, 0);
  }

  setRole(role: Role): void {
    for (const r of ROLES) this.role.set({ role: r }, r === role ? 1 : 0);
  }

  countMessage(direction: 'in' | 'out', type: MessageType): void {
    this.messages.inc({ direction, type });
  }

  setDrops(dropped: Record<DropReason, number>): void {
    for (const [reason, n] of Object.entries(dropped)) this.drops.set({ reason }, n);
  }

  setMembers(counts: Record<MemberState, number>): void {
    for (const [state, n] of Object.entries(counts)) this.members.set({ state }, n);
  }
}
