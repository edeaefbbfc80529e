/**
 * The agent's Prometheus metrics (served at /metrics). One Registry per agent, so tests and
 * several agents in one process never collide.
 *
 * An idle leader handles datagrams from every peer on every heartbeat, so the per-datagram path
 * stays off prom-client: countMessage is an array increment, and the series that follow the agent's state
 * (messages, term, drops, members) are filled in from `observe`'s source when /metrics is scraped
 * (prom-client's `collect`). The footprint is measured in docs/benchmarks/agent.md.
 */
import type * as prom from 'prom-client';
// prom-client's classes come from their own files: its index also loads the Pushgateway (http,
// https, tls, zlib) and the cluster aggregator, about 4 MB of RSS a robot never uses. The types
// are the index's.
// @ts-expect-error: prom-client declares its types on its index only; they are applied below.
import CounterModule from 'prom-client/lib/counter.js';
// @ts-expect-error: as above.
import GaugeModule from 'prom-client/lib/gauge.js';
// @ts-expect-error: as above.
import HistogramModule from 'prom-client/lib/histogram.js';
// @ts-expect-error: as above.
import RegistryModule from 'prom-client/lib/registry.js';
// The process metrics of prom-client's collectDefaultMetrics, less three:
// - its GC histogram, a PerformanceObserver that runs on every garbage collection, which with the
//   unit's 1 MB young generation is several times a second on an idle robot;
// - its event-loop lag, which samples the loop with its own timer and loads perf_hooks: the
//   agent's timers measure their own lateness instead (edgectl_timer_lateness_seconds), which is
//   what timerSlackMs bounds;
// - its heap spaces, which load node:v8; the heap totals stay.
// Exemplars stay off: the agent's build leaves out the OpenTelemetry API they read (agent/build.ts).
// docs/benchmarks/agent.md has what each cost.
// @ts-expect-error: as above.
import processCpuTotal from 'prom-client/lib/metrics/processCpuTotal.js';
// @ts-expect-error: as above.
import processStartTime from 'prom-client/lib/metrics/processStartTime.js';
// @ts-expect-error: as above.
import osMemoryHeap from 'prom-client/lib/metrics/osMemoryHeap.js';
// @ts-expect-error: as above.
import processOpenFileDescriptors from 'prom-client/lib/metrics/processOpenFileDescriptors.js';
// @ts-expect-error: as above.
import processMaxFileDescriptors from 'prom-client/lib/metrics/processMaxFileDescriptors.js';
// @ts-expect-error: as above.
import heapSizeAndUsed from 'prom-client/lib/metrics/heapSizeAndUsed.js';
// @ts-expect-error: as above.
import version from 'prom-client/lib/metrics/version.js';
import type { Role } from '../statecharts/election.ts';
import type { MemberState } from '../statecharts/membership.ts';
import { MESSAGE_TYPES, type MessageType } from '../statecharts/messages.ts';
import type { DropReason } from './transport/codec.ts';

const Counter = CounterModule as typeof prom.Counter;
const Gauge = GaugeModule as typeof prom.Gauge;
const Histogram = HistogramModule as typeof prom.Histogram;
const Registry = RegistryModule as typeof prom.Registry;
type ProcessMetric = (
  registry: prom.Registry,
  config: prom.DefaultMetricsCollectorConfiguration<'text/plain; version=0.0.4; charset=utf-8'>,
) => void;
const PROCESS_METRICS = [
  processCpuTotal,
  processStartTime,
  osMemoryHeap,
  processOpenFileDescriptors,
  processMaxFileDescriptors,
  heapSizeAndUsed,
  version,
] as ProcessMetric[];

export const ROLES: readonly Role[] = ['follower', 'preCandidate', 'candidate', 'leader'];

/** MetricsSource: the agent state read at scrape time. */
export interface MetricsSource {
  term(): number;
  /** Datagrams the transport dropped so far, by reason. */
  drops(): Readonly<Record<DropReason, number>>;
  /** Peers by membership state now, as /status reports them. */
  members(): Readonly<Record<MemberState | 'not-heard', number>>;
  /** Discovery's counters by name (received, malformed, badTxt, …). */
  discovery(): Readonly<Record<string, number>>;
  /** Snapshot pushes this robot's receiver handled so far, by result. */
  snapshotPushes?(): Readonly<Record<string, number>>;
}

const DIRECTIONS = ['in', 'out'] as const;

/**
 * ScrapeTimeHistogram: an unlabelled histogram whose observe is a bucket increment and two
 * additions, exported in prom-client's histogram form when /metrics is scraped. prom-client's own
 * observe hashes labels and looks up its bucket map on every call, which on a path taken on every
 * heartbeat cost more than the measurement is worth. Buckets are upper bounds, inclusive, as
 * Prometheus defines `le`.
 */
export class ScrapeTimeHistogram {
  readonly type = 'histogram' as const;
  readonly aggregator = 'sum' as const;
  readonly #bounds: readonly number[];
  /** Observations per bucket, not cumulative; the last slot is above every bound (+Inf only). */
  readonly #counts: Float64Array;
  #sum = 0;
  #count = 0;

  readonly name: string;
  readonly help: string;

  constructor(name: string, help: string, bounds: readonly number[], registry: prom.Registry) {
    this.name = name;
    this.help = help;
    this.#bounds = [...bounds].sort((a, b) => a - b);
    this.#counts = new Float64Array(this.#bounds.length + 1);
    registry.registerMetric(this as unknown as prom.Metric);
  }

  observe(value: number): void {
    const b = this.#bounds;
    let i = 0;
    while (i < b.length && value > b[i]!) i++;
    this.#counts[i]!++;
    this.#sum += value;
    this.#count++;
  }

  /** What prom-client's registry formats: cumulative buckets, +Inf, sum and count. */
  get(): Promise<{
    name: string;
    help: string;
    type: 'histogram';
    values: prom.MetricValueWithName<string>[];
    aggregator: 'sum';
  }> {
    const bucket = `${this.name}_bucket`;
    const values: prom.MetricValueWithName<string>[] = [];
    let cumulative = 0;
    this.#bounds.forEach((le, i) => {
      cumulative += this.#counts[i]!;
      values.push({ metricName: bucket, labels: { le }, value: cumulative });
    });
    values.push(
      { metricName: bucket, labels: { le: '+Inf' }, value: this.#count },
      { metricName: `${this.name}_sum`, labels: {}, value: this.#sum },
      { metricName: `${this.name}_count`, labels: {}, value: this.#count },
    );
    return Promise.resolve({
      name: this.name,
      help: this.help,
      type: this.type,
      values,
      aggregator: this.aggregator,
    });
  }

  reset(): void {
    this.#counts.fill(0);
    this.#sum = 0;
    this.#count = 0;
  }
}

const TYPE_INDEX = new Map(MESSAGE_TYPES.map((t, i) => [t, i]));

export class AgentMetrics {
  readonly registry = new Registry();
  #source: MetricsSource | undefined;
  /** Messages so far by direction (in, out) and type (MESSAGE_TYPES order). */
  readonly #messageCounts = DIRECTIONS.map(() => MESSAGE_TYPES.map(() => 0));

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
    collect: () => {
      if (this.#source) this.term.set(this.#source.term());
    },
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
    collect: () => {
      this.messages.reset();
      DIRECTIONS.forEach((direction, d) =>
        MESSAGE_TYPES.forEach((type, t) => {
          const n = this.#messageCounts[d]![t]!;
          if (n > 0) this.messages.inc({ direction, type }, n);
        }),
      );
    },
  });
  // A counter (the transport's totals only grow), filled from them at scrape time.
  readonly drops = new Counter({
    name: 'edgectl_datagram_drops_total',
    help: 'Datagrams dropped by the transport, by reason (forged, replayed, malformed, …)',
    labelNames: ['reason'] as const,
    registers: [this.registry],
    collect: () => {
      if (!this.#source) return;
      this.drops.reset();
      for (const [reason, n] of Object.entries(this.#source.drops())) this.drops.inc({ reason }, n);
    },
  });
  readonly snapshotPushes = new Counter({
    name: 'edgectl_snapshot_pushes_total',
    help: 'Snapshot pushes this robot received, by result (kept, unauthenticated, not-leader, busy, …)',
    labelNames: ['result'] as const,
    registers: [this.registry],
    collect: () => {
      const counts = this.#source?.snapshotPushes?.();
      if (!counts) return;
      this.snapshotPushes.reset();
      for (const [result, n] of Object.entries(counts)) if (n > 0) this.snapshotPushes.inc({ result }, n);
    },
  });
  readonly failover = new Histogram({
    name: 'edgectl_failover_seconds',
    help: 'Time from losing the leader to knowing the next one, as this robot saw it',
    buckets: [0.5, 1, 1.5, 2, 2.5, 3, 4, 5, 7.5, 10, 20, 60],
    registers: [this.registry],
  });
  /**
   * How late the agent's timers fire (heartbeat, election, lifecycle): event-loop lag as the
   * election sees it. The fence delay assumes at most timerSlackMs (docs/protocol.md §5). Observed
   * on every timer an idle leader fires, so it is a ScrapeTimeHistogram, not prom-client's.
   */
  readonly timerLateness = new ScrapeTimeHistogram(
    'edgectl_timer_lateness_seconds',
    'How late the agent timers fired; the fence delay assumes at most timerSlackMs',
    [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
    this.registry,
  );
  readonly members = new Gauge({
    name: 'edgectl_members',
    help: 'Peers by membership state',
    labelNames: ['state'] as const,
    registers: [this.registry],
    collect: () => {
      if (this.#source)
        for (const [state, n] of Object.entries(this.#source.members())) this.members.set({ state }, n);
    },
  });
  // A counter like drops: discovery's own totals, by name, filled in at scrape time.
  readonly discovery = new Counter({
    name: 'edgectl_discovery_events_total',
    help: 'Discovery counters by name: datagrams received, dropped as malformed, bad TXT, other sites, …',
    labelNames: ['event'] as const,
    registers: [this.registry],
    collect: () => {
      if (!this.#source) return;
      this.discovery.reset();
      for (const [event, n] of Object.entries(this.#source.discovery())) this.discovery.inc({ event }, n);
    },
  });
  readonly commitIndex = new Gauge({
    name: 'edgectl_site_log_commit_index',
    help: 'Committed site log index',
    registers: [this.registry],
  });

  constructor(defaults = true) {
    if (defaults)
      for (const register of PROCESS_METRICS)
        register(this.registry, { register: this.registry, prefix: 'edgectl_process_' });
  }

  /** observe sets where the scrape-time series (term, drops, members) are read. */
  observe(source: MetricsSource): void {
    this.#source = source;
  }

  setRole(role: Role): void {
    for (const r of ROLES) this.role.set({ role: r }, r === role ? 1 : 0);
  }

  /** countMessage runs per datagram: an array increment, reported at the next scrape. */
  countMessage(direction: 'in' | 'out', type: MessageType): void {
    const t = TYPE_INDEX.get(type);
    if (t !== undefined) this.#messageCounts[direction === 'in' ? 0 : 1]![t]!++;
  }
}
