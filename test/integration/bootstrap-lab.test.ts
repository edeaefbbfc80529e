/**
 * `edgectl bootstrap site` end to end on a 3-robot lab, as root: bare robots in network namespaces
 * with a real OpenSSH sshd each, bootstrapped over SSH from an inventory, with the lab control-plane
 * runtime standing in for k3s. systemd cannot run inside a namespace, so the test starts the
 * installed agent the way its unit would (install.service: none); everything else is real.
 *
 * Checks: the leader is elected and every robot is Ready; the site's namespace and NAD
 * are applied; a second run changes nothing; a run killed halfway resumes; a changed host key is
 * refused; a robot that is down fails alone with a clear report; uninstall leaves nothing behind.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { agentChunks } from '../../cli/bootstrap/bundle.ts';
import { main } from '../../cli/main.ts';
import { converged } from '../../lab/analysis.ts';
import {
  labDown,
  labInventory,
  labUp,
  leftovers,
  observeLab,
  siteOnServer,
  startInstalledAgent,
  type LabObservation,
  type LabState,
} from '../../lab/lab.ts';
import { requireRoot } from '../../lab/netns.ts';

const SITE = 'it-boot';
const PREFIX = 'elbt-';
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const EDGECTL = join(ROOT, 'cli/bin/edgectl.js');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
let state: LabState;
let work: string;
let inventory: string;
let siteDir: string;

async function edgectl(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(args, { out: (t) => (out += `${t}\n`), err: (t) => (err += `${t}\n`) });
  return { code, out, err };
}

/** NDJSON progress events of a --output json run. */
const events = (out: string) =>
  out
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map(
      (l) =>
        JSON.parse(l) as {
          type: string;
          robot?: string;
          outcome?: string;
          failure?: { code: string; step: string; recover: string[] };
        },
    );

const bootstrap = (...extra: string[]) =>
  edgectl(['bootstrap', 'site', '-f', inventory, '--site-dir', siteDir, '--output', 'json', ...extra]);

async function until(
  what: string,
  pred: (o: LabObservation) => boolean,
  ms = 90_000,
): Promise<LabObservation> {
  const end = Date.now() + ms;
  for (;;) {
    const o = await observeLab(state);
    if (pred(o)) return o;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(250);
  }
}

before(async () => {
  requireRoot('the bootstrap lab test');
  // The offline bundle's agent: the lab's entry file and the chunks it imports (npm run
  // build:lab-agent), the robot's agent with the lab runtime registered (lab/agent-main.ts).
  execFileSync('npm', ['run', '--silent', 'build:lab-agent'], { cwd: ROOT, stdio: 'ignore' });
  labDown(SITE, { prefix: PREFIX });
  state = await labUp({
    site: SITE,
    robots: 3,
    voters: 3,
    runtime: 'apiserver',
    node: 'lite',
    seed: 1,
    prefix: PREFIX,
    subnet: '10.77.14',
    agents: false,
  });
  work = mkdtempSync(join(tmpdir(), 'edgectl-boot-'));
  inventory = join(work, 'site.yaml');
  siteDir = join(work, 'site-dir');
  writeFileSync(inventory, stringify(labInventory(state)));
});

after(() => {
  labDown(SITE, { prefix: PREFIX });
  assert.deepEqual(leftovers(SITE, PREFIX), {
    netns: [],
    links: [],
    nftTables: [],
    processes: [],
    cgroups: [],
  });
  if (work) rmSync(work, { recursive: true, force: true });
});

test('a run killed halfway resumes, and the bootstrapped site elects, applies and converges', async () => {
  // Kill the first run once some robot has finished its bundle upload.
  const child = spawn(
    process.execPath,
    [
      EDGECTL,
      'bootstrap',
      'site',
      '-f',
      inventory,
      '--site-dir',
      siteDir,
      '--accept-new-host-keys',
      '--output',
      'json',
    ],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let seen = '';
  await new Promise<void>((resolve) => {
    child.stdout.on('data', (d: Buffer) => {
      seen += d.toString();
      if (
        /"step":"bundle\.node","description":[^\n]*"type":"step\.end"|"type":"step\.end"[^\n]*"step":"bundle\.node"/.test(
          seen,
        )
      ) {
        child.kill('SIGKILL');
        resolve();
      }
    });
    child.on('exit', () => resolve());
  });
  assert.ok(/"type":"step\.end"/.test(seen), 'the first run got under way before it was killed');
  assert.ok(!/"type":"apply\.end"/.test(seen), 'the first run was killed before it finished');

  // An older build's chunk on r1: the resumed run removes it, once the new chunks are in place.
  const optOf = (name: string) => join(state.dir, 'robots', name, 'root', 'opt/edgectl');
  mkdirSync(optOf('r1'), { recursive: true });
  writeFileSync(join(optOf('r1'), 'edgectl-agent-OLDBUILD.mjs'), 'export {};\n');
  const resumed = await bootstrap('--accept-new-host-keys');
  assert.equal(resumed.code, 0, resumed.err);
  const ev = events(resumed.out);
  assert.deepEqual(
    ev
      .filter((e) => e.type === 'robot.done')
      .map((e) => e.robot)
      .sort(),
    ['r1', 'r2', 'r3'],
  );
  assert.ok(
    ev.some((e) => e.type === 'step.end' && e.outcome === 'done-before'),
    'steps done before the kill are not redone',
  );
  const probe = ev.find((e) => e.type === 'multicast.probe') as unknown as { ok: boolean };
  assert.equal(probe.ok, true, 'every robot hears every other one over multicast');
  // Every robot has the entry and exactly the chunks it imports; the lab runtime the agents run
  // below is in one of them.
  const chunks = agentChunks(join(ROOT, 'lab/bundle/edgectl-agent.mjs')).map((c) => basename(c));
  assert.ok(chunks.length > 0, 'the agent is split into chunks');
  for (const r of state.robots)
    assert.deepEqual(
      readdirSync(optOf(r.name))
        .filter((f) => f.startsWith('edgectl-agent'))
        .sort(),
      ['edgectl-agent.mjs', ...chunks].sort(),
      r.name,
    );

  for (const r of state.robots) startInstalledAgent(state, r.name);
  const formed = await until('one leader with every robot Ready', converged);
  const leader = state.robots.find((r) => r.name === formed.leader)!;
  const site = await siteOnServer(state, leader.address);
  assert.equal(site.namespace, true, "the site's namespace is applied");
  assert.deepEqual(site.networks, ['fleet'], "the site's NetworkAttachmentDefinition is applied");

  // edgectl site ready: asks every robot over SSH, then writes the site's kubeconfig from the leader's.
  const kubeconfig = join(work, 'kubeconfig');
  const ready = await edgectl([
    'site',
    'ready',
    '-f',
    inventory,
    '--site-dir',
    siteDir,
    '--kubeconfig',
    kubeconfig,
    '--output',
    'json',
  ]);
  assert.equal(ready.code, 0, ready.err);
  const done = events(ready.out).find((e) => e.type === 'site.ready') as unknown as { leader: string };
  assert.equal(done.leader, formed.leader);
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfig);
  assert.equal(kc.getCurrentContext(), `edgectl-${SITE}`);
  const ns = await kc.makeApiClient(CoreV1Api).readNamespace({ name: `site-${SITE}` });
  assert.equal(ns.metadata?.labels?.['edgectl.io/site'], SITE, 'the kubeconfig reaches the site');
});

test('every secret bootstrap writes is 0600 and owned by root, on the robots and in the site directory', () => {
  const mode = (p: string) => {
    const st = statSync(p);
    return { path: p, mode: (st.mode & 0o777).toString(8), uid: st.uid };
  };
  const secrets = [
    join(siteDir, 'site.key'),
    join(siteDir, 'known_hosts'),
    join(work, 'kubeconfig'),
    ...state.robots.flatMap((r) => {
      const root = join(state.dir, 'robots', r.name, 'root');
      return [join(root, 'etc/edgectl/site-keys.json'), join(root, 'etc/edgectl/agent.yaml')];
    }),
  ];
  assert.deepEqual(
    secrets.map(mode),
    secrets.map((p) => ({ path: p, mode: '600', uid: 0 })),
  );
  // The directories that hold them are private too.
  for (const r of state.robots)
    assert.equal(
      (statSync(join(state.dir, 'robots', r.name, 'root', 'etc/edgectl')).mode & 0o777).toString(8),
      '700',
    );
});

test('a second run changes nothing', async () => {
  const again = await bootstrap();
  assert.equal(again.code, 0, again.err);
  const changed = events(again.out).filter((e) => e.type === 'step.end' && e.outcome === 'changed');
  assert.deepEqual(changed, []);
});

test('a Wi-Fi that filters multicast is found, and without seeds the bootstrap says how to fix it', async () => {
  const table = 'elbt_nomcast';
  const ports = state.robots.map((r) => `"${r.veth}"`).join(', ');
  execFileSync('nft', ['-f', '-'], {
    input: `table bridge ${table} {\n chain forward {\n  type filter hook forward priority 0; policy accept;\n  iifname { ${ports} } meta pkttype multicast drop\n }\n}\n`,
  });
  try {
    const r = await bootstrap();
    assert.notEqual(r.code, 0);
    const probe = events(r.out).find((e) => e.type === 'multicast.probe') as unknown as {
      ok: boolean;
      unheard: unknown[];
    };
    assert.equal(probe.ok, false);
    assert.equal(probe.unheard.length, 3, 'no robot heard any other');
    assert.match(r.err, /EDGE_MULTICAST_FILTERED|discovery\.seeds/);
  } finally {
    execFileSync('nft', ['delete', 'table', 'bridge', table]);
  }
});

test('a robot that is down fails alone, and a changed host key is refused', async () => {
  // r3 is down: its sshd (and agent) are gone.
  const r3 = state.robots.find((r) => r.name === 'r3')!;
  execFileSync('ip', ['-n', r3.netns, 'link', 'set', 'eth0', 'down']);
  // r2 was reinstalled: a new host key.
  const r2dir = join(state.dir, 'robots', 'r2');
  rmSync(join(r2dir, 'ssh_host_ed25519_key'), { force: true });
  rmSync(join(r2dir, 'ssh_host_ed25519_key.pub'), { force: true });
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(r2dir, 'ssh_host_ed25519_key')]);
  const r = await bootstrap('--accept-new-host-keys');
  assert.notEqual(r.code, 0, 'the run reports the failed robots');
  const ev = events(r.out);
  const failed = Object.fromEntries(
    ev.filter((e) => e.type === 'robot.failed').map((e) => [e.robot, e.failure!]),
  );
  assert.deepEqual(Object.keys(failed).sort(), ['r2', 'r3']);
  assert.match(
    failed['r2']!.code,
    /HOST_KEY/,
    'a changed host key is refused even with --accept-new-host-keys',
  );
  assert.ok(failed['r3']!.recover.length > 0, 'the report says how to recover by hand');
  assert.deepEqual(
    ev.filter((e) => e.type === 'robot.done').map((e) => e.robot),
    ['r1'],
    'r1 is unaffected',
  );
  execFileSync('ip', ['-n', r3.netns, 'link', 'set', 'eth0', 'up']);
});

test('uninstall removes what bootstrap installed', async () => {
  // r2's key is now unknown-and-changed; put its original back by forgetting it, as an operator would after checking.
  rmSync(join(siteDir, 'known_hosts'), { force: true });
  for (const r of state.robots) process.kill(-r.agentPid!, 'SIGKILL');
  const u = await edgectl([
    'uninstall',
    'site',
    '-f',
    inventory,
    '--site-dir',
    siteDir,
    '--accept-new-host-keys',
    '--yes',
    '--output',
    'json',
  ]);
  assert.equal(u.code, 0, u.err + u.out);
  for (const r of state.robots) {
    const root = join(state.dir, 'robots', r.name, 'root');
    const left = existsSync(root)
      ? readdirSync(root, { recursive: true })
          .map(String)
          .filter((p) => /edgectl/.test(p))
      : [];
    assert.deepEqual(left, [], `${r.name} still has edgectl files`);
  }
});
