/**
 * `npm run bench:takeover-steps` (no root): the datastore steps a new leader runs before its
 * kube-apiserver starts, timed for a takeover from a replica and from a snapshot of the same data
 * (docs/benchmarks/takeover-steps.md). bench:rpo measures the whole takeover in the lab; this
 * times the steps where the two paths differ, on loopback, with the lab's own code:
 *
 * - replica: the standby's learner (EtcdReplica) stops gracefully after its leader lost power,
 *   its bbolt file is restored (etcdctl, no hash to check), the revision moves forward, etcd starts
 *   with its peer port on the robot's address over TLS, and the learner's directory is deleted;
 * - snapshot: the file `etcdctl snapshot save` took of the same leader is restored, the revision
 *   moves forward, etcd starts with its peer port on loopback.
 *
 * "etcd serves" is the first answered range request. kube-apiserver's cold start, the same on both
 * paths, is not part of it.
 *
 *   npm run bench:takeover-steps -- [--runs N] [--writes N] [--out file]
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { promisify } from 'node:util';
import pino from 'pino';
import { etcdPeerUrl, standbyPlan } from '../../agent/control-plane/replica.ts';
import { freePort } from '../../lab/kube-apiserver/apiserver.ts';
import { EtcdProcesses, singleMemberFlags, untilValue } from '../../lab/runtime/testing/etcd-processes.ts';
import { etcdPeerFlags, etcdPeerTlsIn, issueEtcdPeerCerts } from '../../lab/kube-apiserver/etcd-peer.ts';
import {
  applyMemberChange,
  etcdGateway,
  etcdRevision,
  EtcdReplica,
  listMembers,
} from '../../lab/runtime/etcd-replica.ts';
import { bumpRevision } from '../../lab/runtime/revision-bump.ts';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '10' },
    writes: { type: 'string', default: '400' },
    out: { type: 'string', default: 'docs/benchmarks/takeover-steps.md' },
  },
});
const RUNS = Number(values.runs);
const WRITES = Number(values.writes);
/** About how long the survivors take to elect a new leader in the lab: the learner is stopped then. */
const ELECTION_MS = 1000;

const execFileP = promisify(execFile);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const b64 = (s: string) => Buffer.from(s).toString('base64');
const now = () => performance.now();

const etcds = new EtcdProcesses('warn');
const etcd = (args: string[]) => etcds.spawn(args);
const until = <T>(f: () => Promise<T | null>) => untilValue('etcd', f, { timeoutMs: 30_000, everyMs: 10 });
const etcdctl = (args: string[]) => execFileP('etcdctl', args, { env: { ...process.env, ETCDCTL_API: '3' } });

interface Run {
  readonly dbBytes: { readonly replica: number; readonly snapshot: number };
  readonly replica: Readonly<Record<'stop' | 'restore' | 'bump' | 'etcd' | 'discard' | 'total', number>>;
  readonly snapshot: Readonly<Record<'restore' | 'bump' | 'etcd' | 'total', number>>;
}

/** The new leader's etcd from a restored data dir, until it answers a range; then killed. */
async function serveOnce(
  name: string,
  dataDir: string,
  peerUrl: string,
  tlsFlags: string[],
): Promise<number> {
  const endpoint = `http://127.0.0.1:${await freePort()}`;
  const t = now();
  const c = etcd([...singleMemberFlags(name, dataDir, endpoint, peerUrl), ...tlsFlags]);
  await until(() => etcdGateway(endpoint, '/v3/kv/range', { key: b64('x') }, 300));
  const ms = now() - t;
  c.kill('SIGKILL');
  await new Promise((r) => c.once('exit', r));
  return ms;
}

async function oneRun(): Promise<Run> {
  const dir = mkdtempSync(join(tmpdir(), 'edgectl-takeover-steps-'));
  try {
    const voters = [
      { name: 'r1', address: '127.0.0.1' },
      { name: 'r2', address: '127.0.0.2', alsoIps: ['127.0.0.1'] },
    ];
    await issueEtcdPeerCerts(join(dir, 'ca'), voters, (n) => join(dir, n, 'tls'));
    const tls = (n: string) => etcdPeerTlsIn(join(dir, n, 'tls'));
    const peerPort = await freePort();
    const e1 = `http://127.0.0.1:${await freePort()}`;
    const p1 = etcdPeerUrl('127.0.0.1', peerPort);
    const p2 = etcdPeerUrl('127.0.0.2', peerPort);
    const leader = etcd([
      ...singleMemberFlags('r1', join(dir, 'r1', 'etcd'), e1, p1),
      ...etcdPeerFlags(tls('r1')),
    ]);
    await until(() => etcdRevision(e1));
    // ConfigMap-sized values, as the bench:rpo writer's objects are.
    const put = (k: string) =>
      etcdGateway<{ header: { revision: string } }>(e1, '/v3/kv/put', {
        key: b64(k),
        value: b64('v'.repeat(1500)),
      });
    const replica = new EtcdReplica({
      self: 'r2',
      epoch: 1,
      leader: { id: 'r1', peerUrl: p1 },
      selfPeerUrl: p2,
      tls: tls('r2'),
      dir: join(dir, 'r2', 'replica-epoch-1'),
      clientPort: await freePort(),
      log: pino({ level: 'silent' }),
      retryMs: 200,
      pollMs: 100,
    });
    replica.start();
    const plan = standbyPlan({
      self: 'r1',
      selfPeerUrl: p1,
      members: await listMembers(e1),
      candidates: [{ id: 'r2', peerUrl: p2 }],
      maxLearners: 1,
    });
    for (const c of plan) await applyMemberChange(e1, c);
    let last = 0;
    for (let i = 0; i < WRITES; i++) last = Number((await put(`w-${i}`)).header.revision);
    await until(async () => ((replica.position()?.revision ?? 0) >= last ? true : null));
    const snapshotFile = join(dir, 'snapshot.db');
    await etcdctl([`--endpoints=${e1}`, 'snapshot', 'save', snapshotFile]);
    leader.kill('SIGKILL');
    await sleep(ELECTION_MS);

    // From the replica, as LabControlPlane.startServer does it.
    let t = now();
    await replica.stop({ graceful: true });
    const stop = now() - t;
    const dbBytes = { replica: statSync(replica.dbPath).size, snapshot: statSync(snapshotFile).size };
    const fromReplica = join(dir, 'r2', 'epoch-2', 'etcd');
    t = now();
    await etcdctl([
      'snapshot',
      'restore',
      replica.dbPath,
      '--skip-hash-check',
      `--data-dir=${fromReplica}`,
      '--name=r2',
      `--initial-cluster=r2=${p2}`,
      `--initial-advertise-peer-urls=${p2}`,
    ]);
    const restoreR = now() - t;
    t = now();
    await bumpRevision(fromReplica);
    const bumpR = now() - t;
    const etcdR = await serveOnce('r2', fromReplica, p2, etcdPeerFlags(tls('r2')));
    t = now();
    await replica.discard();
    const discard = now() - t;

    // From the snapshot, as the same method does without replication (peer on loopback).
    const fromSnapshot = join(dir, 'r3', 'epoch-2', 'etcd');
    const loopPeer = `http://127.0.0.1:${await freePort()}`;
    t = now();
    await etcdctl([
      'snapshot',
      'restore',
      snapshotFile,
      `--data-dir=${fromSnapshot}`,
      '--name=edgectl',
      `--initial-cluster=edgectl=${loopPeer}`,
      `--initial-advertise-peer-urls=${loopPeer}`,
    ]);
    const restoreS = now() - t;
    t = now();
    await bumpRevision(fromSnapshot);
    const bumpS = now() - t;
    const etcdS = await serveOnce('edgectl', fromSnapshot, loopPeer, []);
    return {
      dbBytes,
      replica: {
        stop,
        restore: restoreR,
        bump: bumpR,
        etcd: etcdR,
        discard,
        total: stop + restoreR + bumpR + etcdR + discard,
      },
      snapshot: { restore: restoreS, bump: bumpS, etcd: etcdS, total: restoreS + bumpS + etcdS },
    };
  } finally {
    etcds.killAll();
    rmSync(dir, { recursive: true, force: true });
  }
}

function pct(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return Math.round(s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] ?? NaN);
}

const runs: Run[] = [];
for (let i = 0; i < RUNS; i++) {
  const r = await oneRun();
  console.error(JSON.stringify(r, (_k, v: unknown) => (typeof v === 'number' ? Math.round(v) : v)));
  runs.push(r);
}
const row = (path: string, step: string, xs: number[]) =>
  `| ${path} | ${step} | ${pct(xs, 50)} | ${pct(xs, 99)} |`;
const rows = [
  ...(['stop', 'restore', 'bump', 'etcd', 'discard', 'total'] as const).map((k) =>
    row(
      'replica',
      k,
      runs.map((r) => r.replica[k]),
    ),
  ),
  ...(['restore', 'bump', 'etcd', 'total'] as const).map((k) =>
    row(
      'snapshot',
      k,
      runs.map((r) => r.snapshot[k]),
    ),
  ),
];
const table = ['| path | step | ms p50 | ms p99 |', '| --- | --- | ---: | ---: |', ...rows].join('\n');
console.log(table);
writeFileSync(values.out!.replace(/\.md$/, '.json'), JSON.stringify(runs, null, 2) + '\n');
writeFileSync(
  values.out!,
  `# A takeover's datastore steps, replica against snapshot (\`npm run bench:takeover-steps\`)

Generated by test/bench/takeover-steps-bench.ts on ${new Date().toISOString().slice(0, 10)} (${RUNS} runs, no root);
the raw runs are in takeover-steps.json. A leader etcd takes a learner (the lab's EtcdReplica) over
TLS, ${WRITES} writes of 1.5 kB reach both, the leader's snapshot is saved, the leader loses power
(SIGKILL) and ${ELECTION_MS / 1000} s later (the election) each path runs its steps: *stop* the learner
(graceful), *restore* (etcdctl snapshot restore), *bump* (the revision moved forward, the tool),
*etcd* (start to the first answered range), *discard* (the learner's directory deleted).
kube-apiserver's cold start follows on both paths and is not included. Bytes restored, p50: replica
${pct(
  runs.map((r) => r.dbBytes.replica),
  50,
)}, snapshot ${pct(
    runs.map((r) => r.dbBytes.snapshot),
    50,
  )}.

${table}
`,
);
process.exit(0);
