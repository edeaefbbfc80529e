/**
 * What a lab run shows, computed from what it recorded: every agent's structured log, the fault
 * events and the runner's observations (/status of every robot and the Nodes on the leader's API
 * server, every 200 ms). Pure: the runner collects, this judges. Invariants are checked over the
 * whole run; any breach comes back with its evidence. Durations come from log times (ms precision),
 * expectations from observations.
 */
import { lostWrites, type AckedWrite } from './rpo.ts';
import type { LabObservation } from './lab.ts';
import {
  duplicateAddresses,
  workloadReady,
  type WorkloadObservation,
  type WorkloadSpec,
} from './workload.ts';
import type { Expectation } from './scenario.ts';

export interface LogEvent {
  readonly t: number;
  readonly node: string;
  readonly term: number;
  readonly kind: 'start' | 'role' | 'serving' | 'stopped' | 'ready';
  readonly role?: string;
  readonly epoch?: number;
  readonly leader?: string;
}

/** parseAgentLog turns an agent's pino NDJSON into the events the analysis needs. */
export function parseAgentLog(node: string, text: string): LogEvent[] {
  const out: LogEvent[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    let j: Record<string, unknown>;
    try {
      j = JSON.parse(line) as Record<string, unknown>;
    } catch {
      continue; // a torn last line after a power-off
    }
    const t = Date.parse(String(j['time']));
    const msg = String(j['msg'] ?? '');
    const term = Number(j['term'] ?? 0);
    let m: RegExpExecArray | null;
    if (msg === 'agent starting') out.push({ t, node, term, kind: 'start' });
    else if ((m = / became (\w+) at term (\d+)$/.exec(msg)))
      out.push({ t, node, term: Number(m[2]), kind: 'role', role: m[1]! });
    else if ((m = / serves epoch (\d+) /.exec(msg)))
      out.push({ t, node, term, kind: 'serving', epoch: Number(m[1]) });
    else if ((m = / stop(?:s|ped) its server of epoch (\d+)$/.exec(msg))) {
      // The front door closed when the lease ran out, which may be before the robot could log
      // (it was frozen): the server stopped serving then.
      const closed = typeof j['fenceClosedAt'] === 'string' ? Date.parse(j['fenceClosedAt']) : NaN;
      out.push({
        t: Number.isFinite(closed) ? Math.min(t, closed) : t,
        node,
        term,
        kind: 'stopped',
        epoch: Number(m[1]),
      });
    } else if ((m = / is Ready on (\S+)'s server$/.exec(msg)))
      out.push({ t, node, term, kind: 'ready', epoch: Number(j['epoch']), leader: m[1]! });
  }
  return out;
}

export interface FaultEvent {
  readonly t: number;
  readonly stepId: string;
  readonly text: string;
  /** The vocabulary faults actually applied, targets resolved. */
  readonly applied: readonly string[];
  readonly robots: readonly string[];
  /** Who led when the fault fired, and in which term. */
  readonly leaderBefore: string | null;
  readonly termBefore: number;
  /** Why the fault could not be applied (in full); set, it fails the run and every expectation after it. */
  error?: string;
}

export interface Violation {
  readonly invariant:
    'one-leader-per-term' | 'overlapping-serving-epochs' | 'committed-entries-lost' | 'not-converged';
  readonly message: string;
  readonly evidence: Readonly<Record<string, unknown>>;
}

export interface StepDurations {
  readonly stepId: string;
  readonly fault: string;
  /** Fault to the first survivor starting an election. */
  readonly detectionMs: number | null;
  /** Fault to a new leader (a survivor becoming leader in a higher term). */
  readonly electionMs: number | null;
  /** Fault to the new leader's API server serving. */
  readonly controlPlaneReadyMs: number | null;
  /** Fault to every survivor Ready on the new server. */
  readonly allReadyMs: number | null;
  readonly newLeader: string | null;
  readonly newTerm: number | null;
}

export interface ExpectationResult {
  readonly expectation: Expectation;
  readonly ok: boolean;
  readonly measuredMs: number | null;
  readonly detail: string;
}

export interface RunRecord {
  readonly robots: readonly string[];
  readonly voters: readonly string[];
  /** Witnesses: they vote but serve nothing and join nothing, so readiness does not wait for them. */
  readonly witnesses?: readonly string[];
  /** Start of the fault schedule (wall clock ms). */
  readonly t0: number;
  readonly tEnd: number;
  readonly faults: readonly FaultEvent[];
  readonly observations: readonly LabObservation[];
  readonly logs: Readonly<Record<string, readonly LogEvent[]>>;
  /** The final observation after everything was healed and powered on. */
  readonly final: LabObservation | null;
  /** The demo workload the run applied (real nodes), for the workload expectations. */
  readonly workload?: WorkloadSpec | null;
  /**
   * The writer's acknowledged writes and which of them the final leader's server holds (null: it
   * could not be asked); absent when no expectation needs the writer.
   */
  readonly writes?: { readonly acked: readonly AckedWrite[]; readonly present: readonly string[] | null };
}

export interface Analysis {
  readonly violations: readonly Violation[];
  readonly durations: readonly StepDurations[];
  readonly expectations: readonly ExpectationResult[];
  readonly leaderChanges: number;
}

/** Robots that count: powered, not frozen, on the Wi-Fi. */
const present = (o: LabObservation) => o.robots.filter((r) => r.powered && !r.paused && r.wifi);

/**
 * allReady: one leader serving, and every present robot Ready on its server for its term. After a
 * fault, `exclude` names the robots it took away and `minTerm` the term the new leader must beat.
 */
export function allReady(o: LabObservation, exclude: ReadonlySet<string> = new Set(), minTerm = 0): boolean {
  if (!o.leader || !o.nodes || exclude.has(o.leader)) return false;
  const lead = o.robots.find((r) => r.name === o.leader)!.status!;
  if (lead.term < minTerm) return false;
  return present(o)
    .filter((r) => !exclude.has(r.name) && !r.witness)
    .every((r) => {
      const s = r.status;
      if (!s) return false;
      const node = o.nodes!.find((n) => n.name === r.name);
      if (!node?.ready) return false;
      if (r.name === o.leader) return s.lifecycle === 'leading.serving';
      return s.leader === o.leader && s.term === lead.term && s.controlPlane.worker?.state === 'ready';
    });
}

/** converged: all ready, and every present robot agrees on the leader. */
export function converged(o: LabObservation): boolean {
  return allReady(o) && present(o).every((r) => r.status?.leader === o.leader);
}

function checkLeaders(logs: RunRecord['logs']): Violation[] {
  const byTerm = new Map<number, Set<string>>();
  for (const evs of Object.values(logs))
    for (const e of evs)
      if (e.kind === 'role' && e.role === 'leader') {
        const s = byTerm.get(e.term) ?? new Set<string>();
        s.add(e.node);
        byTerm.set(e.term, s);
      }
  return [...byTerm]
    .filter(([, s]) => s.size > 1)
    .map(([term, s]) => ({
      invariant: 'one-leader-per-term' as const,
      message: `term ${term} had ${s.size} leaders: ${[...s].join(', ')}`,
      evidence: { term, leaders: [...s] },
    }));
}

type Interval = readonly [number, number];

/** Times a robot could not be reached by a majority of the site: off, frozen, off Wi-Fi, minority. */
export function unreachableIntervals(rec: RunRecord, robot: string): Interval[] {
  const out: Interval[] = [];
  const n = rec.robots.length;
  let since: number | null = null;
  let down = { off: false, paused: false, wifi: false, minority: false };
  const isDown = () => down.off || down.paused || down.wifi || down.minority;
  for (const f of rec.faults) {
    const was = isDown();
    for (const a of f.applied) {
      const [kind, arg = ''] = a.split(/:(.*)/s) as [string, string?];
      const hits = arg.split(/[,/]/).includes(robot);
      if (kind === 'kill' && hits) down = { ...down, off: true };
      else if (kind === 'restart' && hits) down = { ...down, off: false };
      else if (kind === 'pause' && hits) down = { ...down, paused: true };
      else if (kind === 'resume' && hits) down = { ...down, paused: false };
      else if (kind === 'isolate' && hits) down = { ...down, wifi: true };
      else if (kind === 'wifi-on' && hits) down = { ...down, wifi: false };
      else if (kind === 'partition') {
        const group = arg.split('/').find((g) => g.split(',').includes(robot));
        down = { ...down, minority: !group || group.split(',').length <= n / 2 };
      } else if (kind === 'heal') down = { ...down, wifi: false, minority: false };
    }
    const now = isDown();
    if (!was && now) since = f.t;
    if (was && !now && since !== null) {
      out.push([since, f.t]);
      since = null;
    }
  }
  if (since !== null) out.push([since, Infinity]);
  return out;
}

function subtract(iv: Interval, holes: readonly Interval[]): Interval[] {
  let parts: Interval[] = [iv];
  for (const [hs, he] of holes)
    parts = parts.flatMap(([s, e]): Interval[] => {
      if (he <= s || hs >= e) return [[s, e]];
      const r: Interval[] = [];
      if (hs > s) r.push([s, hs]);
      if (he < e) r.push([he, e]);
      return r;
    });
  return parts;
}

/** Serving intervals per robot and epoch, from the logs; a power-off or restart ends one. */
export function servingIntervals(
  rec: RunRecord,
): { node: string; epoch: number; from: number; to: number }[] {
  const out: { node: string; epoch: number; from: number; to: number }[] = [];
  for (const [node, evs] of Object.entries(rec.logs)) {
    const kills = rec.faults
      .filter((f) => f.applied.some((a) => a.startsWith('kill:') && a.slice(5).split(',').includes(node)))
      .map((f) => f.t);
    let open: { epoch: number; from: number } | null = null;
    for (const e of evs) {
      if (e.kind === 'serving') open = { epoch: e.epoch!, from: e.t };
      else if (open && ((e.kind === 'stopped' && e.epoch! >= open.epoch) || e.kind === 'start')) {
        const killedAt = kills.find((k) => k >= open!.from && k <= e.t);
        out.push({ node, epoch: open.epoch, from: open.from, to: killedAt ?? e.t });
        open = null;
      } else if (!open && e.kind === 'stopped') {
        // A later line about the same stop may date it earlier (the front door's lease expiry).
        const last = out.at(-1);
        if (last && last.node === node && last.epoch === e.epoch && e.t < last.to)
          out[out.length - 1] = { ...last, to: Math.max(last.from, e.t) };
      }
    }
    if (open) {
      const killedAt = kills.find((k) => k >= open!.from);
      out.push({ node, epoch: open.epoch, from: open.from, to: killedAt ?? rec.tEnd });
    }
  }
  return out;
}

function checkServing(rec: RunRecord): Violation[] {
  const reach = (iv: { node: string; from: number; to: number }) =>
    subtract([iv.from, iv.to], unreachableIntervals(rec, iv.node));
  const ivs = servingIntervals(rec);
  const out: Violation[] = [];
  for (let i = 0; i < ivs.length; i++)
    for (let j = i + 1; j < ivs.length; j++) {
      const a = ivs[i]!;
      const b = ivs[j]!;
      if (a.node === b.node || a.epoch === b.epoch) continue;
      for (const [as, ae] of reach(a))
        for (const [bs, be] of reach(b)) {
          const s = Math.max(as, bs);
          const e = Math.min(ae, be);
          if (e > s)
            out.push({
              invariant: 'overlapping-serving-epochs',
              message: `${a.node} (epoch ${a.epoch}) and ${b.node} (epoch ${b.epoch}) both served, reachable by a majority, for ${Math.round(e - s)} ms`,
              evidence: { a, b, overlapFrom: new Date(s).toISOString(), overlapMs: Math.round(e - s) },
            });
        }
    }
  return out;
}

function checkCommits(rec: RunRecord): Violation[] {
  let max = 0;
  let where = '';
  for (const o of rec.observations)
    for (const r of o.robots)
      if (r.status && r.status.commitIndex > max) {
        max = r.status.commitIndex;
        where = `${r.name} at term ${r.status.term}`;
      }
  const f = rec.final;
  const lead = f?.robots.find((r) => r.name === f.leader)?.status;
  if (!f || !lead) return [];
  return lead.commitIndex < max
    ? [
        {
          invariant: 'committed-entries-lost',
          message: `the final leader ${f.leader} has commit index ${lead.commitIndex}, below ${max} seen on ${where}`,
          evidence: { finalCommitIndex: lead.commitIndex, maxSeen: max, where },
        },
      ]
    : [];
}

function firstAfter<T extends { t: number }>(xs: readonly T[], t: number, pred: (x: T) => boolean): T | null {
  let best: T | null = null;
  for (const x of xs) if (x.t >= t && pred(x) && (!best || x.t < best.t)) best = x;
  return best;
}

/** stepDurations measures re-formation after a fault that took the leader away. */
export function stepDurations(rec: RunRecord, f: FaultEvent): StepDurations {
  const all = Object.values(rec.logs).flat();
  // The victims are the robots this fault hit and those an earlier fault still holds down (powered
  // off, frozen, off the Wi-Fi) when it fires: neither kind is a survivor that should be Ready.
  const downBefore = rec.robots.filter((r) =>
    unreachableIntervals(rec, r).some(([from, to]) => from < f.t && to > f.t),
  );
  const victims = new Set([...f.robots, ...downBefore]);
  const survivors = all.filter((e) => !victims.has(e.node));
  const detect = firstAfter(
    survivors,
    f.t,
    (e) =>
      e.kind === 'role' && (e.role === 'preCandidate' || e.role === 'candidate' || e.term > f.termBefore),
  );
  const elected = firstAfter(
    survivors,
    f.t,
    (e) => e.kind === 'role' && e.role === 'leader' && e.term > f.termBefore,
  );
  const serving = elected
    ? firstAfter(
        survivors,
        f.t,
        (e) => e.kind === 'serving' && e.node === elected.node && e.epoch! >= elected.term,
      )
    : null;
  let allReadyMs: number | null = null;
  if (elected && serving) {
    const others = rec.robots.filter(
      (r) => !victims.has(r) && r !== elected.node && !rec.witnesses?.includes(r),
    );
    const readyTimes = others.map(
      (r) =>
        firstAfter(
          rec.logs[r] ?? [],
          f.t,
          (e) => e.kind === 'ready' && e.leader === elected.node && e.epoch! >= elected.term,
        )?.t ?? null,
    );
    if (readyTimes.every((x) => x !== null))
      allReadyMs = Math.max(serving.t, ...(readyTimes as number[])) - f.t;
  }
  return {
    stepId: f.stepId,
    fault: f.text,
    detectionMs: detect ? detect.t - f.t : null,
    electionMs: elected ? elected.t - f.t : null,
    controlPlaneReadyMs: serving ? serving.t - f.t : null,
    allReadyMs,
    newLeader: elected?.node ?? null,
    newTerm: elected?.term ?? null,
  };
}

function evaluate(rec: RunRecord, e: Expectation): ExpectationResult {
  const f = rec.faults.find((x) => x.stepId === e.after);
  const t = f?.t ?? rec.t0;
  const obs = rec.observations.filter((o) => o.t >= t);
  const within = e.withinMs ?? Infinity;
  const res = (ok: boolean, measuredMs: number | null, detail: string): ExpectationResult => ({
    expectation: e,
    ok,
    measuredMs: measuredMs === null ? null : Math.round(measuredMs),
    detail,
  });
  const firstObs = (p: (o: LabObservation) => boolean) => obs.find(p) ?? null;
  // An expectation is about what its fault did: without the fault, nothing can be judged ok.
  if (!f && e.after !== 'start') return res(false, null, `fault ${e.after} never fired`);
  if (f?.error !== undefined) return res(false, null, `fault ${f.stepId} did not apply: ${f.error}`);
  switch (e.kind) {
    case 'new-leader': {
      const d = f ? stepDurations(rec, f) : null;
      const ms = d?.electionMs ?? null;
      return res(
        ms !== null && ms <= within,
        ms,
        ms === null ? 'no new leader was elected' : `${d!.newLeader} leads term ${d!.newTerm}`,
      );
    }
    case 'all-ready': {
      // Robots the fault took away do not count; if it took the leader, readiness is on a new term.
      const gone = new Set(f?.robots ?? []);
      const tookLeader = f?.leaderBefore != null && gone.has(f.leaderBefore);
      const o = firstObs((x) => allReady(x, gone, tookLeader ? f.termBefore + 1 : 0));
      const ms = o ? o.t - t : null;
      return res(
        ms !== null && ms <= within,
        ms,
        o ? `all present robots Ready on ${o.leader}'s server` : 'never all Ready',
      );
    }
    case 'converged': {
      const o = firstObs(converged);
      const ms = o ? o.t - t : null;
      return res(
        ms !== null && ms <= within,
        ms,
        o ? `one leader (${o.leader}), every robot Ready` : 'never converged',
      );
    }
    case 'demoted': {
      const victims = f?.robots ?? [];
      if (victims.length === 0)
        return res(false, null, 'the fault took no robot away, so none can be demoted');
      const o = firstObs((x) =>
        victims.every((v) => {
          const s = x.robots.find((r) => r.name === v)?.status;
          return s !== undefined && s !== null && s.role !== 'leader' && s.controlPlane.server === null;
        }),
      );
      const ms = o ? o.t - t : null;
      return res(
        ms !== null && ms <= within,
        ms,
        o ? `${victims.join(', ')} no longer lead or serve` : `${victims.join(', ')} still lead or serve`,
      );
    }
    case 'workload-ready':
    case 'no-duplicate-ip':
    case 'addresses-freed':
    case 'no-restart':
      return evaluateWorkload(rec, e, f ?? null, t, obs, res);
    case 'no-lost-writes': {
      if (!rec.writes) return res(false, null, 'the run had no writer');
      if (rec.writes.present === null) return res(false, null, "the final leader's server could not be read");
      const loss = lostWrites(rec.writes.acked, new Set(rec.writes.present), t);
      return res(
        rec.writes.acked.length > 0 && loss.windowMs <= within,
        loss.windowMs,
        `${loss.lost.length} of ${loss.acked} acknowledged writes lost` +
          (loss.lost.length ? ` (the newest ${loss.windowMs} ms before the fault)` : ''),
      );
    }
    case 'no-leader-change': {
      const termAt = f?.termBefore ?? 0;
      const changes = Object.values(rec.logs)
        .flat()
        .filter((x) => x.t >= t && x.t <= rec.tEnd && x.kind === 'role' && x.term > termAt);
      return res(
        changes.length === 0,
        null,
        changes.length === 0
          ? `term stayed ${termAt}`
          : `term moved to ${Math.max(...changes.map((c) => c.term))} (${changes[0]!.node} became ${changes[0]!.role})`,
      );
    }
  }
}

type Judge = (ok: boolean, measuredMs: number | null, detail: string) => ExpectationResult;

/**
 * evaluateWorkload judges the workload expectations from the pods and Whereabouts allocations the
 * leader's API server reported in each observation (observations without a serving leader carry
 * no workload and are skipped).
 */
function evaluateWorkload(
  rec: RunRecord,
  e: Expectation,
  f: FaultEvent | null,
  t: number,
  obs: readonly LabObservation[],
  res: Judge,
): ExpectationResult {
  const spec = rec.workload;
  if (!spec) return res(false, null, 'the run applied no workload');
  const seen = [...obs, ...(rec.final && rec.final.t > (obs.at(-1)?.t ?? 0) ? [rec.final] : [])].filter(
    (o): o is LabObservation & { workload: WorkloadObservation } => !!o.workload,
  );
  const before = rec.observations.filter((o) => o.t < t && o.workload).at(-1)?.workload ?? null;
  const gone = new Set(f?.robots ?? []);
  const within = e.withinMs ?? Infinity;
  switch (e.kind) {
    case 'workload-ready': {
      let why = 'no observation had the workload';
      for (const o of seen) {
        const alive = new Set(present(o).map((r) => r.name));
        const r = workloadReady(o.workload, spec, alive);
        why = r.why;
        if (r.ok) {
          const placed = o.workload.pods.map((p) => `${p.name}@${p.node}=${p.siteAddress}`).join(', ');
          return res(o.t - t <= within, o.t - t, `every replica runs with a site address: ${placed}`);
        }
      }
      return res(false, null, `never: ${why}`);
    }
    case 'no-duplicate-ip': {
      for (const o of seen) {
        const dup = duplicateAddresses(o.workload);
        if (dup.length)
          return res(false, o.t - t, `${dup.join(', ')} held twice at +${((o.t - t) / 1000).toFixed(1)} s`);
      }
      return res(seen.length > 0, null, `no address held twice in ${seen.length} observations`);
    }
    case 'addresses-freed': {
      if (!before) return res(false, null, 'no observation of the workload before the fault');
      // The allocations of the pods on the lost robots, by address and sandbox: a StatefulSet pod
      // keeps its name when it moves, and may even get the same address again, in a new sandbox.
      const lostPods = new Set(before.pods.filter((p) => gone.has(p.node ?? '')).map((p) => p.name));
      const held = before.allocations.filter((a) => lostPods.has(a.pod.slice(a.pod.indexOf('/') + 1)));
      if (held.length === 0) return res(false, null, `the robots ${[...gone].join(', ')} held no address`);
      const o = seen.find(
        (x) => !held.some((h) => x.workload.allocations.some((a) => a.ip === h.ip && a.id === h.id)),
      );
      const ms = o ? o.t - t : null;
      return res(
        ms !== null && ms <= within,
        ms,
        o
          ? `${held.map((h) => h.ip).join(', ')} of ${[...gone].join(', ')}'s pods freed`
          : `${held.map((h) => h.ip).join(', ')} still allocated to the lost pods`,
      );
    }
    case 'no-restart': {
      if (!before) return res(false, null, 'no observation of the workload before the fault');
      const kept = before.pods.filter((p) => !gone.has(p.node ?? '') && !p.deleting);
      for (const o of seen)
        for (const p of kept) {
          const now = o.workload.pods.find((x) => x.name === p.name);
          if (!now || now.uid !== p.uid || now.restarts !== p.restarts || now.node !== p.node)
            return res(
              false,
              o.t - t,
              `${p.name} on ${p.node} ${!now ? 'vanished' : now.uid !== p.uid ? 'was replaced' : now.node !== p.node ? `moved to ${now.node}` : `restarted (${now.restarts})`} at +${((o.t - t) / 1000).toFixed(1)} s`,
            );
        }
      return res(
        kept.length > 0 && seen.length > 0,
        null,
        `${kept.map((p) => p.name).join(', ') || 'no pod'} kept their UID, node and 0 new restarts`,
      );
    }
    default:
      return res(false, null, `${e.kind} is not a workload expectation`);
  }
}

/** analyse checks the invariants, measures each leader-loss fault and evaluates expectations. */
export function analyse(rec: RunRecord, expectations: readonly Expectation[]): Analysis {
  const violations = [...checkLeaders(rec.logs), ...checkServing(rec), ...checkCommits(rec)];
  if (rec.final && !converged(rec.final))
    violations.push({
      invariant: 'not-converged',
      message:
        'after heal and power-on of every robot, the site did not converge to one leader with every robot Ready',
      evidence: {
        leader: rec.final.leader,
        robots: rec.final.robots.map((r) => ({
          name: r.name,
          role: r.status?.role ?? null,
          lifecycle: r.status?.lifecycle ?? null,
        })),
        nodes: rec.final.nodes,
      },
    });
  const leaderFaults = rec.faults.filter(
    (f) =>
      f.leaderBefore !== null &&
      f.robots.includes(f.leaderBefore) &&
      f.applied.some((a) => /^(kill|isolate|pause|partition):/.test(a)),
  );
  const terms = new Set(
    Object.values(rec.logs)
      .flat()
      .filter((e) => e.kind === 'role' && e.role === 'leader' && e.t >= rec.t0)
      .map((e) => e.term),
  );
  return {
    violations,
    durations: leaderFaults.map((f) => stepDurations(rec, f)),
    expectations: expectations.map((e) => evaluate(rec, e)),
    leaderChanges: terms.size,
  };
}
