/**
 * Who the leader heartbeats besides the voters, and where discovery's address hints may point.
 * Pure: no I/O and no clock; the agent passes what the site names, what discovery advertises and
 * the transport's addresses (docs/protocol.md, "Membership").
 *
 * Learners are the robots the site names (its membership: the newest committed `edgectl-members`
 * version of the site log, else the config's workers and seeds), never a robot an advertisement
 * made up: mDNS is unauthenticated, so anyone on the LAN can advertise any name at any address.
 * An advertised id the site does not name gets no heartbeat, no probe and no transport address,
 * and is only counted. A named learner that never answers is probed on the election's silent
 * schedule (statecharts/election.ts, learnerDue), not heartbeated.
 */
import type { NodeId } from '../statecharts/messages.ts';
import { cidrContains, parseCidr, parseIpv4, type Cidr } from './site/ipv4.ts';

export interface LearnerInputs {
  readonly self: NodeId;
  /** Every robot with a vote (voters and witnesses): never learners. */
  readonly voters: readonly NodeId[];
  /** The robots the site names that do not vote. */
  readonly named: readonly NodeId[];
  /** Robots whose keys the voters refuse (edgectl robot remove): named or not, never learners. */
  readonly refused: readonly NodeId[];
  /** What discovery advertises now: ids and addresses, best first. */
  readonly advertised: readonly { readonly nodeId: NodeId; readonly addresses: readonly string[] }[];
  /** The site's subnets (its management CIDRs); empty: only discovery's own on-link filter applies. */
  readonly subnets: readonly Cidr[];
}

export interface LearnerPlan {
  /** The leader's learners, sorted. */
  readonly learners: readonly NodeId[];
  /** The address hint to give the transport for each advertised robot of the site. */
  readonly hints: readonly { readonly nodeId: NodeId; readonly host: string }[];
  /** Advertised ids the site does not name (or refuses): ignored. Sorted. */
  readonly unknown: readonly NodeId[];
  /** Advertised robots of the site none of whose addresses is inside the site's subnets. Sorted. */
  readonly outsideSubnets: readonly NodeId[];
}

/** insideSubnets: is `address` an IPv4 address inside one of `subnets` (any, when there are none)? */
export function insideSubnets(address: string, subnets: readonly Cidr[]): boolean {
  const a = parseIpv4(address);
  if (a === null) return false;
  return subnets.length === 0 || subnets.some((c) => cidrContains(c, a));
}

/** planLearners decides the learners and the address hints from what the site names. */
export function planLearners(i: LearnerInputs): LearnerPlan {
  const voters = new Set(i.voters);
  const refused = new Set(i.refused);
  const learners = [...new Set(i.named)]
    .filter((id) => id !== i.self && !voters.has(id) && !refused.has(id))
    .sort();
  const site = new Set([...learners, ...i.voters]);
  const hints: { nodeId: NodeId; host: string }[] = [];
  const unknown: NodeId[] = [];
  const outsideSubnets: NodeId[] = [];
  for (const p of i.advertised) {
    if (p.nodeId === i.self) continue;
    if (!site.has(p.nodeId)) {
      unknown.push(p.nodeId);
      continue;
    }
    const host = p.addresses.find((a) => insideSubnets(a, i.subnets));
    if (host !== undefined) hints.push({ nodeId: p.nodeId, host });
    else if (p.addresses.length > 0) outsideSubnets.push(p.nodeId);
  }
  return { learners, hints, unknown: unknown.sort(), outsideSubnets: outsideSubnets.sort() };
}

/**
 * siteSubnets: the management CIDRs of a committed site spec (canonical JSON), the blocks that hold
 * the robots' own addresses. A spec the leader committed was validated, so an entry that does not
 * parse cannot occur; it is skipped rather than trusted.
 */
export function siteSubnets(specText: string | null): Cidr[] {
  if (specText === null) return [];
  let cidrs: unknown;
  try {
    cidrs = (JSON.parse(specText) as { management?: { cidrs?: unknown } } | null)?.management?.cidrs;
  } catch {
    return [];
  }
  if (!Array.isArray(cidrs)) return [];
  return cidrs.flatMap((c) => {
    const r = typeof c === 'string' ? parseCidr(c) : null;
    return r?.ok ? [r.cidr] : [];
  });
}
