/**
 * The power switch of a real lab node (lab/node/real-node.ts): its cgroups and processes, found from
 * the machine alone, so `lab fault power-off` and `lab down` can end a node whose agent is dead.
 * No Kubernetes client here: `lab fault` and `lab down` load this and must start fast.
 */
import { existsSync, readdirSync, readFileSync, readlinkSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';

/** The cgroup hierarchies mounted under `base` (v1 controllers, and v2's if mounted). */
function hierarchiesUnder(base: string): string[] {
  if (existsSync(join(base, 'cgroup.procs'))) return [base];
  try {
    return readdirSync(base, { withFileTypes: true })
      .filter((e) => e.isDirectory() && existsSync(join(base, e.name, 'cgroup.procs')))
      .map((e) => join(base, e.name));
  } catch {
    return [];
  }
}

/**
 * The machine's cgroup hierarchies, seen from the root of a process in the host's mount namespace
 * (`/proc/<pid>/root`), or from this process's root (''). An agent runs under `ip netns exec`,
 * whose fresh sysfs hides them; PID 1 is not readable on these machines, so `lab up` leaves a
 * process in the host's mount namespace for the agents to look through (docs/real-node.md).
 */
export function cgroupHierarchies(root = ''): string[] {
  return hierarchiesUnder(`${root}/sys/fs/cgroup`);
}

function cgroupDirsBottomUp(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true }))
    if (e.isDirectory()) out.push(...cgroupDirsBottomUp(join(dir, e.name)));
  out.push(dir);
  return out;
}

/** cgroupPids lists every process in a cgroup subtree of one hierarchy. */
export function cgroupPids(dir: string): number[] {
  const pids: number[] = [];
  for (const d of cgroupDirsBottomUp(dir)) {
    try {
      for (const l of readFileSync(join(d, 'cgroup.procs'), 'utf8').split('\n')) if (l) pids.push(Number(l));
    } catch {
      // removed meanwhile
    }
  }
  return pids;
}

export function killAll(pids: Iterable<number>): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

/** processesInMountNs lists the processes whose mount namespace is the holder's. */
export function processesInMountNs(holderPid: number): number[] {
  let ns: string;
  try {
    ns = readlinkSync(`/proc/${holderPid}/ns/mnt`);
  } catch {
    return [];
  }
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (readlinkSync(`/proc/${e}/ns/mnt`) === ns) out.push(Number(e));
    } catch {
      // exited
    }
  }
  return out;
}

/** One round: kill every process in the cgroups under `roots`, then rmdir them, deepest first. */
function killAndRemoveOnce(roots: readonly string[]): string[] {
  const left: string[] = [];
  for (const r of roots) {
    killAll(cgroupPids(r));
    for (const d of cgroupDirsBottomUp(r)) {
      try {
        rmdirSync(d);
      } catch {
        if (existsSync(d)) left.push(d);
      }
    }
  }
  return left;
}

/**
 * removeCgroups kills what is left in a cgroup root in every hierarchy and removes its
 * directories, deepest first. Returns the directories it could not remove.
 */
export async function removeCgroups(cgroupRoot: string, root = ''): Promise<string[]> {
  const roots = cgroupHierarchies(root).map((h) => join(h, cgroupRoot));
  let left: string[] = [];
  for (let attempt = 0; attempt < 50; attempt++) {
    left = killAndRemoveOnce(roots);
    if (left.length === 0) return [];
    await new Promise((r) => setTimeout(r, 100));
  }
  return left;
}

/** The file in a node's directory naming its holder and cgroup root. */
export const NODE_PIDS_FILE = 'node-pids.json';

/**
 * powerOffRealNode ends a node at once, as a power loss does, from its directory alone (the agent
 * that started it may be dead): SIGKILL to every process in its cgroups (the pods), in the holder's
 * mount namespace (containerd, kubelet, shims) and to the holder. Synchronous, so it lands in the
 * same instant as the robot's agent; the empty cgroups are removed by removeCgroups, later.
 * Returns whether a node was there.
 */
export function powerOffRealNode(dir: string): boolean {
  let rec: { holderPid: number; cgroupRoot: string };
  try {
    rec = JSON.parse(readFileSync(join(dir, NODE_PIDS_FILE), 'utf8')) as typeof rec;
  } catch {
    return false;
  }
  // The holder sleeps in a mount namespace of its own: a reused PID in ours is not it (PID 1's
  // namespace is not readable on these machines).
  let holderAlive = false;
  try {
    holderAlive =
      readFileSync(`/proc/${rec.holderPid}/cmdline`, 'utf8').startsWith('sleep') &&
      readlinkSync(`/proc/${rec.holderPid}/ns/mnt`) !== readlinkSync('/proc/self/ns/mnt');
  } catch {
    // gone
  }
  const pids = new Set<number>();
  for (const h of cgroupHierarchies()) for (const p of cgroupPids(join(h, rec.cgroupRoot))) pids.add(p);
  if (holderAlive) {
    for (const p of processesInMountNs(rec.holderPid)) pids.add(p);
    pids.add(rec.holderPid);
  }
  pids.delete(process.pid);
  killAll(pids);
  return true;
}

/**
 * removeCgroupsSync is removeCgroups for `lab down`, which is synchronous: a few rounds of kill and
 * rmdir, 100 ms apart. Returns the directories it could not remove.
 */
export function removeCgroupsSync(cgroupRoot: string, rounds = 30): string[] {
  const roots = cgroupHierarchies().map((h) => join(h, cgroupRoot));
  let left: string[] = [];
  for (let i = 0; i < rounds; i++) {
    left = killAndRemoveOnce(roots);
    if (left.length === 0) return [];
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
  }
  return left;
}

/** removeNodeCgroups removes the cgroups of the node that lived in `dir` (after powerOffRealNode). */
export async function removeNodeCgroups(dir: string): Promise<string[]> {
  try {
    const rec = JSON.parse(readFileSync(join(dir, NODE_PIDS_FILE), 'utf8')) as { cgroupRoot: string };
    return await removeCgroups(rec.cgroupRoot);
  } catch {
    return [];
  }
}
