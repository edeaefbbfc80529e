/**
 * What the lab integration tests share: waiting for a lab to reach a state, and checking that
 * `lab down` left nothing behind.
 */
import assert from 'node:assert/strict';
import { leftovers, observeLab, type LabObservation, type LabState } from '../../lab/lab.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type RobotStatus = LabObservation['robots'][number]['status'];

/**
 * untilLab observes the lab every 250 ms until `pred` holds, and returns that observation. On a
 * timeout the error names what it waited for and, per robot, its role, lifecycle and `detail`.
 */
export async function untilLab(
  state: LabState,
  what: string,
  pred: (o: LabObservation) => boolean,
  opts: { ms?: number; detail?: (s: RobotStatus) => unknown } = {},
): Promise<LabObservation> {
  const end = Date.now() + (opts.ms ?? 90_000);
  for (;;) {
    const o = await observeLab(state);
    if (pred(o)) return o;
    if (Date.now() > end) {
      const robots = o.robots.map((r) => [
        r.name,
        r.status?.role,
        r.status?.lifecycle,
        ...(opts.detail ? [opts.detail(r.status)] : []),
      ]);
      throw new Error(`timed out waiting for ${what}: ${JSON.stringify(robots)}`);
    }
    await sleep(250);
  }
}

/** assertNoLeftovers: no namespace, link, nftables table, process or cgroup of the lab is left. */
export function assertNoLeftovers(site: string, prefix: string): void {
  assert.deepEqual(leftovers(site, prefix), {
    netns: [],
    links: [],
    nftTables: [],
    processes: [],
    cgroups: [],
  });
}
