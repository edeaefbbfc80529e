/**
 * The one shape the failover benchmark drives (docs/benchmarks/failover.md): a 5-member system on
 * 5 robot namespaces, whose leader the schedules power off and take off the Wi-Fi, and whose
 * members' own logs say when each of them changed role. The edgectl lab (fleet profile) and a
 * 5-member etcd cluster at two timings implement it, so every schedule runs the same code against
 * each system.
 */

export type SystemId = 'edgectl' | 'etcd-default' | 'etcd-k3s';

export type RoleName = 'follower' | 'preCandidate' | 'candidate' | 'leader';

/** RoleEvent is one log line where a member changed role, with the log's own time (ms). */
export interface RoleEvent {
  readonly t: number;
  readonly member: string;
  readonly term: number;
  readonly role: RoleName;
}

/** MemberView is one member's answer to a poll: does it lead, and in which term. */
export interface MemberView {
  readonly member: string;
  readonly leader: boolean;
  readonly term: number;
}

/** Poll is what the host saw when it asked every reachable member; `t` is the host clock at the answer. */
export interface Poll {
  readonly t: number;
  readonly views: readonly MemberView[];
}

export interface Settled {
  readonly leader: string;
  readonly term: number;
}

/**
 * FailoverSystem is a system under test. Members are `r1`…`r5`, the robots' namespaces. Faults act
 * on one member: power off/on (SIGKILL of its processes; start them again with their data) and
 * Wi-Fi off/on (link down/up in its namespace). Loss and bursts act on the whole bridge and live
 * outside (see NetFaults in schedules.ts).
 */
export interface FailoverSystem {
  readonly id: SystemId;
  readonly members: readonly string[];
  /** Heartbeat and election timeout (the lower bound of the randomized one), ms. */
  readonly heartbeatMs: number;
  readonly electionTimeoutMs: number;
  /** Upper bound (exclusive) of the randomized follower timeout, ms. */
  readonly electionTimeoutMaxMs: number;
  /** One line for the report: what runs and with which settings. */
  readonly description: string;
  /** poll asks every member that is powered and on the Wi-Fi, with a short timeout. */
  poll(): Promise<Poll>;
  /**
   * settled is the leader and term when the system is whole again: one leader in a term ≥ minTerm,
   * not among `away`, followed by every member not `away` (edgectl: and every such robot Ready on
   * the leader's API server). Null while it is not.
   */
  settled(away: readonly string[], minTerm: number): Promise<Settled | null>;
  powerOff(member: string): Promise<void>;
  powerOn(member: string): Promise<void>;
  wifiOff(member: string): Promise<void>;
  wifiOn(member: string): Promise<void>;
  /** events reads every member's log so far. */
  events(): RoleEvent[];
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** waitSettled polls `settled` every `everyMs` until it holds, or throws after `timeoutMs`. */
export async function waitSettled(
  sys: FailoverSystem,
  away: readonly string[],
  minTerm: number,
  timeoutMs: number,
  everyMs = 200,
): Promise<Settled> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const s = await sys.settled(away, minTerm).catch(() => null);
    if (s) return s;
    if (Date.now() > end)
      throw new Error(
        `${sys.id} did not settle within ${timeoutMs / 1000} s (away: ${away.join(',') || 'none'}, term ≥ ${minTerm})`,
      );
    await sleep(everyMs);
  }
}
