/**
 * The built agent (agent/build.ts, into a temp dir, not agent/bundle/): its entry does not load
 * zod and yaml, bootstrap ships its config loader, it reports a bad config as `edgectl agent run`
 * does, and nothing of the lab, the CLI or the tests' twins is in it. The tests' entry
 * (agent/testing/main.ts), built the same way, runs a leader on the in-memory control plane, and one
 * on the k3s runtime over the robot model that applies the site: what each loads is pinned.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import type { Metafile } from 'esbuild';
import { agentChunks } from '../cli/bootstrap/bundle.ts';
import { freePort } from '../lab/kube-apiserver/apiserver.ts';
import { buildAgent, TEST_ENTRY } from './build.ts';
import { childSnapshotCipher } from './control-plane/snapshot-cipher.ts';
import { loadAgentConfig } from './config.ts';
import { EdgeError } from './errors.ts';
import { formatRobotKeyFile, readRobotKeys, renderRobotKeyFile } from './site-key.ts';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'edgectl-build-'));
const out = join(dir, 'bundle');
const entry = join(out, 'edgectl-agent.mjs');
/** The tests' entry, bundled like the robot's. */
const testOut = join(dir, 'test-bundle');
const testEntry = join(testOut, 'edgectl-agent.mjs');
type BuildMeta = Awaited<ReturnType<typeof buildAgent>>;
let meta: BuildMeta;
let testMeta: BuildMeta;
before(async () => {
  [meta, testMeta] = await Promise.all([buildAgent(out), buildAgent(testOut, TEST_ENTRY)]);
});
after(() => rmSync(dir, { recursive: true, force: true }));

const ZOD_OR_YAML = /(^|\/)node_modules\/(zod|yaml)\//;

/** The output files the entry loads at start-up: itself and the chunks it imports statically. */
function staticOutputs(m: Metafile, entryPoint = 'agent/main.ts'): string[] {
  const first = Object.keys(m.outputs).find((o) => m.outputs[o]!.entryPoint === entryPoint)!;
  const seen = new Set([first]);
  for (const o of seen)
    for (const i of m.outputs[o]!.imports)
      if (i.kind === 'import-statement' && m.outputs[i.path]) seen.add(i.path);
  return [...seen];
}

test('the entry and the chunks it imports statically have no zod and no yaml; the config loader has both', () => {
  const outputs = staticOutputs(meta.agent);
  assert.ok(outputs.length >= 1);
  const leaked = outputs.flatMap((o) =>
    Object.keys(meta.agent.outputs[o]!.inputs).filter((i) => ZOD_OR_YAML.test(i)),
  );
  assert.deepEqual(leaked, [], 'a module the entry imports statically imports zod or yaml');
  const loader = Object.values(meta.configLoader.outputs).find(
    (o) => o.entryPoint === 'agent/config-loader.ts',
  )!;
  const inputs = Object.keys(loader.inputs);
  assert.ok(inputs.some((i) => /node_modules\/zod\//.test(i)));
  assert.ok(inputs.some((i) => /node_modules\/yaml\//.test(i)));
});

test("the robot bundle's source maps list no lab/ or cli/ file, nor a test twin", () => {
  const sources = readdirSync(out)
    .filter((f) => f.endsWith('.map'))
    .flatMap((f) =>
      (JSON.parse(readFileSync(join(out, f), 'utf8')) as { sources: string[] }).sources.map((s) =>
        relative(ROOT, resolve(out, s)),
      ),
    );
  assert.ok(sources.includes('agent/run.ts') && sources.includes('agent/control-plane/k3s-runtime.ts'));
  const wrong = sources.filter((s) => /^(lab|cli)\//.test(s) || /(^|\/)testing\//.test(s));
  assert.deepEqual(wrong, []);
});

test("the k3s runtime's chunk loads neither zod nor yaml into the agent's process", () => {
  const outs = meta.agent.outputs;
  const k3s = Object.keys(outs).find((o) =>
    Object.keys(outs[o]!.inputs).includes('agent/control-plane/k3s-runtime.ts'),
  );
  assert.ok(k3s, 'the k3s runtime is in a chunk of its own');
  const seen = new Set([k3s]);
  for (const o of seen)
    for (const i of outs[o]!.imports) if (i.kind === 'import-statement' && outs[i.path]) seen.add(i.path);
  const leaked = [...seen].flatMap((o) => Object.keys(outs[o]!.inputs).filter((i) => ZOD_OR_YAML.test(i)));
  assert.deepEqual(leaked, []);
});

test("a leader's site apply path loads neither zod nor yaml: the site spec loader, run in a child, has both", () => {
  const entryInputs = staticOutputs(meta.agent).flatMap((o) => Object.keys(meta.agent.outputs[o]!.inputs));
  assert.ok(entryInputs.includes('agent/site/spec-subprocess.ts'));
  for (const m of [meta, testMeta]) {
    const outs = m.agent.outputs;
    // The LeaderSite's chunk and every chunk it imports, statically or with import(): what a
    // leader's first apply loads. The spec source that asks the child process is in the entry,
    // whose static imports the first test checks.
    const roots = Object.keys(outs).filter((o) => outs[o]!.entryPoint === 'agent/site/leader-site.ts');
    assert.equal(roots.length, 1, 'the LeaderSite is in a chunk of its own');
    const seen = new Set(roots);
    for (const o of seen) for (const i of outs[o]!.imports) if (outs[i.path]) seen.add(i.path);
    const leaked = [...seen].flatMap((o) => Object.keys(outs[o]!.inputs).filter((i) => ZOD_OR_YAML.test(i)));
    assert.deepEqual(leaked, []);
    const loader = Object.values(m.siteLoader.outputs).find(
      (o) => o.entryPoint === 'agent/site/spec-loader.ts',
    )!;
    const inputs = Object.keys(loader.inputs);
    assert.ok(inputs.some((i) => /node_modules\/zod\//.test(i)));
    assert.ok(inputs.some((i) => /node_modules\/yaml\//.test(i)));
  }
});

test("bootstrap ships the config loader, the site spec loader and the Kubernetes client's child with the chunks", () => {
  const chunks = agentChunks(entry);
  assert.ok(chunks.includes(join(out, 'edgectl-agent-config.cjs')));
  assert.ok(chunks.includes(join(out, 'edgectl-agent-site.cjs')));
  assert.ok(chunks.includes(join(out, 'edgectl-agent-kube.cjs')));
});

test("the bundled Kubernetes client's child answers as the one from the sources does", async () => {
  const { ChildObjectClient } = await import('./site/kube-child.ts');
  const { k3sKubeconfigText } = await import('./site/testing/k3s-kubeconfig.ts');
  // A kubeconfig that is not there, and one whose server does not answer (nothing listens on port 1).
  const refused = join(dir, 'refused-kubeconfig.yaml');
  writeFileSync(
    refused,
    k3sKubeconfigText({
      server: 'https://127.0.0.1:1',
      caPem: 'not a CA',
      cert: 'not a cert',
      key: 'not a key',
    }),
  );
  for (const kubeconfig of [join(dir, 'no-kubeconfig.yaml'), refused]) {
    const answers = [];
    for (const worker of [join(out, 'edgectl-agent-kube.cjs'), join(ROOT, 'agent/site/kube-worker.ts')]) {
      const c = new ChildObjectClient({ worker, args: [kubeconfig] });
      try {
        answers.push(
          await c.list('v1', 'Node').then(
            () => assert.fail('expected an error'),
            (e: EdgeError) => [e.code, e.message, e.hint],
          ),
        );
      } finally {
        await c.close();
      }
    }
    assert.deepEqual(answers[0], answers[1]);
    assert.match(String(answers[0]![0]), /^EDGE_(KUBECONFIG_UNREADABLE|SITE_API)$/);
  }
});

test("bootstrap ships the snapshot cipher; no file of the agent's names node:crypto, and the built cipher seals as node:crypto does", async () => {
  const cipherFile = join(out, 'edgectl-agent-crypt.cjs');
  assert.ok(agentChunks(entry).includes(cipherFile));
  // A built-in in a bundle is a getBuiltinModule call, an import or a require of its name.
  const naming = readdirSync(out).filter(
    (f) => /\.(mjs|cjs)$/.test(f) && /["'](node:)?crypto["']/.test(readFileSync(join(out, f), 'utf8')),
  );
  assert.deepEqual(naming, ['edgectl-agent-crypt.cjs']);
  const content = randomBytes(3 * 1024 * 1024 + 1);
  const p = { key: randomBytes(32), nonce: randomBytes(12), aad: Buffer.from('header') };
  const c = createCipheriv('aes-256-gcm', p.key, p.nonce).setAAD(p.aad);
  const expected = Buffer.concat([c.update(content), c.final(), c.getAuthTag()]);
  const cipher = childSnapshotCipher(() => cipherFile);
  const sealed = Buffer.concat((await cipher.seal(p, content).toArray()) as Buffer[]);
  assert.deepEqual(sealed, expected);
  const into = join(dir, 'opened');
  const opening = cipher.open({ ...p, sealedLength: content.length, into });
  opening.input.end(sealed);
  assert.deepEqual(await opening.outcome, {
    ok: true,
    verdict: { complete: true, verified: true, sha256: createHash('sha256').update(content).digest('hex') },
  });
  assert.deepEqual(readFileSync(into), content);
});

/**
 * leaderModules runs the tests' built entry as the leader of a one-robot site with `controlPlane`
 * until it serves (on every runtime: the site applied), scrapes /metrics, stops it with SIGTERM and
 * returns the built-in modules its process loaded.
 */
async function leaderModules(
  name: string,
  controlPlane: Record<string, unknown>,
  env: Record<string, string> = {},
): Promise<string[]> {
  const work = join(dir, name);
  mkdirSync(work);
  const preload = join(work, 'modules.cjs');
  writeFileSync(
    preload,
    "process.on('exit', () => require('node:fs').writeFileSync(process.env.EDGECTL_MODULES_OUT, process.moduleLoadList.join('\\n')));",
  );
  const keyFile = renderRobotKeyFile({
    master: randomBytes(32),
    site: 'modules',
    node: 'solo',
    voters: ['solo'],
    send: 1,
    accept: [1],
  });
  writeFileSync(join(work, 'site-keys.json'), formatRobotKeyFile(keyFile), { mode: 0o600 });
  const ports = { udp: await freeUdpPort(), tcp: await freePort() };
  const config = join(work, 'agent.yaml');
  writeFileSync(
    config,
    JSON.stringify({
      site: { id: 'modules' },
      node: { id: 'solo', serverCapable: true },
      voters: ['solo'],
      profile: 'test',
      network: { bindAddress: '127.0.0.1', port: ports.udp, mdns: false },
      stateDir: join(work, 'state'),
      siteKeyFile: join(work, 'site-keys.json'),
      status: { listen: `127.0.0.1:${ports.tcp}` },
      controlPlane,
      log: { level: 'warn' },
    }),
  );
  const list = join(work, 'modules.txt');
  const agent = spawn(process.execPath, ['--require', preload, testEntry, '--config', config], {
    env: { ...process.env, ...env, EDGECTL_MODULES_OUT: list },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  agent.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((ok) => agent.on('exit', (code) => ok(code)));
  try {
    const base = `http://127.0.0.1:${ports.tcp}`;
    let lifecycle: string | undefined;
    for (let i = 0; i < 300 && lifecycle !== 'leading.serving' && agent.exitCode === null; i++) {
      await new Promise((ok) => setTimeout(ok, 100));
      lifecycle = await fetch(`${base}/status`)
        .then((r) => r.json() as Promise<{ lifecycle: string }>)
        .then((st) => st.lifecycle)
        .catch(() => undefined);
    }
    assert.equal(lifecycle, 'leading.serving', stderr);
    assert.match(await (await fetch(`${base}/metrics`)).text(), /^edgectl_term /m);
  } finally {
    agent.kill('SIGTERM');
  }
  assert.equal(await exited, 0, stderr);
  return readFileSync(list, 'utf8').split('\n');
}

/** What the built agent prints for an error, as agent/main.ts formats it. */
function printed(e: unknown): string {
  assert.ok(e instanceof EdgeError);
  return `edgectl-agent: ${e.message}${e.hint ? `\n  hint: ${e.hint}` : ''}\n`;
}

function thrown(f: () => unknown): unknown {
  try {
    f();
  } catch (e) {
    return e;
  }
  return assert.fail('expected an error');
}

test('the built agent reports a missing or invalid config, and a missing key file, with the ConfigError, its hint and exit code 2', () => {
  const write = (name: string, text: string) => {
    writeFileSync(join(dir, name), text);
    return join(dir, name);
  };
  const valid = (siteKeyFile: string) =>
    `site: {id: lab}\nnode: {id: r1, serverCapable: true}\nvoters: [r1]\nsiteKeyFile: ${siteKeyFile}\ncontrolPlane: {runtime: k3s, k3s: {nodeIp: 10.20.0.11}}\n`;
  const cases = [
    { path: join(dir, 'missing.yaml'), error: (p: string) => thrown(() => loadAgentConfig(p)) },
    {
      path: write('bad.yaml', 'site: {id: Bad Site}\nnode: {id: r1}\nvoters: []\nnework: {}\n'),
      error: (p: string) => thrown(() => loadAgentConfig(p)),
    },
    { path: write('invalid.yaml', ': : :\n- ['), error: (p: string) => thrown(() => loadAgentConfig(p)) },
    // A valid config: its siteKeyFile came through the loader.
    {
      path: write('nokey.yaml', valid(join(dir, 'no.key'))),
      error: (p: string) => thrown(() => readRobotKeys(loadAgentConfig(p).siteKeyFile)),
    },
  ];
  for (const c of cases) {
    const run = spawnSync(process.execPath, [entry, '--config', c.path], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    assert.equal(run.stdout, '');
    assert.equal(run.stderr, printed(c.error(c.path)), c.path);
    assert.equal(run.status, 2, c.path);
  }
});

/** freeUdpPort asks the kernel for a free UDP port on loopback (freePort does TCP). */
async function freeUdpPort(): Promise<number> {
  const udp = createSocket('udp4');
  await new Promise<void>((ok) => udp.bind(0, '127.0.0.1', ok));
  const { port } = udp.address();
  await new Promise<void>((ok) => udp.close(ok));
  return port;
}

test('a running leader loads no built-in through an ES import, and none that only pino transports, prom-client extras, createRequire or the hashes (node:crypto) need', async () => {
  // An ES import of a built-in runs every lazy getter of its exports (node:http alone loads
  // undici); build.ts turns them into process.getBuiltinModule calls.
  for (const [m, at] of [
    [meta, 'agent/main.ts'],
    [testMeta, TEST_ENTRY],
  ] as const) {
    const esImports = staticOutputs(m.agent, at).flatMap((o) =>
      m.agent.outputs[o]!.imports.filter((i) => i.external && i.kind === 'import-statement'),
    );
    assert.deepEqual(esImports, [], at);
  }
  // Nor through a runtime `require`: the bundle has none (build.ts), so a built-in left to one
  // would throw "Dynamic require" when its chunk first runs.
  const runtimeRequires = Object.values(meta.agent.outputs).flatMap((o) =>
    o.imports.filter((i) => i.external && i.kind === 'require-call').map((i) => i.path),
  );
  assert.deepEqual(runtimeRequires, []);
  // What the process really loaded: a one-robot site, whose agent (the tests' entry, the robot's
  // code with the in-memory control plane) elects itself, starts the in-memory control plane and
  // serves /metrics, then stops on SIGTERM and lists its modules.
  const loaded = await leaderModules('leader', { runtime: 'memory' });
  assert.ok(
    loaded.includes('NativeModule dgram') && loaded.includes('NativeModule http'),
    'the list is real',
  );
  for (const unwanted of [
    'NativeModule worker_threads',
    'NativeModule assert',
    'NativeModule v8',
    'NativeModule perf_hooks',
    'NativeModule module',
    'NativeModule crypto',
    'NativeModule internal/deps/undici/undici',
  ])
    assert.ok(!loaded.includes(unwanted), `${unwanted} loaded`);
});

test("the robot's bundle carries no @kubernetes/client-node, its HTTPS client is in the Kubernetes client's child only, and a k3s leader that applied the site loads no built-in the in-memory leader does not: no https, tls or crypto", async () => {
  for (const m of [meta, testMeta]) {
    const inputs = Object.values(m.agent.outputs).flatMap((o) => Object.keys(o.inputs));
    assert.deepEqual(
      inputs.filter((i) => /node_modules\/(@kubernetes\/client-node|undici|node-fetch|ws)\//.test(i)),
      [],
    );
    assert.ok(!inputs.includes('agent/site/kube-client.ts'), "the agent's bundle has the HTTPS client");
    const child = Object.values(m.kubeWorker.outputs).find(
      (o) => o.entryPoint === 'agent/site/kube-worker.ts',
    )!;
    assert.ok(Object.keys(child.inputs).includes('agent/site/kube-client.ts'));
  }
  // The k3s runtime's own code over the robot model (agent/k3s/testing/model-robot.ts), as
  // bench:agent runs it: the leader parses the installed spec and applies the site.
  const work = join(dir, 'k3s-site');
  mkdirSync(work);
  writeFileSync(join(work, 'site.yaml'), 'id: modules\n');
  const idle = await leaderModules('leader-memory', { runtime: 'memory' });
  const applied = await leaderModules(
    'leader-k3s',
    {
      runtime: 'k3s',
      k3s: { nodeIp: '127.0.0.1', flannelIface: 'lo' },
      siteSpecFile: join(work, 'site.yaml'),
      templatesDir: join(ROOT, 'templates'),
      receivedSnapshotDir: join(work, 'snapshots'),
    },
    { EDGECTL_ROBOT_MODEL: '1' },
  );
  const added = applied.filter((m) => !idle.includes(m) && m.startsWith('NativeModule '));
  // No https, no tls and no crypto: the HTTPS client runs in the Kubernetes client's child process
  // on a robot (agent/site/kube-child.ts), and over the model the API server is in memory; the
  // snapshots are sealed and opened in the cipher's child (agent/control-plane/snapshot-cipher.ts).
  // Not `navigator`, which zod reads once: the spec was parsed in the site spec loader's process.
  const HTTPS_OR_CRYPTO =
    /^NativeModule (https|tls|crypto|_tls_[a-z_]+|internal\/(tls|crypto)\/[a-z0-9_-]+|internal\/js_stream_socket|internal\/navigator)$/;
  assert.deepEqual(
    applied.filter((m) => HTTPS_OR_CRYPTO.test(m)),
    [],
  );
  assert.deepEqual(added, []);
});
