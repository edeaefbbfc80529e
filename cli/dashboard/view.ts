/**
 * The dashboard's model: what the page shows, derived purely from successive observations of a site.
 *
 * The server samples the site (agents' /status, the leader's API server, the lab's fault log) and
 * folds each sample into a `Tracker`; `nextView` returns the view to send and the next tracker. No
 * I/O and no clock here: the sample carries its own time, so the same samples give the same timeline
 * (the unit tests replay a failover this way).
 */
import { converged } from '../../lab/analysis.ts';
import type { LabObservation } from '../../lab/lab.ts';

/** A fault as the lab's event log records it (`edgectl lab fault`, a scenario, or the page). */
export interface FaultRecord {
  readonly t: number;
  readonly fault: string;
  readonly robots: readonly string[];
}

/** A pod of the site's namespace, with the address Multus reports for the site network. */
export interface PodSample {
  readonly name: string;
  readonly node: string | null;
  readonly phase: string;
  readonly siteAddress: string | null;
}

/**
 * One sample of a site. For a lab it is the lab's own observation plus its fault log; for a
 * bootstrapped site, power and Wi-Fi are unknown (null), and there is no fault log.
 */
export interface SiteSample extends LabObservation {
  readonly site: string;
  readonly kind: 'lab' | 'site';
  /** The lab's fault log, oldest first; empty for a bootstrapped site. */
  readonly faults: readonly FaultRecord[];
  /** Pods of the site's namespace on the serving API server; null when none serves. */
  readonly pods: readonly PodSample[] | null;
}

export type Power = 'on' | 'off' | 'paused' | 'no wifi' | 'no answer';

export interface RobotRow {
  readonly name: string;
  readonly address: string;
  readonly power: Power;
  readonly role: string;
  /** null while the robot does not answer. */
  readonly voter: boolean | null;
  readonly term: number | null;
  readonly leader: string | null;
  readonly lifecycle: string | null;
  readonly controlPlane: string;
  readonly node: 'Ready' | 'NotReady' | 'absent' | 'unknown';
  /** The leader's view of this robot: when it last heard it, and the link's round-trip time. */
  readonly lastHeardMs: number | null;
  readonly rttMs: number | null;
}

export type TimelineKind = 'fault' | 'leader' | 'no-leader' | 'reformed';

export interface TimelineEntry {
  readonly t: number;
  readonly kind: TimelineKind;
  readonly text: string;
  /** The fault that started this re-formation, and the time since it, when there is one. */
  readonly after: string | null;
  readonly afterMs: number | null;
}

export interface SiteView {
  readonly site: string;
  readonly kind: 'lab' | 'site';
  readonly t: number;
  readonly leader: string | null;
  readonly term: number;
  /** One leader serving, and every robot that is up Ready on it. */
  readonly converged: boolean;
  readonly robots: readonly RobotRow[];
  /** What a robot without a quorum says ("1 of 2 voters reachable since …"), or null. */
  readonly noQuorum: string | null;
  readonly pods: readonly PodSample[] | null;
  /** Newest last. */
  readonly timeline: readonly TimelineEntry[];
}

export interface Tracker {
  readonly leader: string | null;
  readonly term: number;
  readonly converged: boolean;
  /** Faults already on the timeline. */
  readonly faultsSeen: number;
  /** The fault whose re-formation is still being measured. */
  readonly openFault: FaultRecord | null;
  readonly timeline: readonly TimelineEntry[];
  /** False until the first sample: faults from before the dashboard started are history, not measured. */
  readonly primed: boolean;
}

export const EMPTY_TRACKER: Tracker = {
  leader: null,
  term: 0,
  converged: false,
  faultsSeen: 0,
  openFault: null,
  timeline: [],
  primed: false,
};

/** How many timeline entries the page keeps; older ones scroll away. */
export const TIMELINE_LIMIT = 200;

function power(r: LabObservation['robots'][number]): Power {
  if (!r.powered) return 'off';
  if (r.paused) return 'paused';
  if (!r.wifi) return 'no wifi';
  return r.status ? 'on' : 'no answer';
}

function controlPlane(s: NonNullable<LabObservation['robots'][number]['status']>): string {
  const cp = s.controlPlane;
  if (cp.server) return `server e${cp.server.epoch} ${cp.server.state}`;
  if (cp.worker) return `worker of ${cp.worker.leader} ${cp.worker.state}`;
  return '-';
}

/** robotRows: one row per robot, with the leader's view of each link. */
export function robotRows(o: LabObservation): RobotRow[] {
  const lead = o.robots.find((r) => r.name === o.leader)?.status ?? null;
  return o.robots.map((r) => {
    const s = r.status;
    const node = o.nodes?.find((n) => n.name === r.name);
    const seen = lead?.members.find((m) => m.id === r.name);
    return {
      name: r.name,
      address: r.address,
      power: power(r),
      role: s ? `${s.role}${s.witness ? ' (witness)' : ''}` : '-',
      voter: s?.voter ?? null,
      term: s?.term ?? null,
      leader: s?.leader ?? null,
      lifecycle: s?.lifecycle ?? null,
      controlPlane: s ? controlPlane(s) : '-',
      node: o.nodes === null ? 'unknown' : node ? (node.ready ? 'Ready' : 'NotReady') : 'absent',
      lastHeardMs: r.name === o.leader ? 0 : (seen?.lastHeardAgoMs ?? null),
      rttMs: seen?.rttMs ?? null,
    };
  });
}

const entry = (t: number, kind: TimelineKind, text: string, open: FaultRecord | null): TimelineEntry => ({
  t,
  kind,
  text,
  after: open?.fault ?? null,
  afterMs: open === null ? null : Math.max(0, t - open.t),
});

/**
 * measureFrom: the lab logs a fault once it is done, stamped with when it began, so the site may
 * have lost or elected a leader before the log says so. Entries from after the fault's start that
 * no fault explains yet are measured from it.
 */
function measureFrom(entries: readonly TimelineEntry[], f: FaultRecord): TimelineEntry[] {
  return entries.map((e) =>
    e.kind !== 'fault' && e.after === null && e.t >= f.t ? entry(e.t, e.kind, e.text, f) : e,
  );
}

/**
 * nextView folds one sample into the tracker: new faults, leader changes and the moment the site
 * has re-formed go on the timeline (in time order), each re-formation measured from the fault that
 * started it.
 */
export function nextView(prev: Tracker, s: SiteSample): { view: SiteView; tracker: Tracker } {
  let timeline: TimelineEntry[] = [...prev.timeline];
  let open = prev.openFault;
  for (const f of s.faults.slice(prev.faultsSeen)) {
    timeline.push(entry(f.t, 'fault', `fault ${f.fault}`, null));
    // Faults from before the dashboard started are history. Within a series (a fault, then heal or
    // power-on), the site re-forms from the first fault.
    if (open === null && prev.primed) {
      open = f;
      timeline = measureFrom(timeline, f);
    }
  }
  const isConverged = converged(s);
  if (s.leader !== prev.leader || (s.leader !== null && s.term !== prev.term))
    timeline.push(
      s.leader === null
        ? entry(s.t, 'no-leader', 'no leader', open)
        : entry(s.t, 'leader', `${s.leader} leads at term ${s.term}`, open),
    );
  if (isConverged && (!prev.converged || open !== null) && s.leader !== null) {
    timeline.push(
      entry(s.t, 'reformed', `site formed: ${s.leader} serves, every robot that is up is Ready`, open),
    );
    open = null;
  }
  timeline = timeline.sort((a, b) => a.t - b.t).slice(-TIMELINE_LIMIT);
  const tracker: Tracker = {
    leader: s.leader,
    term: s.leader === null ? prev.term : s.term,
    converged: isConverged,
    faultsSeen: s.faults.length,
    openFault: open,
    timeline,
    primed: true,
  };
  const view: SiteView = {
    site: s.site,
    kind: s.kind,
    t: s.t,
    leader: s.leader,
    term: s.term,
    converged: isConverged,
    robots: robotRows(s),
    noQuorum: noQuorumOf(s),
    pods: s.pods,
    timeline,
  };
  return { view, tracker };
}

function noQuorumOf(o: LabObservation): string | null {
  const q = o.robots.find((r) => r.status?.quorum && !r.status.quorum.ok)?.status?.quorum;
  return q
    ? `${q.reachable} of ${q.voters} voters reachable${q.noQuorumSince ? ` since ${q.noQuorumSince.slice(11, 19)}` : ''}`
    : null;
}

/** sameView: whether two views would draw the same page (the time of sampling aside). */
export function sameView(a: SiteView | null, b: SiteView): boolean {
  if (a === null) return false;
  // lastHeard changes on every sample; round it so an idle site does not redraw twice a second.
  const key = (v: SiteView) =>
    JSON.stringify({
      ...v,
      t: 0,
      robots: v.robots.map((r) => ({
        ...r,
        lastHeardMs: r.lastHeardMs === null ? null : Math.round(r.lastHeardMs / 1000),
      })),
    });
  return key(a) === key(b);
}
