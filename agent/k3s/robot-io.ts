/**
 * What the k3s runtime reads on its robot, through the same CommandRunner it runs plans with:
 * readiness probes and the snapshot files it holds.
 * The parsing is pure and exported for tests; the reads are thin.
 */
import type { CommandRunner } from '../exec/runner.ts';
import type { LeaderEndpoint } from '../control-plane/runtime.ts';
import { K3S_BIN, KUBELET_KUBECONFIG, LOCAL_SNAPSHOT_DIR, RECEIVED_SNAPSHOT_DIR } from './paths.ts';
import { parseSha256sum, type HeldSnapshot } from './snapshots.ts';

/**
 * K3sProbes: readiness, injectable so tests (and the lab) can answer for k3s.
 * - serverReady: the local API server answers /readyz with `ok`.
 * - workerReady: this robot's Node is Ready on the leader's server, with a heartbeat from this join
 *   on (`since`, unix ms, the robot's own clock, which is also the kubelet's): a Node restored from a
 *   snapshot can say Ready before its kubelet is back.
 */
export interface K3sProbes {
  serverReady(): Promise<boolean>;
  workerReady(leader: LeaderEndpoint, since: number): Promise<boolean>;
}

const READY_JSONPATH =
  'jsonpath={.status.conditions[?(@.type=="Ready")].status} {.status.conditions[?(@.type=="Ready")].lastHeartbeatTime}';

/** runnerProbes: the probes of a real robot, through `k3s kubectl`. */
export function runnerProbes(runner: CommandRunner, nodeName: string): K3sProbes {
  return {
    async serverReady() {
      const r = await runner.run([K3S_BIN, 'kubectl', 'get', '--raw', '/readyz'], { timeoutMs: 10_000 });
      return r.code === 0 && r.stdout.trim() === 'ok';
    },
    async workerReady(_leader, since) {
      // The kubelet's own kubeconfig goes through the agent's load balancer to the leader; the node
      // authorizer lets a node read its own Node.
      const r = await runner.run(
        [
          K3S_BIN,
          'kubectl',
          '--kubeconfig',
          KUBELET_KUBECONFIG,
          'get',
          'node',
          nodeName,
          '-o',
          READY_JSONPATH,
        ],
        { timeoutMs: 10_000 },
      );
      return r.code === 0 && nodeReadySince(r.stdout, since);
    },
  };
}

/** nodeReadySince reads `<status> <lastHeartbeatTime>` and says whether it is Ready from `since` on. */
export function nodeReadySince(stdout: string, since: number): boolean {
  const [status, heartbeat] = stdout.trim().split(/\s+/);
  const at = Date.parse(heartbeat ?? '');
  // The API server keeps heartbeats at second precision.
  return status === 'True' && Number.isFinite(at) && at >= Math.floor(since / 1000) * 1000;
}

/** listSnapshotDir: file names in a snapshot directory (none if it is missing). */
export async function listSnapshotDir(runner: CommandRunner, dir: string): Promise<string[]> {
  const r = await runner.run(['ls', '-1', dir]);
  return r.code === 0
    ? r.stdout
        .split('\n')
        .map((l) => l.trim())
        .filter(Boolean)
    : [];
}

/** fileFacts: a file's SHA-256 and size, computed on the robot. */
export async function fileFacts(
  runner: CommandRunner,
  path: string,
): Promise<{ sha256: string; size: number } | null> {
  const sum = parseSha256sum((await runner.run(['sha256sum', path], { timeoutMs: 120_000 })).stdout);
  const st = await runner.run(['stat', '-c', '%s', path]);
  const size = Number.parseInt(st.stdout.trim(), 10);
  return sum && st.code === 0 && Number.isInteger(size) ? { sha256: sum, size } : null;
}

/**
 * heldSnapshots: the snapshot files this robot has (its own and received ones) whose names are in
 * `wanted`, checksummed here. Hashing reads each file, so only recorded names are looked at.
 */
export async function heldSnapshots(
  runner: CommandRunner,
  wanted: ReadonlySet<string>,
): Promise<HeldSnapshot[]> {
  const out: HeldSnapshot[] = [];
  for (const dir of [RECEIVED_SNAPSHOT_DIR, LOCAL_SNAPSHOT_DIR]) {
    for (const name of await listSnapshotDir(runner, dir)) {
      if (!wanted.has(name) || out.some((h) => h.name === name)) continue;
      const path = `${dir}/${name}`;
      const facts = await fileFacts(runner, path);
      if (facts) out.push({ name, path, ...facts });
    }
  }
  return out;
}
