/**
 * A hostile mDNS flood: real agents (agent/testing/main.ts, with the systemd unit's heap limit) elect
 * a leader; then hosts on the same bridge multicast mDNS responses as fast as they can send for
 * EDGECTL_MDNS_FLOOD_SECONDS (default 60): junk PTRs of our service type with the largest TTL,
 * 60 KB TXT records, complete forged peers of other sites, and forged peers of our own site whose
 * node ids the config does not name, their A records at a victim address. A fourth robot of the site
 * starts while the flood runs.
 *
 * Asserted: every agent is alive throughout and at the end; none grew its resident memory by
 * 32 MiB or more (the caches are bounded per tier, so the flood can churn them but not grow them);
 * while the flood still runs, every early robot lists the late one at its real address and the late
 * one follows the site's leader; no forged robot is ever heard (discovery may list them: it reports
 * what is advertised, and nothing acts on it but a rare probe).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { AGENT_HEAP_FLAGS, floodScript } from '../../agent/discovery/testing/hostile-mdns.ts';
import { killGroup, requireRoot, spawnIn } from '../../lab/netns.ts';
import {
  alive,
  logTails,
  rssKb,
  settledSite,
  sleep,
  startAgent,
  startLab,
  status,
  stopLab,
  until,
  type Lab,
  type Robot,
} from './harness.ts';

const PREFIX = 'emf-';
const SUBNET = '10.77.41';
const SITE = 'mf';
const SECONDS = Number(process.env.EDGECTL_MDNS_FLOOD_SECONDS ?? 60);
const SENDERS = 2;
const RSS_GROWTH_LIMIT_KB = 32 * 1024;

let lab: Lab | undefined;

before(async () => {
  requireRoot('the mDNS flood test');
  if (!(SECONDS >= 20)) throw new Error(`EDGECTL_MDNS_FLOOD_SECONDS must be at least 20, got ${SECONDS}`);
  lab = await startLab(
    PREFIX,
    SUBNET,
    [
      {
        id: SITE,
        keyHex: randomBytes(32).toString('hex'),
        robots: ['r1', 'r2', 'r3', 'r4'].map((n) => ({ ns: n, node: n })),
      },
    ],
    Array.from({ length: SENDERS }, (_, i) => `flood${i + 1}`),
    { start: false },
  );
});

after(() => stopLab(lab, PREFIX));

/**
 * Does `r`'s /status list every robot of `others` at its own address? Forged robots may be listed
 * too (discovery reports what is advertised); none of them may ever have been heard.
 */
async function seesAll(r: Robot, others: readonly Robot[]): Promise<boolean> {
  const s = await status(r);
  if (!s) return false;
  assert.ok(
    !s.members.some((m) => m.id.startsWith('fake-') && m.state === 'alive'),
    `${r.ns}: a forged robot was heard`,
  );
  return others.every((o) => s.members.find((m) => m.id === o.node)?.addresses.includes(o.address));
}

test(`a line-rate mDNS flood for ${SECONDS} s: every agent lives, memory stays bounded, a robot that starts during it is found`, async (t) => {
  const l = lab!;
  const [early, late] = [l.robots.slice(0, 3), l.robots[3]!];
  try {
    for (const r of early) startAgent(l, r, AGENT_HEAP_FLAGS);
    const settled = await until('one leader, all ready', () => settledSite(early), 60_000);
    const leader = settled.find((x) => x.role === 'leader')!.node;
    const pid = (r: Robot): number => l.procs.get(r.ns)!.pid!;
    const rssBefore = new Map(early.map((r) => [r.ns, rssKb(pid(r))]));

    const floods = l.others.map((h) =>
      spawnIn(h.netns, process.execPath, [
        '-e',
        floodScript({
          from: h.address,
          kinds: ['junk-ptr', 'big-txt', 'other-site', 'forged-site-peer'],
          site: SITE,
          variants: 512,
          durationMs: SECONDS * 1000,
          victimAddress: `${SUBNET}.200`,
        }),
      ]),
    );
    const floodEnds = performance.now() + SECONDS * 1000;
    const maxRss = new Map(rssBefore);
    const sample = setInterval(() => {
      for (const r of l.robots)
        if (l.procs.has(r.ns) && alive(pid(r)))
          maxRss.set(r.ns, Math.max(maxRss.get(r.ns) ?? 0, rssKb(pid(r))));
    }, 1000);
    try {
      await sleep(Math.min(10_000, (SECONDS * 1000) / 4));
      for (const f of floods) assert.equal(f.exitCode, null, 'the flood is running');
      startAgent(l, late, AGENT_HEAP_FLAGS);
      await until(
        'every early robot to list the late one at its address, and the late one to follow the leader',
        async () => {
          const found = await Promise.all(early.map((r) => seesAll(r, [late])));
          const st = await status(late);
          return found.every(Boolean) && st?.lifecycle === 'following.ready' && st.leader === leader;
        },
        Math.max(1000, floodEnds - performance.now() - 1000),
      );
      const foundAfterS = (SECONDS * 1000 - (floodEnds - performance.now())) / 1000;
      t.diagnostic(`the late robot was found by all ${foundAfterS.toFixed(1)} s into the flood`);
      assert.ok(performance.now() < floodEnds, 'found while the flood was still running');
      for (const f of floods) assert.equal(f.exitCode, null, 'the flood was still running');
      await sleep(Math.max(0, floodEnds - performance.now()) + 500);
    } finally {
      clearInterval(sample);
      for (const f of floods) killGroup(f);
    }
    for (const r of l.robots) assert.ok(alive(pid(r)), `${r.ns} is alive after the flood`);
    for (const r of early) {
      const grew = maxRss.get(r.ns)! - rssBefore.get(r.ns)!;
      t.diagnostic(`${r.ns}: RSS ${rssBefore.get(r.ns)} kB before, at most ${maxRss.get(r.ns)} kB during`);
      assert.ok(grew < RSS_GROWTH_LIMIT_KB, `${r.ns} grew its RSS by ${grew} kB`);
    }
    for (const r of early) assert.ok(await seesAll(r, [late]), `${r.ns} still lists the late robot`);
  } catch (e) {
    const views = await Promise.all(
      l.robots.map(async (r) => {
        const st = await status(r);
        const seen = st?.members.map((m) => `${m.id}@${m.addresses.join('|') || '-'}`).join(' ');
        return `${r.ns}: ${st ? `${st.role} ${st.lifecycle}; sees ${seen}` : 'no /status'}`;
      }),
    );
    throw new Error(`${(e as Error).message}\n${views.join('\n')}\n${logTails(l)}`, { cause: e });
  }
});
