/**
 * A 5-member etcd cluster (Debian etcd-server) on the robots' namespaces, one member per robot:
 * the reference the failover benchmark holds edgectl against (docs/benchmarks/failover.md). Power
 * loss is SIGKILL of a member's process, power-on starts it again on its data directory, Wi-Fi
 * loss is link down inside its namespace. The host asks each member for its status through etcd's
 * JSON gateway (`POST /v3/maintenance/status`, a few hundred bytes; `/metrics` is 150 kB), and
 * every member logs with zap, so role changes carry the member's own ms timestamps, as edgectl's
 * agents do. Two clusters can share the namespaces on different ports.
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { etcdBinary } from '../../../lab/kube-apiserver/apiserver.ts';
import { killGroup, spawnIn, type NetnsSite } from '../../../lab/netns.ts';
import type { FailoverSystem, MemberView, Poll, RoleEvent, RoleName, Settled, SystemId } from './system.ts';

export interface EtcdClusterOptions {
  readonly id: Extract<SystemId, 'etcd-default' | 'etcd-k3s'>;
  /** The namespaces and addresses (lab/netns.ts createSite). */
  readonly site: NetnsSite;
  /** Data directories and logs: `<dir>/<member>/` and `<dir>/<member>.log`. */
  readonly dir: string;
  readonly heartbeatMs: number;
  readonly electionMs: number;
  readonly clientPort: number;
  readonly peerPort: number;
  /** --pre-vote: off by default in etcd 3.4, on in etcd 3.5+ and so in k3s. */
  readonly preVote: boolean;
  /** How long a status request may take before the member counts as not answering, ms. */
  readonly pollTimeoutMs?: number;
}

interface StatusAnswer {
  readonly memberId: string;
  readonly leaderId: string;
  readonly term: number;
}

const ROLE: Readonly<Record<string, RoleName>> = {
  leader: 'leader',
  candidate: 'candidate',
  'pre-candidate': 'preCandidate',
  follower: 'follower',
};

/**
 * parseEtcdLog turns a member's zap log into role changes. etcd's raft logs
 * `<id> became <role> at term <n>`; the id is the member's own, so the file names the member.
 */
export function parseEtcdLog(member: string, text: string): RoleEvent[] {
  const out: RoleEvent[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    let j: { ts?: unknown; msg?: unknown };
    try {
      j = JSON.parse(line) as typeof j;
    } catch {
      continue; // a torn last line after SIGKILL
    }
    const m = /^[0-9a-f]+ became (leader|candidate|pre-candidate|follower) at term (\d+)$/.exec(
      String(j.msg ?? ''),
    );
    const t = Date.parse(String(j.ts));
    if (m && Number.isFinite(t)) out.push({ t, member, term: Number(m[2]), role: ROLE[m[1]!]! });
  }
  return out;
}

/** EtcdCluster runs and faults one etcd cluster; see the module comment. */
export class EtcdCluster implements FailoverSystem {
  readonly id: EtcdClusterOptions['id'];
  readonly members: readonly string[];
  readonly heartbeatMs: number;
  readonly electionTimeoutMs: number;
  readonly electionTimeoutMaxMs: number;
  readonly description: string;
  private readonly o: EtcdClusterOptions;
  private readonly procs = new Map<string, ChildProcess>();
  private readonly off = new Set<string>();
  private readonly isolated = new Set<string>();
  /** Member ids (decimal, as the gateway writes them) to names, learnt from status answers. */
  private readonly names = new Map<string, string>();

  constructor(o: EtcdClusterOptions) {
    this.o = o;
    this.id = o.id;
    this.members = o.site.robots.map((r) => r.name);
    this.heartbeatMs = o.heartbeatMs;
    this.electionTimeoutMs = o.electionMs;
    // etcd-io/raft randomizes each follower timeout in [electionTick, 2 × electionTick).
    this.electionTimeoutMaxMs = 2 * o.electionMs;
    this.description = `etcd ${etcdVersion()}, ${this.members.length} members, --heartbeat-interval ${o.heartbeatMs} --election-timeout ${o.electionMs}${o.preVote ? ' --pre-vote' : ''}`;
  }

  private robot(m: string): NetnsSite['robots'][number] {
    const r = this.o.site.robots.find((x) => x.name === m);
    if (!r) throw new Error(`${this.id} has no member ${m}`);
    return r;
  }

  private url(m: string, port: number): string {
    return `http://${this.robot(m).address}:${port}`;
  }

  /** args is a member's command line; on a restart etcd ignores the --initial-* flags. */
  private args(m: string): string[] {
    const o = this.o;
    return [
      '--name',
      m,
      '--data-dir',
      join(o.dir, m),
      '--listen-peer-urls',
      this.url(m, o.peerPort),
      '--initial-advertise-peer-urls',
      this.url(m, o.peerPort),
      '--listen-client-urls',
      this.url(m, o.clientPort),
      '--advertise-client-urls',
      this.url(m, o.clientPort),
      '--initial-cluster',
      this.members.map((x) => `${x}=${this.url(x, o.peerPort)}`).join(','),
      '--initial-cluster-state',
      'new',
      '--initial-cluster-token',
      `edgectl-bench-${o.id}`,
      '--heartbeat-interval',
      String(o.heartbeatMs),
      '--election-timeout',
      String(o.electionMs),
      `--pre-vote=${o.preVote}`,
      '--logger',
      'zap',
      '--log-outputs',
      'stderr',
    ];
  }

  private spawn(m: string): void {
    mkdirSync(this.o.dir, { recursive: true, mode: 0o700 });
    const log = openSync(join(this.o.dir, `${m}.log`), 'a');
    const child = spawnIn(this.robot(m).netns, etcdBinary(), this.args(m), { logFile: log });
    closeSync(log);
    child.unref();
    this.procs.set(m, child);
    this.off.delete(m);
  }

  /** start starts every member (a new cluster when the data directories are empty). */
  start(): void {
    for (const m of this.members) this.spawn(m);
  }

  private async stopMember(m: string): Promise<void> {
    const child = this.procs.get(m);
    this.off.add(m);
    if (!child) return;
    const gone = new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve();
      else child.once('exit', () => resolve());
    });
    killGroup(child, 'SIGKILL');
    await Promise.race([gone, new Promise((r) => setTimeout(r, 5000))]);
    this.procs.delete(m);
  }

  /** stop kills every member (their data stays). */
  async stop(): Promise<void> {
    await Promise.all(this.members.map((m) => this.stopMember(m)));
  }

  /** pids of the members still running (for the leak check). */
  pids(): number[] {
    return [...this.procs.values()].flatMap((c) =>
      c.pid !== undefined && c.exitCode === null && c.signalCode === null ? [c.pid] : [],
    );
  }

  private async status(m: string): Promise<StatusAnswer | null> {
    try {
      const res = await fetch(`${this.url(m, this.o.clientPort)}/v3/maintenance/status`, {
        method: 'POST',
        body: '{}',
        signal: AbortSignal.timeout(this.o.pollTimeoutMs ?? 250),
      });
      if (!res.ok) return null;
      const j = (await res.json()) as { header?: { member_id?: string }; leader?: string; raftTerm?: string };
      if (!j.header?.member_id) return null;
      this.names.set(j.header.member_id, m);
      return { memberId: j.header.member_id, leaderId: j.leader ?? '0', term: Number(j.raftTerm ?? 0) };
    } catch {
      return null;
    }
  }

  private reachable(): string[] {
    return this.members.filter((m) => !this.off.has(m) && !this.isolated.has(m));
  }

  async poll(): Promise<Poll> {
    const answers = await Promise.all(this.reachable().map(async (m) => [m, await this.status(m)] as const));
    const views: MemberView[] = answers.flatMap(([member, s]) =>
      s ? [{ member, leader: s.leaderId === s.memberId, term: s.term }] : [],
    );
    return { t: Date.now(), views };
  }

  async settled(away: readonly string[], minTerm: number): Promise<Settled | null> {
    const need = this.members.filter((m) => !away.includes(m));
    const answers = await Promise.all(need.map((m) => this.status(m)));
    if (answers.some((a) => a === null)) return null;
    const first = answers[0]!;
    const leader = this.names.get(first.leaderId);
    if (!leader || away.includes(leader) || first.term < minTerm) return null;
    return answers.every((a) => a!.leaderId === first.leaderId && a!.term === first.term)
      ? { leader, term: first.term }
      : null;
  }

  powerOff(m: string): Promise<void> {
    return this.stopMember(m);
  }

  async powerOn(m: string): Promise<void> {
    if (!this.off.has(m)) return;
    this.spawn(m);
  }

  async wifiOff(m: string): Promise<void> {
    execFileSync('ip', ['-n', this.robot(m).netns, 'link', 'set', 'eth0', 'down']);
    this.isolated.add(m);
  }

  async wifiOn(m: string): Promise<void> {
    const ns = this.robot(m).netns;
    execFileSync('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
    // Link down drops the routes through it (lab/lab.ts setLink does the same for the agents).
    execFileSync('ip', ['-n', ns, 'route', 'replace', 'default', 'via', this.o.site.hostAddress]);
    this.isolated.delete(m);
  }

  events(): RoleEvent[] {
    return this.members.flatMap((m) => {
      const f = join(this.o.dir, `${m}.log`);
      return existsSync(f) ? parseEtcdLog(m, readFileSync(f, 'utf8')) : [];
    });
  }
}

let version: string | null = null;

/** etcdVersion is the installed etcd's version, e.g. 3.4.23. */
export function etcdVersion(): string {
  version ??=
    /Version:\s*(\S+)/.exec(execFileSync(etcdBinary(), ['--version'], { encoding: 'utf8' }))?.[1] ?? '?';
  return version;
}
