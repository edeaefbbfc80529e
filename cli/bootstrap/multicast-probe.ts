/**
 * The multicast probe between robots: mDNS is how agents find each other, and many Wi-Fi networks
 * filter multicast (client isolation, IGMP snooping without a querier). After the install, every
 * robot at once joins a probe group on its site address, announces itself a few times and lists
 * whom it heard; the judgement is pure. A pair that cannot hear each other needs static seeds.
 */
import type { CommandRunner } from '../../agent/exec/runner.ts';
import { installPath, robotIp, type Inventory } from './inventory.ts';
import { PATHS } from './plan.ts';

export const PROBE_GROUP = '239.255.77.77';
export const PROBE_PORT = 7949;

// argv: [site, robot, its address, duration ms]. Prints the robot names it heard, as JSON.
const PROBE_SCRIPT = `
const dgram = require('node:dgram');
const [site, me, addr, ms] = process.argv.slice(1);
const heard = new Set();
const s = dgram.createSocket({ type: 'udp4', reuseAddr: true });
s.on('message', (m) => {
  const [tag, st, who] = m.toString().split(' ');
  if (tag === 'edgectl-probe' && st === site && who !== me) heard.add(who);
});
s.bind(${PROBE_PORT}, () => {
  s.addMembership('${PROBE_GROUP}', addr);
  s.setMulticastInterface(addr);
  s.setMulticastTTL(1);
  const hello = Buffer.from('edgectl-probe ' + site + ' ' + me);
  const t = setInterval(() => s.send(hello, ${PROBE_PORT}, '${PROBE_GROUP}'), 250);
  setTimeout(() => { clearInterval(t); s.close(); process.stdout.write(JSON.stringify([...heard].sort())); }, Number(ms));
});`;

export interface ProbeResult {
  readonly ok: boolean;
  /** Robots that did not hear another robot: the pairs mDNS cannot join. */
  readonly unheard: readonly { readonly robot: string; readonly missing: readonly string[] }[];
  /** Robots whose probe could not run at all. */
  readonly failed: readonly { readonly robot: string; readonly error: string }[];
}

/** judgeProbe: every robot heard every other one. Pure. */
export function judgeProbe(
  robots: readonly string[],
  heard: Readonly<Record<string, readonly string[] | { readonly error: string }>>,
): ProbeResult {
  const unheard: { robot: string; missing: string[] }[] = [];
  const failed: { robot: string; error: string }[] = [];
  for (const r of robots) {
    const h = heard[r];
    if (!h || !Array.isArray(h)) {
      failed.push({ robot: r, error: h && 'error' in h ? h.error : 'no result' });
      continue;
    }
    const missing = robots.filter((o) => o !== r && !h.includes(o));
    if (missing.length) unheard.push({ robot: r, missing });
  }
  return { ok: unheard.length === 0 && failed.length === 0, unheard, failed };
}

/** probeMulticast runs the probe on every robot at once, over the robots' CommandRunners. */
export async function probeMulticast(
  inv: Inventory,
  runners: ReadonlyMap<string, CommandRunner>,
  durationMs = 2500,
): Promise<ProbeResult> {
  const robots = inv.robots.map((r) => r.name);
  const results = await Promise.all(
    inv.robots.map(async (r): Promise<[string, readonly string[] | { error: string }]> => {
      try {
        const out = await runners
          .get(r.name)!
          .run(
            [
              installPath(inv, r.name, PATHS.node),
              '-e',
              PROBE_SCRIPT,
              inv.site.id,
              r.name,
              robotIp(r),
              String(durationMs),
            ],
            {
              timeoutMs: durationMs + 15_000,
            },
          );
        if (out.code !== 0)
          return [r.name, { error: out.stderr.trim().split('\n').at(-1) ?? `exit ${out.code}` }];
        return [r.name, JSON.parse(out.stdout) as string[]];
      } catch (e) {
        return [r.name, { error: (e as Error).message }];
      }
    }),
  );
  return judgeProbe(robots, Object.fromEntries(results));
}
