/**
 * Forged mDNS peers: real agents (agent/testing/main.ts, the robot's agent with the in-memory control plane) elect a leader; then a host on the bridge
 * advertises 500 made-up robots of the site, every one at one victim address, again and again, and
 * one more advertisement that says voter r2 now lives at the victim address (a fresher TXT than
 * r2's own). Before, the leader made every made-up robot a learner and heartbeated the victim
 * hundreds of times a second, and the forged r2 took r2's datagrams until r2 spoke again.
 *
 * Asserted: the victim receives less than one datagram a second from the whole site while the
 * forgeries go on (a made-up robot is at most a rarely probed candidate, one per address); the
 * leader's address for r2 never leaves r2's real address; the site keeps its leader.
 */
import assert from 'node:assert/strict';
import { openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { floodScript, udpCounterScript } from '../../agent/discovery/testing/hostile-mdns.ts';
import { killGroup, requireRoot, spawnIn } from '../../lab/netns.ts';
import {
  ELECTION_PORT,
  logTails,
  settledSite,
  sleep,
  startLab,
  status,
  stopLab,
  until,
  type Lab,
} from './harness.ts';

const PREFIX = 'efp-';
const SUBNET = '10.77.42';
const SITE = 'fp';
const WINDOW_S = Number(process.env.EDGECTL_FORGED_PEERS_SECONDS ?? 30);

let lab: Lab | undefined;

before(async () => {
  requireRoot('the forged-peers test');
  lab = await startLab(
    PREFIX,
    SUBNET,
    [
      {
        id: SITE,
        keyHex: randomBytes(32).toString('hex'),
        robots: ['r1', 'r2', 'r3'].map((n) => ({ ns: n, node: n })),
      },
    ],
    ['forger', 'victim'],
  );
});

after(() => stopLab(lab, PREFIX));

test(`500 forged peers at one victim address for ${WINDOW_S} s: the site sends it next to nothing, and no voter's address moves`, async (t) => {
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
    const first = await until('one leader, all ready', () => settledSite(l.robots), 60_000);
    const leader = first.find((s) => s.role === 'leader')!;
    const r2 = l.robots.find((r) => r.node === 'r2')!;
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
    while (performance.now() < end) {
      await forge();
      await forge(['r2']); // "r2 is at the victim address now", fresher than r2's own TXT
      rounds++;
      const views = await Promise.all(l.robots.map((r) => status(r)));
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
    assert.ok(got < WINDOW_S, `the victim received ${got} datagrams in ${WINDOW_S} s`);
    // Every robot still follows the same leader at the same term (the made-up robots may still be
    // listed as advertised: discovery reports them, nothing acts on them).
    const views = await Promise.all(l.robots.map((r) => status(r)));
    for (const v of views) {
      assert.ok(v, 'every robot answers /status');
      assert.equal(v.leader, leader.node, `${v.node} follows the same leader`);
      assert.equal(v.term, leader.term, `${v.node} is at the same term`);
      assert.ok(
        !v.members.some((m) => m.id.startsWith('fake-') && m.state === 'alive'),
        'no made-up robot was ever heard',
      );
    }
  } catch (e) {
    throw new Error(`${(e as Error).message}\n${logTails(l)}`, { cause: e });
  } finally {
    killGroup(counter);
  }
});
