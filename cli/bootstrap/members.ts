/**
 * The site's membership on a running site (`edgectl robot add|remove`): the robots the inventory
 * names that do not vote, committed in the site log through the leader (agent/site/members.ts,
 * docs/protocol.md "Membership"), so that every voter's learners change without a restart.
 *
 * The agents' status endpoints listen on the robots' loopback, so edgectl asks them over the SSH
 * connection it already has, with the Node runtime bootstrap installed (no curl needed): first any
 * voter for the leader, then the leader for its committed membership, then the leader with the new
 * one, signed with the operator key of the generation the robots send with.
 */
import type { MembersOutcome, MembersView } from '../../agent/agent.ts';
import { EdgeError } from '../../agent/errors.ts';
import type { CommandRunner } from '../../agent/exec/runner.ts';
import { signMembers } from '../../agent/operator-auth.ts';
import { membersDigest } from '../../agent/site/members.ts';
import { installPath, renderAgentConfig, type Inventory } from './inventory.ts';
import { PATHS } from './plan.ts';

/**
 * Prints `{"status":<HTTP status>,"body":<text>}` for GET /site/members at $1, or for a POST of $2
 * when given. Exits 1 when the agent does not answer.
 */
export const MEMBERS_SCRIPT =
  "const [l,b]=process.argv.slice(1);fetch('http://'+l+'/site/members',b?{method:'POST',body:b,signal:AbortSignal.timeout(30000)}:{signal:AbortSignal.timeout(5000)})" +
  '.then(async r=>process.stdout.write(JSON.stringify({status:r.status,body:await r.text()})),e=>{process.stderr.write(String(e));process.exit(1)})';

/** inventoryWorkers: the membership the inventory gives: its robots that do not vote, less the refused. */
export function inventoryWorkers(inv: Inventory, refused: readonly string[]): string[] {
  return inv.robots
    .map((r) => r.name)
    .filter((n) => !inv.voters.includes(n) && !inv.witnesses.includes(n) && !refused.includes(n))
    .sort();
}

export interface SyncMembersInput {
  readonly inventory: Inventory;
  /** The membership to commit. */
  readonly workers: readonly string[];
  /** The operator key of the generation the robots send with (agent/site-key.ts operatorKey). */
  readonly operatorKey: Uint8Array;
  /** A connection to a robot of the inventory. */
  readonly connect: (robot: string) => Promise<CommandRunner>;
}

export type SyncMembersResult = Exclude<MembersOutcome, { kind: 'notLeader' }>;

async function ask(
  input: SyncMembersInput,
  robot: string,
  body?: string,
): Promise<{ status: number; body: unknown }> {
  const inv = input.inventory;
  const runner = await input.connect(robot);
  const listen = renderAgentConfig(inv, robot).status?.listen ?? '127.0.0.1:7947';
  const argv = [installPath(inv, robot, PATHS.node), '-e', MEMBERS_SCRIPT, listen, ...(body ? [body] : [])];
  const r = await runner.run(argv, { timeoutMs: 40_000 });
  if (r.code !== 0)
    throw new EdgeError('AGENT_UNREACHABLE', `the agent on ${robot} does not answer: ${r.stderr.trim()}`, {
      hint: `look at journalctl -u edgectl-agent on ${robot}`,
    });
  const out = JSON.parse(r.stdout) as { status: number; body: string };
  let parsed: unknown = out.body;
  try {
    parsed = JSON.parse(out.body);
  } catch {
    // Not JSON: kept as text for the error.
  }
  return { status: out.status, body: parsed };
}

function agentError(robot: string, status: number, body: unknown): EdgeError {
  const e = (body as { error?: { code?: string; message?: string; hint?: string } } | null)?.error;
  if (!e?.code)
    return new EdgeError('AGENT_HTTP', `${robot} answered HTTP ${status}: ${String(body).slice(0, 200)}`);
  return new EdgeError(e.code, `${robot}: ${e.message ?? e.code}`, { hint: e.hint });
}

/**
 * syncMembers commits `workers` as the site's membership through its leader, unless it is already
 * the committed one. A leader that moves meanwhile, or a concurrent change, is retried a few times.
 */
export async function syncMembers(input: SyncMembersInput): Promise<SyncMembersResult> {
  const inv = input.inventory;
  const voters = inv.voters.filter((v) => !inv.witnesses.includes(v));
  const errors: string[] = [];
  for (let attempt = 0; attempt < 4; attempt++) {
    let leader: string | null = null;
    for (const v of voters) {
      try {
        const r = await ask(input, v);
        if (r.status === 200) leader = (r.body as MembersView).leader;
        if (leader) break;
      } catch (e) {
        errors.push((e as Error).message);
      }
    }
    if (!leader || !inv.robots.some((r) => r.name === leader)) {
      errors.push(leader ? `the leader ${leader} is not in the inventory` : 'no voter names a leader');
      await new Promise((r) => setTimeout(r, 1000));
      continue;
    }
    const view = await ask(input, leader);
    if (view.status !== 200) throw agentError(leader, view.status, view.body);
    const committed = (view.body as MembersView).committed;
    const digest = membersDigest(input.workers);
    if (committed?.digest === digest) return { kind: 'unchanged', version: committed.version, digest };
    const baseVersion = committed?.version ?? 0;
    const body = JSON.stringify({
      site: inv.site.id,
      baseVersion,
      workers: [...input.workers].sort(),
      mac: signMembers(input.operatorKey, { site: inv.site.id, baseVersion, digest }),
    });
    const r = await ask(input, leader, body);
    if (r.status === 200) return r.body as SyncMembersResult;
    const code = (r.body as { error?: { code?: string } } | null)?.error?.code;
    // The leader moved, or another change came first: look again.
    if (r.status === 421 || code === 'EDGE_MEMBERS_CONFLICT' || code === 'EDGE_MEMBERS_BUSY') {
      errors.push(r.status === 421 ? `${leader} no longer leads` : `${leader}: ${code}`);
      continue;
    }
    throw agentError(leader, r.status, r.body);
  }
  throw new EdgeError(
    'MEMBERS_NOT_COMMITTED',
    `the site's membership could not be committed: ${errors.join('; ')}`,
    {
      hint: 'check that the site has a leader (edgectl site ready -f <inventory>), then run the command again',
    },
  );
}
