/**
 * The security tests' lab harness: real agents (agent/testing/main.ts, memory control plane, real UDP
 * and mDNS) in network namespaces on one bridge (lab/netns.ts), plus what the tests read from the
 * kernel about them: a process's resident memory, its UDP socket's drop count, and per-source packet
 * counters kept by nftables in a robot's namespace.
 *
 * Every robot has a namespace name (`ns`, unique on the bridge) and a node id (`node`, unique within
 * its site only): two sites may both have an `r1`. Needs root; without it the tests fail, never skip.
 */
import assert from 'node:assert/strict';
import { execFileSync, type ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import type { AgentStatus } from '../../agent/agent.ts';
import { formatRobotKeyFile, renderRobotKeyFile } from '../../agent/site-key.ts';
import { fetchStatus } from '../../cli/ops/status.ts';
import { createSite, destroySite, killGroup, listOwned, spawnIn, type NetnsSite } from '../../lab/netns.ts';

/** The tests' agent entry: the robot's agent with the in-memory control plane registered. */
export const TEST_AGENT = fileURLToPath(new URL('../../agent/testing/main.ts', import.meta.url));
/** The election transport's UDP port (agent config default). */
export const ELECTION_PORT = 7946;
export const STATUS_PORT = 7947;

export interface SiteSpec {
  readonly id: string;
  /**
   * The site master secret, 64 hex characters: each robot gets its own key file derived from it,
   * as bootstrap installs them (agent/site-key.ts).
   */
  readonly keyHex: string;
  /**
   * Robots: namespace name → node id. A robot is a voter unless `worker` says otherwise: `named`
   * is a worker the site's configs name (bootstrap), `later` one no config names yet (robot add
   * names it in the site log).
   */
  readonly robots: readonly {
    readonly ns: string;
    readonly node: string;
    readonly worker?: 'named' | 'later';
  }[];
}

export interface Robot {
  readonly ns: string;
  readonly node: string;
  readonly site: string;
  readonly netns: string;
  readonly address: string;
  readonly veth: string;
}

export interface Lab {
  readonly net: NetnsSite;
  readonly dir: string;
  readonly robots: readonly Robot[];
  /** Namespaces on the bridge that run no agent (a hostile host, say). */
  readonly others: readonly NetnsSite['robots'][number][];
  readonly procs: Map<string, ChildProcess>;
  /** Gives up the lab lock (lockLab). */
  readonly release: () => void;
}

export async function sleep(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

/** until polls `probe` every 100 ms until it returns a truthy value, or throws after `ms`. */
export async function until<T>(what: string, probe: () => Promise<T | null | false>, ms: number): Promise<T> {
  const end = performance.now() + ms;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (performance.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(100);
  }
}

/** status reads a robot's /status, or null while it does not answer. */
export const status = (r: Pick<Robot, 'address'>, timeoutMs = 2000): Promise<AgentStatus | null> =>
  fetchStatus(`${r.address}:${STATUS_PORT}`, timeoutMs).catch(() => null);

/**
 * lockLab serializes the tests that share a prefix and subnet: the test runner may run several test
 * files at once (npm test runs two), and two labs on one prefix would tear each other down. The lock
 * is a file holding the owner's pid; a lock whose owner is gone is taken over.
 */
export async function lockLab(prefix: string, timeoutMs = 15 * 60_000): Promise<() => void> {
  const path = join(tmpdir(), `edgectl-lab-${prefix}lock`);
  const end = performance.now() + timeoutMs;
  for (;;) {
    try {
      const fd = openSync(path, 'wx');
      writeFileSync(fd, String(process.pid));
      closeSync(fd);
      return () => {
        try {
          if (readFileSync(path, 'utf8') === String(process.pid)) unlinkSync(path);
        } catch {
          // already gone
        }
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    let owner: number;
    try {
      owner = Number(readFileSync(path, 'utf8'));
    } catch {
      continue; // released meanwhile
    }
    if (!(owner > 0) || !alive(owner)) {
      rmSync(path, { force: true }); // its owner died without releasing it
      continue;
    }
    if (performance.now() > end) throw new Error(`the lab lock ${path} is held by pid ${owner}`);
    await sleep(250);
  }
}

/**
 * startLab builds the bridge and namespaces (robots of every site, then `others`), writes each
 * site's key (mode 0600) and each robot's config, and starts every agent (unless `start` is false:
 * then startAgents starts them). mDNS only, no seeds.
 */
export async function startLab(
  prefix: string,
  subnet: string,
  sites: readonly SiteSpec[],
  others: readonly string[] = [],
  opts: { start?: boolean; profile?: 'lab' | 'fleet' } = {},
): Promise<Lab> {
  const release = await lockLab(prefix);
  try {
    return buildLab(prefix, subnet, sites, others, opts, release);
  } catch (e) {
    destroySite(prefix);
    release();
    throw e;
  }
}

function buildLab(
  prefix: string,
  subnet: string,
  sites: readonly SiteSpec[],
  others: readonly string[],
  opts: { start?: boolean; profile?: 'lab' | 'fleet' },
  release: () => void,
): Lab {
  const all = sites.flatMap((s) => s.robots.map((r) => ({ ...r, site: s.id })));
  const net = createSite(prefix, subnet, [...all.map((r) => r.ns), ...others]);
  const dir = mkdtempSync(join(tmpdir(), 'edgectl-sec-'));
  const robots: Robot[] = all.map((r, i) => {
    const n = net.robots[i]!;
    return { ns: r.ns, node: r.node, site: r.site, netns: n.netns, address: n.address, veth: n.veth };
  });
  const lab: Lab = { net, dir, robots, others: net.robots.slice(all.length), procs: new Map(), release };
  for (const s of sites) {
    const voters = s.robots.filter((r) => !r.worker).map((r) => r.node);
    const workers = s.robots.filter((r) => r.worker === 'named').map((r) => r.node);
    for (const r of robots.filter((x) => x.site === s.id)) {
      const keys = renderRobotKeyFile({
        master: Buffer.from(s.keyHex, 'hex'),
        site: s.id,
        node: r.node,
        voters,
        send: 1,
        accept: [1],
      });
      writeFileSync(join(dir, `${r.ns}.keys.json`), formatRobotKeyFile(keys), { mode: 0o600 });
      const config = {
        site: { id: s.id },
        node: { id: r.node, serverCapable: voters.includes(r.node) },
        voters,
        workers,
        profile: opts.profile ?? 'lab',
        network: { interfaces: ['eth0'], mdns: true, seeds: [] },
        stateDir: join(dir, r.ns, 'state'),
        siteKeyFile: join(dir, `${r.ns}.keys.json`),
        status: { listen: `${r.address}:${STATUS_PORT}` },
        controlPlane: { runtime: 'memory' },
        membership: { suspectAfterMs: 1000, deadAfterMs: 3000 },
        log: { level: 'info' },
      };
      writeFileSync(join(dir, `${r.ns}.yaml`), stringify(config));
    }
  }
  if (opts.start !== false) startAgents(lab);
  return lab;
}

export function startAgents(lab: Lab): void {
  for (const r of lab.robots) startAgent(lab, r);
}

/** startAgent starts one robot's agent; `nodeFlags` go to Node (the unit's heap limit, say). */
export function startAgent(lab: Lab, r: Robot, nodeFlags: readonly string[] = []): void {
  const log = openSync(join(lab.dir, `${r.ns}.log`), 'a');
  lab.procs.set(
    r.ns,
    spawnIn(
      r.netns,
      process.execPath,
      [...nodeFlags, TEST_AGENT, '--config', join(lab.dir, `${r.ns}.yaml`)],
      { logFile: log },
    ),
  );
}

/** stopLab kills every process it started, removes the namespaces and checks nothing is left. */
export function stopLab(lab: Lab | undefined, prefix: string): void {
  if (!lab) return; // startLab failed (and cleaned up) or never ran: the prefix is not ours to touch
  for (const p of lab.procs.values()) killGroup(p);
  destroySite(prefix);
  if (!process.env.EDGECTL_KEEP_LOGS) rmSync(lab.dir, { recursive: true, force: true });
  try {
    assert.deepEqual(
      listOwned(prefix),
      { netns: [], links: [] },
      'the test leaves no namespace or link behind',
    );
  } finally {
    lab.release();
  }
}

/**
 * foreignBridgeRules lists nftables bridge-family tables on this machine that are not ours: their
 * rules see the frames of every bridge unless they match ports, so another lab's loss or blackout
 * rules can hit this test's bridge too (a failing test prints them).
 */
export function foreignBridgeRules(prefix: string): string[] {
  try {
    const tables = execFileSync('nft', ['list', 'tables', 'bridge'], { encoding: 'utf8' })
      .split('\n')
      .map((l) => l.trim().split(/\s+/)[2])
      .filter((t): t is string => !!t && !t.startsWith(prefix.replace(/[^a-zA-Z0-9]/g, '_')));
    return tables.map((t) =>
      execFileSync('nft', ['list', 'table', 'bridge', t], { encoding: 'utf8' }).trim(),
    );
  } catch {
    return [];
  }
}

/** logTails prints the last lines of every agent's log (for a failing test), and other labs' bridge rules. */
export function logTails(lab: Lab | undefined, lines = 25): string {
  if (!lab) return '';
  const foreign = foreignBridgeRules(lab.net.prefix);
  const note = foreign.length
    ? `--- other nftables bridge tables on this machine (they may drop this lab's frames too) ---\n${foreign.join('\n')}\n`
    : '';
  return (
    note +
    lab.robots
      .map((r) => {
        let text: string;
        try {
          text = readFileSync(join(lab.dir, `${r.ns}.log`), 'utf8')
            .split('\n')
            .slice(-lines)
            .join('\n');
        } catch {
          text = '(no log)';
        }
        return `--- ${r.ns} (${r.site}/${r.node}) log (tail) ---\n${text}`;
      })
      .join('\n')
  );
}

/** settledSite: the statuses of `robots` when they agree on one serving leader, all ready; else null. */
export async function settledSite(robots: readonly Robot[]): Promise<AgentStatus[] | null> {
  const s = await Promise.all(robots.map((r) => status(r)));
  if (s.some((x) => x === null)) return null;
  const st = s as AgentStatus[];
  const leaders = st.filter((x) => x.role === 'leader');
  if (leaders.length !== 1) return null;
  const l = leaders[0]!;
  const ready = st.every((x) => x.lifecycle === 'leading.serving' || x.lifecycle === 'following.ready');
  const agreed = st.every((x) => x.leader === l.node && x.term === l.term);
  const found = st.every((x) => x.members.length === robots.length - 1);
  return ready && agreed && found ? st : null;
}

// ---------------------------------------------------------------------------------------------
// What the kernel knows about a process and its sockets.

/** rssKb is a process's resident set size (VmRSS) in KiB. */
export function rssKb(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]);
}

/** alive: the process exists and is not a zombie. */
export function alive(pid: number): boolean {
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
}

export interface UdpSocketInfo {
  /** Bytes waiting in the receive queue. */
  readonly rxQueue: number;
  /** Datagrams the kernel dropped for this socket (full receive buffer, bad checksum). */
  readonly drops: number;
}

/**
 * udpSocket reads the UDP socket bound to `port` in `pid`'s network namespace from
 * /proc/<pid>/net/udp (which shows the namespace of that process).
 */
export function udpSocket(pid: number, port: number): UdpSocketInfo {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  const lines = readFileSync(`/proc/${pid}/net/udp`, 'utf8').trim().split('\n').slice(1);
  for (const line of lines) {
    const f = line.trim().split(/\s+/);
    // sl local rem st tx:rx tr:when retrnsmt uid timeout inode ref pointer drops
    if (f[1]?.endsWith(`:${hexPort}`)) {
      const rx = parseInt(f[4]!.split(':')[1]!, 16);
      return { rxQueue: rx, drops: Number(f[f.length - 1]) };
    }
  }
  throw new Error(`no UDP socket on port ${port} in the namespace of pid ${pid}`);
}

/** udpSnmp reads the namespace-wide UDP counters (InDatagrams, InErrors, RcvbufErrors, …) of `pid`'s namespace. */
export function udpSnmp(pid: number): Record<string, number> {
  const lines = readFileSync(`/proc/${pid}/net/snmp`, 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('Udp:'));
  const keys = lines[0]!.split(/\s+/).slice(1);
  const vals = lines[1]!.split(/\s+/).slice(1).map(Number);
  return Object.fromEntries(keys.map((k, i) => [k, vals[i]!]));
}

/** linkStats: a link's packet and drop counters (`ip -s -j link show`), in the host namespace or in `netns`. */
export function linkStats(
  dev: string,
  netns?: string,
): { rxPackets: number; txPackets: number; rxDropped: number; txDropped: number } {
  const args = [...(netns ? ['-n', netns] : []), '-s', '-j', 'link', 'show', 'dev', dev];
  const j = JSON.parse(execFileSync('ip', args, { encoding: 'utf8' })) as {
    stats64: {
      rx: { packets: number; dropped: number };
      tx: { packets: number; dropped: number };
    };
  }[];
  const s = j[0]!.stats64;
  return {
    rxPackets: s.rx.packets,
    txPackets: s.tx.packets,
    rxDropped: s.rx.dropped,
    txDropped: s.tx.dropped,
  };
}

// ---------------------------------------------------------------------------------------------
// nftables accounting in a robot's namespace.

const ACCT_TABLE = 'edgectl_sec_acct';

export function nftIn(netns: string, script: string): string {
  return execFileSync('ip', ['netns', 'exec', netns, 'nft', '-f', '-'], { input: script, encoding: 'utf8' });
}

/**
 * installAccounting adds a table to `netns` that counts the UDP datagrams arriving for the election
 * port after IP reassembly, split by source: from the `hostile` addresses or from anyone else. A `fence` set
 * turns on a rule in front of the counters that drops (and counts apart) every election datagram,
 * so a snapshot can be taken while nothing new reaches the socket.
 */
export function installAccounting(
  netns: string,
  hostile: readonly string[],
  peers: readonly string[] = [],
  port = ELECTION_PORT,
): void {
  const name = (a: string) => `from_${a.replace(/\./g, '_')}`;
  nftIn(
    netns,
    `table inet ${ACCT_TABLE} {
  counter fenced {}
  counter hostile {}
  counter legit {}
${peers.map((a) => `  counter ${name(a)} {}`).join('\n')}
  chain input {
    type filter hook input priority -10; policy accept;
    udp dport ${port} jump count
  }
  chain count {
    udp dport ${port} ip saddr { ${hostile.join(', ')} } counter name hostile return
${peers.map((a) => `    udp dport ${port} ip saddr ${a} counter name ${name(a)}`).join('\n')}
    udp dport ${port} counter name legit return
  }
}
`,
  );
}

/** fence drops every election datagram arriving at `netns` from now on (before the counters), or lifts that. */
export function fence(netns: string, on: boolean, port = ELECTION_PORT): void {
  nftIn(
    netns,
    on
      ? `insert rule inet ${ACCT_TABLE} input udp dport ${port} counter name fenced drop\n`
      : `flush chain inet ${ACCT_TABLE} input\nadd rule inet ${ACCT_TABLE} input udp dport ${port} jump count\n`,
  );
}

/** accounting reads the counters of installAccounting: packets per counter. */
export function accounting(netns: string): {
  hostile: number;
  legit: number;
  fenced: number;
  /** Election datagrams that arrived from each peer address given to installAccounting. */
  from: Record<string, number>;
} {
  const out = execFileSync(
    'ip',
    ['netns', 'exec', netns, 'nft', '-j', 'list', 'counters', 'table', 'inet', ACCT_TABLE],
    {
      encoding: 'utf8',
    },
  );
  const j = JSON.parse(out) as { nftables: { counter?: { name: string; packets: number } }[] };
  const c: Record<string, number> = {};
  for (const x of j.nftables) if (x.counter) c[x.counter.name] = x.counter.packets;
  const from = Object.fromEntries(
    Object.entries(c)
      .filter(([k]) => k.startsWith('from_'))
      .map(([k, v]) => [k.slice(5).replace(/_/g, '.'), v]),
  );
  return { hostile: c.hostile ?? 0, legit: c.legit ?? 0, fenced: c.fenced ?? 0, from };
}

/**
 * Counting on the bridge: frames from `ports` to the election port, at the start of the bridge's
 * forward path (priority −200) and at its end (priority 200). The difference is what nftables rules
 * in between dropped, e.g. another lab's bridge-wide loss rules on a shared machine. The table is
 * named after the prefix and removed by removeBridgeAccounting.
 */
export function installBridgeAccounting(
  prefix: string,
  ports: readonly string[],
  port = ELECTION_PORT,
): string {
  const table = `${prefix.replace(/[^a-zA-Z0-9]/g, '_')}sec_acct`;
  const match = `iifname { ${ports.map((p) => `"${p}"`).join(', ')} } ether type ip ip protocol udp udp dport ${port}`;
  execFileSync('nft', ['-f', '-'], {
    input: `table bridge ${table}
delete table bridge ${table}
table bridge ${table} {
  counter entered {}
  counter left {}
  chain first {
    type filter hook forward priority -200; policy accept;
    ${match} counter name entered
  }
  chain last {
    type filter hook forward priority 200; policy accept;
    ${match} counter name left
  }
}
`,
  });
  return table;
}

/** bridgeAccounting reads installBridgeAccounting's counters. */
export function bridgeAccounting(table: string): { entered: number; left: number } {
  const j = JSON.parse(
    execFileSync('nft', ['-j', 'list', 'counters', 'table', 'bridge', table], { encoding: 'utf8' }),
  ) as { nftables: { counter?: { name: string; packets: number } }[] };
  const c: Record<string, number> = {};
  for (const x of j.nftables) if (x.counter) c[x.counter.name] = x.counter.packets;
  return { entered: c.entered ?? 0, left: c.left ?? 0 };
}

export function removeBridgeAccounting(table: string): void {
  try {
    execFileSync('nft', ['delete', 'table', 'bridge', table], { stdio: 'ignore' });
  } catch {
    // already gone
  }
}
