/**
 * Three real agents (agent/testing/main.ts) in network namespaces on one bridge: real UDP, real mDNS,
 * the in-memory control plane. They must find each other over mDNS alone (no seeds), elect one
 * leader, and elect a new one when the leader's process is killed (power loss). Needs root; CI runs
 * as root, and without root this test fails, it never skips.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import type { AgentStatus } from '../../agent/agent.ts';
import { formatRobotKeyFile, renderRobotKeyFile } from '../../agent/site-key.ts';
import { fetchStatus } from '../../cli/ops/status.ts';
import {
  createSite,
  destroySite,
  killGroup,
  listOwned,
  requireRoot,
  spawnIn,
  type NetnsSite,
} from '../../lab/netns.ts';
import type { ChildProcess } from 'node:child_process';

const PREFIX = 'eda-';
const SUBNET = '10.77.9';
/** The tests' agent entry: the robot's agent with the in-memory control plane registered. */
const testAgent = fileURLToPath(new URL('../../agent/testing/main.ts', import.meta.url));
let site: NetnsSite;
let dir: string;
const procs = new Map<string, ChildProcess>();

/** status reads an agent's /status, or null while it does not answer (starting, killed). */
const status = (address: string): Promise<AgentStatus | null> =>
  fetchStatus(`${address}:7947`, 1000).catch(() => null);

async function until<T>(what: string, probe: () => Promise<T | null | false>, ms: number): Promise<T> {
  const end = performance.now() + ms;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function startAgent(name: string): void {
  const r = site.robots.find((x) => x.name === name)!;
  const log = openSync(join(dir, `${name}.log`), 'a');
  procs.set(
    name,
    spawnIn(r.netns, process.execPath, [testAgent, '--config', join(dir, `${name}.yaml`)], {
      logFile: log,
    }),
  );
}

before(() => {
  requireRoot('the agent integration test');
  site = createSite(PREFIX, SUBNET, ['r1', 'r2', 'r3']);
  dir = mkdtempSync(join(tmpdir(), 'edgectl-it-'));
  const master = randomBytes(32);
  for (const r of site.robots) {
    const keys = renderRobotKeyFile({
      master,
      site: 'it-site',
      node: r.name,
      voters: ['r1', 'r2', 'r3'],
      send: 1,
      accept: [1],
    });
    writeFileSync(join(dir, `${r.name}.keys.json`), formatRobotKeyFile(keys), { mode: 0o600 });
    const config = {
      site: { id: 'it-site' },
      node: { id: r.name, serverCapable: true },
      voters: ['r1', 'r2', 'r3'],
      profile: 'lab',
      network: { interfaces: ['eth0'], mdns: true, seeds: [] },
      stateDir: join(dir, r.name, 'state'),
      siteKeyFile: join(dir, `${r.name}.keys.json`),
      status: { listen: `${r.address}:7947` },
      controlPlane: { runtime: 'memory' },
      membership: { suspectAfterMs: 1000, deadAfterMs: 3000 },
      log: { level: 'info' },
    };
    writeFileSync(join(dir, `${r.name}.yaml`), stringify(config));
    startAgent(r.name);
  }
});

after(() => {
  for (const p of procs.values()) killGroup(p);
  if (site) destroySite(PREFIX);
  if (dir && !process.env.EDGECTL_KEEP_LOGS) rmSync(dir, { recursive: true, force: true });
  const left = listOwned(PREFIX);
  assert.deepEqual(left, { netns: [], links: [] }, 'the test leaves no namespace or link behind');
});

test('three agents find each other over mDNS, elect one leader, and re-elect after the leader is killed', async () => {
  const addr = Object.fromEntries(site.robots.map((r) => [r.name, r.address]));
  const all = async () => Promise.all(site.robots.map((r) => status(r.address)));
  try {
    const first = await until(
      'one leader, all ready, peers found over mDNS',
      async () => {
        const s = await all();
        if (s.some((x) => x === null)) return null;
        const st = s as AgentStatus[];
        const leaders = st.filter((x) => x.role === 'leader');
        const ready = st.every((x) => x.lifecycle === 'leading.serving' || x.lifecycle === 'following.ready');
        const discovered = st.every(
          (x) => x.members.length === 2 && x.members.every((m) => m.addresses.length > 0),
        );
        return leaders.length === 1 && ready && discovered ? st : null;
      },
      30_000,
    );
    const leader = first.find((x) => x.role === 'leader')!;
    for (const f of first.filter((x) => x !== leader)) {
      assert.equal(f.leader, leader.node);
      assert.equal(f.controlPlane.worker?.leader, leader.node);
      assert.equal(f.term, leader.term);
    }

    // Power loss: SIGKILL the leader's agent and everything it started.
    killGroup(procs.get(leader.node)!);
    const survivors = site.robots.filter((r) => r.name !== leader.node);
    const t0 = performance.now();
    const after = await until(
      'a new leader among the survivors, both ready',
      async () => {
        const s = await Promise.all(survivors.map((r) => status(r.address)));
        if (s.some((x) => x === null)) return null;
        const st = s as AgentStatus[];
        const l = st.find((x) => x.role === 'leader' && x.term > leader.term);
        const ready = st.every((x) => x.lifecycle === 'leading.serving' || x.lifecycle === 'following.ready');
        return l && ready && st.every((x) => x.leader === l.node) ? st : null;
      },
      20_000,
    );
    const newLeader = after.find((x) => x.role === 'leader')!;
    assert.notEqual(newLeader.node, leader.node);
    const follower = after.find((x) => x !== newLeader)!;
    assert.equal(follower.controlPlane.worker?.leader, newLeader.node);
    // The dead leader is no longer heard: suspect or dead in the survivors' view soon after.
    await until(
      'the old leader marked suspect or dead',
      async () => {
        const s = await status(addr[newLeader.node]!);
        const m = s?.members.find((x) => x.id === leader.node);
        return m && m.state !== 'alive' ? true : null;
      },
      10_000,
    );
    process.stdout.write(
      `# re-formed in ${((performance.now() - t0) / 1000).toFixed(2)} s (new leader ${newLeader.node}, term ${newLeader.term})\n`,
    );

    // Power on: the old leader restarts from its state directory and rejoins as a follower. PreVote
    // keeps it from disturbing the site: the leader and the term stay the same.
    startAgent(leader.node);
    const rejoined = await until(
      'the restarted robot follows the current leader',
      async () => {
        const s = await all();
        if (s.some((x) => x === null)) return null;
        const st = s as AgentStatus[];
        const settled = st.every(
          (x) =>
            x.leader === newLeader.node &&
            (x.lifecycle === 'leading.serving' || x.lifecycle === 'following.ready'),
        );
        return settled ? st : null;
      },
      20_000,
    );
    assert.ok(
      rejoined.every((x) => x.term === newLeader.term),
      `the term stayed ${newLeader.term}: ${rejoined.map((x) => x.term).join(',')}`,
    );

    // A clean stop (SIGTERM) of the leader hands leadership over at once: faster than any election
    // timeout (lab profile: 900 ms), and the process exits 0.
    const stopping = procs.get(newLeader.node)!;
    const exited = new Promise<number | null>((resolve) => stopping.once('exit', (code) => resolve(code)));
    const t1 = performance.now();
    killGroup(stopping, 'SIGTERM');
    const others = site.robots.filter((r) => r.name !== newLeader.node);
    const handedTo = await until(
      'a leader chosen by the handover',
      async () => {
        const s = await Promise.all(others.map((r) => status(r.address)));
        return s.find((x) => x?.role === 'leader' && x.term > newLeader.term) ?? null;
      },
      5_000,
    );
    const handoverMs = performance.now() - t1;
    assert.ok(handoverMs < 900, `handover took ${handoverMs.toFixed(0)} ms, as long as an election timeout`);
    assert.equal(await exited, 0);
    process.stdout.write(`# SIGTERM handover to ${handedTo.node} in ${handoverMs.toFixed(0)} ms\n`);
  } catch (e) {
    for (const r of site.robots) {
      try {
        process.stderr.write(
          `--- ${r.name} log (tail) ---\n${readFileSync(join(dir, `${r.name}.log`), 'utf8')
            .split('\n')
            .slice(-25)
            .join('\n')}\n`,
        );
      } catch {
        // no log
      }
    }
    throw e;
  }
});
