/**
 * Other sites: two sites, `alpha` and `bravo`, with different site ids and keys, three
 * agents each, share one bridge and find their peers over real mDNS. Both name their robots r1, r2,
 * r3, the worst case for mixing them up. Asserted:
 *   - each site elects its own leader, from its own robots, and its robots agree on it;
 *   - no robot lists a robot of the other site as a member: every member address is one of its own
 *     site's addresses, and it has exactly its two site peers;
 *   - the other site's datagrams are rejected. Discovery filters by site, so the agents themselves
 *     never address the other site; the test therefore re-sends, byte for byte, election datagrams
 *     captured from one site to the robots of the other (`wrong-site`), and sends frames that carry
 *     the receiving site's id but are MACed with the other site's key (`bad-mac`), and checks the drop
 *     counters count exactly those, while both leaders stay.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { AgentStatus } from '../../agent/agent.ts';
import { siteKeyrings } from '../../agent/site-key.ts';
import { encode } from '../../agent/transport/codec.ts';
import { requireRoot } from '../../lab/netns.ts';
import { datagramsOf, startCapture } from './capture.ts';
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
  type Robot,
  type SiteSpec,
} from './harness.ts';

const PREFIX = 'esx-';
const SUBNET = '10.77.40';
const NODES = ['r1', 'r2', 'r3'];
const SITES: SiteSpec[] = ['alpha', 'bravo'].map((id) => ({
  id,
  keyHex: randomBytes(32).toString('hex'),
  robots: NODES.map((node) => ({ ns: `${id[0]}${node.slice(1)}`, node })),
}));
/** Cross-site datagrams the test sends to each robot, of each kind. */
const INJECTED = 50;

let lab: Lab | undefined;

before(async () => {
  requireRoot('the other-sites test');
  lab = await startLab(PREFIX, SUBNET, SITES);
});

after(() => stopLab(lab, PREFIX));

const robotsOf = (l: Lab, site: string): Robot[] => l.robots.filter((r) => r.site === site);

async function bothSettled(l: Lab): Promise<Map<string, AgentStatus[]> | null> {
  const out = new Map<string, AgentStatus[]>();
  for (const s of SITES) {
    const st = await settledSite(robotsOf(l, s.id));
    if (!st) return null;
    out.set(s.id, st);
  }
  return out;
}

test('two sites with different keys on one bridge elect their own leaders and never see each other as members', async () => {
  const l = lab!;
  try {
    const settled = await until(
      'both sites to elect a leader and find their peers',
      () => bothSettled(l),
      40_000,
    );
    const leaders = new Map<string, { node: string; term: number }>();
    for (const s of SITES) {
      const mine = robotsOf(l, s.id);
      const own = new Set(mine.map((r) => r.address));
      const st = settled.get(s.id)!;
      const leader = st.find((x) => x.role === 'leader')!;
      leaders.set(s.id, { node: leader.node, term: leader.term });
      for (const [i, x] of st.entries()) {
        const r = mine[i]!;
        assert.equal(x.site, s.id, `${r.ns} is in site ${s.id}`);
        assert.equal(x.leader, leader.node, `${r.ns} follows its own site's leader`);
        assert.deepEqual(
          x.members.map((m) => m.id).sort(),
          NODES.filter((n) => n !== r.node),
          `${r.ns}'s members are its two site peers`,
        );
        for (const m of x.members)
          for (const a of m.addresses)
            assert.ok(own.has(a), `${r.ns} (${s.id}) lists ${m.id} at ${a}, an address of the other site`);
      }
    }

    // Election traffic of each site, to re-send to the other.
    const cap = await startCapture(l.net.bridge, join(l.dir, 'sites.pcap'), [
      'udp',
      'port',
      String(ELECTION_PORT),
    ]);
    await sleep(1500);
    const captured = datagramsOf(await cap.stop());
    const framesFrom = (site: string) => {
      const addrs = new Set(robotsOf(l, site).map((r) => r.address));
      return captured.filter((d) => addrs.has(d.src)).map((d) => d.payload);
    };
    for (const s of SITES) assert.ok(framesFrom(s.id).length >= INJECTED, `captured ${s.id} frames`);
    // Nothing crossed between the sites by itself.
    for (const d of captured) {
      const from = l.robots.find((r) => r.address === d.src);
      const to = l.robots.find((r) => r.address === d.dst);
      if (from && to) assert.equal(from.site, to.site, `${from.ns} sent an election datagram to ${to.ns}`);
    }

    const before = new Map(
      await Promise.all(l.robots.map(async (r) => [r.ns, (await status(r, 5000))!] as const)),
    );
    const sock = createSocket('udp4');
    try {
      for (const s of SITES) {
        const other = SITES.find((x) => x !== s)!;
        const otherFrames = framesFrom(other.id).slice(0, INJECTED);
        for (const r of robotsOf(l, s.id)) {
          // The other site's frames, unchanged: dropped at the site tag.
          for (const f of otherFrames) await send(sock, f, r.address);
          // Frames naming this site and its robots, MACed with the key the other site's master
          // gives the same pair: dropped at the MAC.
          const peers = NODES.filter((n) => n !== r.node);
          const foreign = siteKeyrings(Buffer.from(other.keyHex, 'hex'), s.id, NODES, peers);
          for (let i = 0; i < INJECTED; i++) {
            const from = peers[i % peers.length]!;
            const f = encode(
              {
                type: 'vote',
                from,
                to: r.node,
                term: 1000 + i,
                lastIndex: 99,
                lastTerm: 999,
                transfer: true,
              },
              { siteId: s.id, key: foreign.get(from)!.sendKey(r.node)!, incarnation: 7, counter: i },
            );
            await send(sock, f, r.address);
          }
        }
      }
    } finally {
      sock.close();
    }
    const lines: string[] = [];
    for (const r of l.robots) {
      const b = before.get(r.ns)!;
      const a = await until(
        `${r.ns} to count the cross-site datagrams`,
        async () => {
          const s = await status(r, 5000);
          return s && s.transport.dropped['wrong-site'] - b.transport.dropped['wrong-site'] >= INJECTED
            ? s
            : null;
        },
        10_000,
      );
      assert.equal(
        a.transport.dropped['wrong-site'] - b.transport.dropped['wrong-site'],
        INJECTED,
        `${r.ns}: wrong-site`,
      );
      assert.equal(
        a.transport.dropped['bad-mac'] - b.transport.dropped['bad-mac'],
        INJECTED,
        `${r.ns}: bad-mac`,
      );
      const other = Object.entries(a.transport.dropped)
        .filter(([k]) => k !== 'wrong-site' && k !== 'bad-mac')
        .reduce((n, [k, v]) => n + v - b.transport.dropped[k as keyof typeof b.transport.dropped], 0);
      assert.equal(other, 0, `${r.ns}: no other drops`);
      const leader = leaders.get(r.site)!;
      assert.equal(a.leader, leader.node, `${r.ns} still follows ${leader.node}`);
      assert.equal(a.term, leader.term, `${r.ns} is still at term ${leader.term}`);
      lines.push(
        `# ${r.site}/${r.node} (${r.ns}): leader ${a.leader}@${a.term}, members ${a.members.map((m) => `${m.id}@${m.addresses.join('|')}`).join(' ')}; ` +
          `dropped wrong-site ${a.transport.dropped['wrong-site']}, bad-mac ${a.transport.dropped['bad-mac']}`,
      );
    }
    process.stdout.write(`${lines.join('\n')}\n`);
  } catch (e) {
    process.stderr.write(`${logTails(lab)}\n`);
    throw e;
  }
});

function send(sock: ReturnType<typeof createSocket>, buf: Buffer, address: string): Promise<void> {
  return new Promise((resolve, reject) =>
    sock.send(buf, ELECTION_PORT, address, (err) => (err ? reject(err) : resolve())),
  );
}
