/**
 * Forged mDNS peers: real agents (agent/testing/main.ts, the robot's agent with the in-memory control plane) elect a leader; then a host on the bridge
 * advertises 500 made-up robots of the site, every one at one victim address, again and again, and
 * one more advertisement that says voter r2 now lives at the victim address (a fresher TXT than
 * r2's own). At first the leader made every made-up robot a learner and heartbeated the victim
 * hundreds of times a second; then made-up robots were rarely probed candidates (15–20 datagrams
 * in 30 s). Now learners are the site's membership (docs/protocol.md, "Membership"): the workers
 * the configs name, then what the site log commits.
 *
 * Asserted: the victim receives no datagram at all from the site while the forgeries go on; every
 * voter counts the made-up robots as ignored; the leader's address for r2 never leaves r2's real
 * address; the site keeps its leader. Meanwhile the named worker w1 is heartbeated, and w2, running
 * but named by no config, becomes a learner the moment an operator commits a membership naming
 * it (what `edgectl robot add` does), with no restart.
 */
import assert from 'node:assert/strict';
import { openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import type { MembersView } from '../../agent/agent.ts';
import { floodScript, udpCounterScript } from '../../agent/discovery/testing/hostile-mdns.ts';
import { signMembers } from '../../agent/operator-auth.ts';
import { operatorKey } from '../../agent/site-key.ts';
import { membersDigest } from '../../agent/site/members.ts';
import { killGroup, requireRoot, spawnIn } from '../../lab/netns.ts';
import {
  ELECTION_PORT,
  logTails,
  sleep,
  startLab,
  status,
  STATUS_PORT,
  stopLab,
  until,
  type Lab,
  type Robot,
} from './harness.ts';

const PREFIX = 'efp-';
const SUBNET = '10.77.42';
const SITE = 'fp';
const WINDOW_S = Number(process.env.EDGECTL_FORGED_PEERS_SECONDS ?? 30);
const MASTER = randomBytes(32);
const VOTERS = ['r1', 'r2', 'r3'];

let lab: Lab | undefined;

before(async () => {
  requireRoot('the forged-peers test');
  lab = await startLab(
    PREFIX,
    SUBNET,
    [
      {
        id: SITE,
        keyHex: MASTER.toString('hex'),
        robots: [
          ...VOTERS.map((n) => ({ ns: n, node: n })),
          { ns: 'w1', node: 'w1', worker: 'named' as const },
          { ns: 'w2', node: 'w2', worker: 'later' as const },
        ],
      },
    ],
    ['forger', 'victim'],
  );
});

after(() => stopLab(lab, PREFIX));

/** One leader that the given robots all follow at one term, every one ready; else null. */
async function settled(robots: readonly Robot[]) {
  const st = await Promise.all(robots.map((r) => status(r)));
  if (st.some((x) => x === null)) return null;
  const leaders = st.filter((x) => x!.role === 'leader');
  if (leaders.length !== 1) return null;
  const l = leaders[0]!;
  const ok = st.every(
    (x) =>
      x!.leader === l.node &&
      x!.term === l.term &&
      (x!.lifecycle === 'leading.serving' || x!.lifecycle === 'following.ready'),
  );
  return ok ? l : null;
}

/** What `edgectl robot add` does once the robot is installed: commit a membership naming it. */
async function commitMembers(leader: Robot, workers: string[]): Promise<number> {
  const url = `http://${leader.address}:${STATUS_PORT}/site/members`;
  const view = (await (await fetch(url)).json()) as MembersView;
  const baseVersion = view.committed?.version ?? 0;
  const mac = signMembers(operatorKey(MASTER, 1), {
    site: SITE,
    baseVersion,
    digest: membersDigest(workers),
  });
  const res = await fetch(url, {
    method: 'POST',
    body: JSON.stringify({ site: SITE, baseVersion, workers, mac }),
  });
  const out = (await res.json()) as { kind?: string; version?: number };
  assert.equal(res.status, 200, JSON.stringify(out));
  assert.equal(out.kind, 'committed');
  return out.version!;
}

test(`500 forged peers at one victim address for ${WINDOW_S} s: the site sends it nothing and no voter's address moves; an added robot becomes a learner`, async (t) => {
  const l = lab!;
  const [forger, victim] = l.others as [(typeof l.others)[number], (typeof l.others)[number]];
  const counterLog = join(l.dir, 'victim.log');
  const counter = spawnIn(
    victim.netns,
    process.execPath,
    ['-e', udpCounterScript({ address: victim.address, port: ELECTION_PORT })],
    {
      logFile: openSync(counterLog, 'a'),
    },
  );
  const received = (): number => {
    const m = [...readFileSync(counterLog, 'utf8').matchAll(/count (\d+)/g)].at(-1);
    return m ? Number(m[1]) : -1;
  };
  try {
    const byNode = (n: string) => l.robots.find((r) => r.node === n)!;
    const named = l.robots.filter((r) => r.node !== 'w2');
    const leader = await until('one leader; the voters and w1 ready', () => settled(named), 60_000);
    const leaderRobot = byNode(leader.node);
    const r2 = byNode('r2');
    const w2 = byNode('w2');
    const w2Before = await status(w2);
    assert.equal(w2Before?.leader ?? null, null, 'w2, named by no config, hears no leader');
    await until('the victim counter', async () => received() >= 0, 5000);
    const before = received();
    const forge = (nodeIds?: string[]) =>
      new Promise<void>((done) => {
        const p = spawnIn(forger.netns, process.execPath, [
          '-e',
          floodScript({
            from: forger.address,
            kinds: ['forged-site-peer'],
            site: SITE,
            variants: nodeIds ? 1 : 500,
            paceMs: 1,
            victimAddress: victim.address,
            ...(nodeIds ? { nodeIds } : {}),
          }),
        ]);
        p.on('exit', () => done());
      });
    const end = performance.now() + WINDOW_S * 1000;
    let rounds = 0;
    let version = 0;
    while (performance.now() < end) {
      await forge();
      await forge(['r2']); // "r2 is at the victim address now", fresher than r2's own TXT
      rounds++;
      // edgectl robot add w2, while the forgeries go on.
      if (rounds === 1) version = await commitMembers(leaderRobot, ['w1', 'w2']);
      // The voters' view: they have heard r2's own datagrams. A worker hears only the leader, so
      // its address for a follower stays a hint it sends nothing to, until that robot leads and
      // its own authenticated Append places it.
      const views = await Promise.all(l.robots.filter((r) => VOTERS.includes(r.node)).map((r) => status(r)));
      for (const v of views) {
        const seen = v?.members.find((m) => m.id === 'r2');
        if (v && seen) assert.equal(seen.addresses[0], r2.address, `${v.node}'s first address for r2`);
      }
      await sleep(2000);
    }
    await sleep(1000);
    const got = received() - before;
    t.diagnostic(
      `${rounds} rounds of 500 forged peers + a forged r2; the victim received ${got} datagrams in ${WINDOW_S} s`,
    );
    assert.equal(got, 0, `the victim received ${got} datagrams in ${WINDOW_S} s`);
    // Every robot, w2 included, follows the same leader at the same term (the made-up robots may
    // still be listed as advertised: discovery reports them, nothing acts on them).
    const after = await until('w2 to follow the leader too', () => settled(l.robots), 30_000);
    assert.equal(after.node, leader.node);
    assert.equal(after.term, leader.term);
    assert.deepEqual(after.learners, { membersVersion: version, learners: ['w1', 'w2'] });
    const views = await Promise.all(l.robots.map((r) => status(r)));
    for (const v of views) {
      assert.ok(v, 'every robot answers /status');
      assert.ok(
        !v.members.some((m) => m.id.startsWith('fake-') && m.state === 'alive'),
        'no made-up robot was ever heard',
      );
      if (VOTERS.includes(v.node))
        assert.ok(
          v.discovery.ignoredUnknownRobots! >= 500,
          `${v.node} counted ${v.discovery.ignoredUnknownRobots} made-up robots as ignored`,
        );
    }
    const seen = after.members.filter((m) => m.id === 'w1' || m.id === 'w2').map((m) => m.state);
    assert.deepEqual(seen, ['alive', 'alive'], 'the leader hears both workers');
    t.diagnostic(
      `leader ${after.node}: learners ${after.learners?.learners.join(', ')} (membership version ${version}); ignoredUnknownRobots ${after.discovery.ignoredUnknownRobots}`,
    );
  } catch (e) {
    throw new Error(`${(e as Error).message}\n${logTails(l)}`, { cause: e });
  } finally {
    killGroup(counter);
  }
});
