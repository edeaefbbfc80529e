/**
 * Start-up failures of the agent (agent/run.ts), each in a real agent process: the tests' entry
 * (agent/testing/main.ts) from the sources, the robot's code with the in-memory control plane.
 * Every fatal start-up error ends the process at once, non-zero, with its UDP port released, so
 * systemd's Restart= takes over; and /status answers while discovery is still starting.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ENTRY = fileURLToPath(new URL('./testing/main.ts', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'edgectl-run-'));
after(() => rmSync(dir, { recursive: true, force: true }));
writeFileSync(join(dir, 'site.key'), randomBytes(32), { mode: 0o600 });

async function freeUdpPort(): Promise<number> {
  const udp = createSocket('udp4');
  await new Promise<void>((ok) => udp.bind(0, '127.0.0.1', ok));
  const { port } = udp.address();
  await new Promise<void>((ok) => udp.close(ok));
  return port;
}

/** udpFree: the port can be bound again (the agent released it). */
async function udpFree(port: number): Promise<boolean> {
  const udp = createSocket('udp4');
  return new Promise((ok) => {
    udp.once('error', () => ok(false));
    udp.bind(port, '127.0.0.1', () => udp.close(() => ok(true)));
  });
}

let n = 0;
function config(fields: Record<string, unknown>, udp: number): string {
  const path = join(dir, `agent-${n++}.yaml`);
  writeFileSync(
    path,
    JSON.stringify({
      site: { id: 'startup' },
      node: { id: 'solo', serverCapable: true },
      voters: ['solo'],
      profile: 'test',
      network: { bindAddress: '127.0.0.1', port: udp, mdns: false },
      stateDir: join(dir, `state-${n}`),
      siteKeyFile: join(dir, 'site.key'),
      controlPlane: { runtime: 'memory' },
      log: { level: 'warn' },
      ...fields,
    }),
  );
  return path;
}

/** run starts the agent and resolves with its exit code and stderr; the test fails if it keeps running. */
function run(configPath: string): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, [ENTRY, '--config', configPath], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((ok, fail) => {
    const t = setTimeout(() => {
      child.kill('SIGKILL');
      fail(new Error(`the agent kept running after a fatal start-up error:\n${stderr}`));
    }, 20_000);
    child.on('exit', (code) => {
      clearTimeout(t);
      ok({ code, stderr });
    });
  });
}

test('a busy status.listen port ends the agent at once, exit 1, naming the field, UDP released', async () => {
  const busy = createServer();
  await new Promise<void>((ok) => busy.listen(0, '127.0.0.1', ok));
  const port = (busy.address() as { port: number }).port;
  const udp = await freeUdpPort();
  try {
    const r = await run(config({ status: { listen: `127.0.0.1:${port}` } }, udp));
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}: EADDRINUSE`));
    assert.match(r.stderr, /hint: set status\.listen/);
    assert.ok(await udpFree(udp), 'the UDP port is released');
  } finally {
    busy.close();
  }
});

test('status.listen with a port above 65535 fails validation, exit 2', async () => {
  const r = await run(config({ status: { listen: '127.0.0.1:99999' } }, await freeUdpPort()));
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /status\.listen: the port must be 1-65535/);
});

test('a state directory that cannot be created ends the agent at once, not as an internal error, UDP released', async () => {
  const file = join(dir, 'a-file');
  writeFileSync(file, '');
  const udp = await freeUdpPort();
  const r = await run(config({ stateDir: join(file, 'state') }, udp));
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /cannot use the state directory .*a-file\/state: ENOTDIR/);
  assert.doesNotMatch(r.stderr, /bug in edgectl/);
  assert.ok(await udpFree(udp), 'the UDP port is released');
});

test('a runtime the entry does not register is refused with the entry that has it', async () => {
  const r = await run(
    config({ controlPlane: { runtime: 'lab', identityDir: dir, address: '127.0.0.1' } }, await freeUdpPort()),
  );
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /controlPlane.runtime "lab" is not available in the test agent/);
  assert.match(r.stderr, /hint: lab robots run lab\/agent-main\.ts/);
});

test('/status and /metrics answer while discovery is still starting', async () => {
  const udp = await freeUdpPort();
  const tcp = await new Promise<number>((ok) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => ok(port));
    });
  });
  const path = config({ status: { listen: `127.0.0.1:${tcp}` } }, udp);
  // runAgent in a child process, with the tests' runtimes and a discovery whose start never ends.
  const script = `
    import { runAgent } from ${JSON.stringify(new URL('./run.ts', import.meta.url).href)};
    import { loadAgentConfig } from ${JSON.stringify(new URL('./config.ts', import.meta.url).href)};
    import { InMemoryControlPlane } from ${JSON.stringify(new URL('./control-plane/in-memory.ts', import.meta.url).href)};
    import { StaticSeedDiscovery } from ${JSON.stringify(new URL('./discovery/discovery.ts', import.meta.url).href)};
    await runAgent({
      config: ${JSON.stringify(path)},
      loadConfig: loadAgentConfig,
      entryName: 'a test',
      runtimes: { memory: async ({ config }) => new InMemoryControlPlane(config.node.id) },
      discovery: (config) => {
        const d = new StaticSeedDiscovery({ self: { siteId: config.site.id, nodeId: config.node.id }, seeds: [] });
        d.start = () => new Promise(() => {});
        return d;
      },
    });`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  try {
    let status: { node?: string } | undefined;
    for (let i = 0; i < 200 && !status && child.exitCode === null; i++) {
      await new Promise((ok) => setTimeout(ok, 100));
      status = await fetch(`http://127.0.0.1:${tcp}/status`)
        .then((r) => r.json() as Promise<{ node: string }>)
        .catch(() => undefined);
    }
    assert.equal(status?.node, 'solo', stderr);
    assert.match(await (await fetch(`http://127.0.0.1:${tcp}/metrics`)).text(), /^edgectl_term /m);
  } finally {
    child.kill('SIGKILL');
  }
});
