/**
 * How long `edgectl lab status` takes on an idle site, end to end (process start, reading every
 * robot's /status, the table). The robots are stand-ins: a /status server per robot on loopback
 * addresses, so this needs no root and no namespaces; with no robot serving, the Node listing is
 * skipped (a real lab adds one HTTPS request to the leader). The goal is under 0.5 s on an idle
 * machine (docs/benchmarks/lab-status.md).
 *
 *   node test/bench/lab-status-bench.ts [runs]
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

// EDGECTL_BIN: another checkout's edgectl.js, to compare.
const EDGECTL =
  process.env['EDGECTL_BIN'] ?? fileURLToPath(new URL('../../cli/bin/edgectl.js', import.meta.url));
const runs = Number(process.argv[2] ?? 10);
const robots = ['r1', 'r2', 'r3'].map((name, i) => ({ name, address: `127.0.0.${i + 2}` }));

const servers = await Promise.all(
  robots.map(
    (r) =>
      new Promise<ReturnType<typeof createServer>>((resolve) => {
        const s = createServer((_req, res) => {
          res.setHeader('content-type', 'application/json');
          res.end(
            JSON.stringify({
              node: r.name,
              site: 'bench',
              role: 'follower',
              voter: true,
              term: 1,
              leader: null,
              quorum: { voters: 3, reachable: 3, ok: true, noQuorumSince: null },
              commitIndex: 0,
              lifecycle: 'electing',
              controlPlane: { runtime: 'lab', server: null, worker: null, siteAppliedEpoch: null },
              members: [],
              lastErrors: [],
              transport: {},
              discovery: {},
              uptimeMs: 1,
            }),
          );
        });
        s.listen(7947, r.address, () => resolve(s));
      }),
  ),
);

const root = mkdtempSync(join(tmpdir(), 'edgectl-lab-status-bench-'));
const dir = join(root, 'bench');
mkdirSync(dir);
writeFileSync(
  join(dir, 'lab.json'),
  JSON.stringify({
    version: 1,
    site: 'bench',
    prefix: 'el-bench-',
    subnet: '127.0.0',
    bridge: 'none',
    hostAddress: '127.0.0.1',
    dir,
    runtime: 'apiserver',
    seed: 1,
    createdAt: new Date().toISOString(),
    robots: robots.map((r) => ({
      ...r,
      netns: 'none',
      veth: 'none',
      voter: true,
      agentPid: null,
      sshdPid: null,
      powered: true,
      paused: false,
      wifi: true,
    })),
    net: {},
  }),
);

const times: number[] = [];
for (let i = 0; i < runs; i++) {
  const t0 = performance.now();
  // Not spawnSync: the stand-in robots answer from this process's event loop.
  const child = spawn(process.execPath, [EDGECTL, 'lab', 'status', '--site', 'bench'], {
    env: { ...process.env, EDGECTL_LAB_ROOT: root },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += String(d)));
  child.stderr.on('data', (d: Buffer) => (stderr += String(d)));
  const [code] = (await once(child, 'exit')) as [number | null];
  times.push(performance.now() - t0);
  if (code !== 0 || !/r3\s+127\.0\.0\.4\s+up/.test(stdout)) {
    console.error(stdout, stderr);
    process.exit(1);
  }
}
for (const s of servers) s.close();
times.sort((a, b) => a - b);
const at = (q: number) => times[Math.min(times.length - 1, Math.floor(q * times.length))]!;
console.log(
  JSON.stringify({
    runs,
    medianMs: Math.round(at(0.5)),
    minMs: Math.round(times[0]!),
    maxMs: Math.round(at(1)),
  }),
);
