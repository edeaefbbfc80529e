/**
 * The agent daemon's start-up failures end the process at once with a non-zero code and release
 * what it had bound, so systemd's Restart= takes over; and /status answers before discovery has
 * started. Each runs a real agent entry in a child process: the tests' (agent/testing/main.ts, the
 * robot's agent with the in-memory control plane), or `edgectl agent run`, which has the robot's
 * runtimes only.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { stringify } from 'yaml';
import { Agent } from './agent.ts';
import { validateAgentConfig } from './config.ts';
import { InMemoryControlPlane } from './control-plane/testing/in-memory.ts';
import { InMemoryDiscovery, InMemoryDiscoveryBus } from './discovery/discovery.ts';
import { StateStore } from './persistence/state-store.ts';
import { formatRobotKeyFile, renderRobotKeyFile } from './site-key.ts';
import { startStatusServer } from './status-server.ts';
import { InMemoryNetwork } from './transport/in-memory.ts';

const EDGECTL = fileURLToPath(new URL('../cli/bin/edgectl.js', import.meta.url));
const TEST_AGENT = fileURLToPath(new URL('./testing/main.ts', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'edgectl-agent-run-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const keyFile = join(dir, 'site-keys.json');
writeFileSync(
  keyFile,
  formatRobotKeyFile(
    renderRobotKeyFile({
      master: Buffer.alloc(32, 7),
      site: 'boot',
      node: 'r1',
      voters: ['r1'],
      send: 1,
      accept: [1],
    }),
  ),
  { mode: 0o600 },
);

function freeUdpPort(): Promise<number> {
  const s = createSocket('udp4');
  return new Promise((resolve) =>
    s.bind(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    }),
  );
}

async function config(name: string, over: Record<string, unknown>): Promise<{ file: string; udp: number }> {
  const udp = await freeUdpPort();
  const file = join(dir, `${name}.yaml`);
  writeFileSync(
    file,
    stringify({
      site: { id: 'boot' },
      node: { id: 'r1', serverCapable: true },
      voters: ['r1'],
      profile: 'test',
      network: { interfaces: [], bindAddress: '127.0.0.1', port: udp, mdns: false, seeds: [] },
      stateDir: join(dir, `${name}-state`),
      siteKeyFile: keyFile,
      controlPlane: { runtime: 'memory' },
      ...over,
    }),
  );
  return { file, udp };
}

/** run starts the tests' agent entry (or `command`) and waits for it to end (at most `ms`). */
function run(
  file: string,
  ms = 30_000,
  command: readonly string[] = [TEST_AGENT],
): Promise<{ code: number | null; stderr: string; timedOut: boolean }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...command, '--config', file], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += String(d)));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      resolve({ code: null, stderr, timedOut: true });
    }, ms);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr, timedOut: false });
    });
  });
}

/** The UDP port is free again: the agent let go of it. */
function udpFree(port: number): Promise<boolean> {
  const s = createSocket('udp4');
  return new Promise((resolve) => {
    s.once('error', () => resolve(false));
    s.bind(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

test('a status port another process holds ends the agent at once, non-zero, with its UDP port released', async () => {
  const holder: Server = createServer();
  await new Promise<void>((r) => holder.listen(0, '127.0.0.1', () => r()));
  const taken = (holder.address() as AddressInfo).port;
  try {
    const { file, udp } = await config('busy', { status: { listen: `127.0.0.1:${taken}` } });
    const r = await run(file);
    assert.equal(r.timedOut, false, `the agent kept running: ${r.stderr}`);
    assert.notEqual(r.code, 0);
    assert.doesNotMatch(r.stderr, /bug in edgectl/);
    assert.equal(await udpFree(udp), true, 'the UDP port is released');
  } finally {
    holder.close();
  }
});

test('a status port out of range is refused by validation, exit 2', async () => {
  const { file } = await config('range', { status: { listen: '127.0.0.1:99999' } });
  const r = await run(file);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /status\.listen: the port must be 1 to 65535/);
});

test('a state directory that cannot be made ends the agent at once with the fix, its UDP port released', async () => {
  const notADir = join(dir, 'a-file');
  writeFileSync(notADir, 'x');
  const { file, udp } = await config('statedir', { stateDir: join(notADir, 'state') });
  const r = await run(file);
  assert.equal(r.timedOut, false, `the agent kept running: ${r.stderr}`);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /cannot create the state directory/);
  assert.match(r.stderr, /hint: set stateDir/);
  assert.equal(await udpFree(udp), true, 'the UDP port is released');
});

test('the robot agent (edgectl agent run) has no in-memory control plane: exit 2, naming the entry that has it', async () => {
  const { file, udp } = await config('memory', {});
  const r = await run(file, 30_000, [EDGECTL, 'agent', 'run']);
  assert.equal(r.code, 2, r.stderr);
  assert.match(
    r.stderr,
    /controlPlane\.runtime "memory" is not available in edgectl agent run, which runs k3s, none/,
  );
  assert.match(r.stderr, /agent\/testing\/main\.ts/);
  assert.equal(await udpFree(udp), true, 'nothing was bound');
});

test('/status answers while discovery is still starting', async () => {
  const cfg = validateAgentConfig({
    site: { id: 'boot' },
    node: { id: 'r1', serverCapable: true },
    voters: ['r1'],
    profile: 'test',
    stateDir: join(dir, 'slow-state'),
    controlPlane: { runtime: 'memory' },
  });
  const discovery = new InMemoryDiscovery(
    new InMemoryDiscoveryBus(),
    {
      siteId: 'boot',
      nodeId: 'r1',
      agentVersion: '0.1.0',
      role: 'starting',
      term: 0,
      port: 7946,
      serverCapable: true,
    },
    { addresses: ['127.0.0.1'] },
  );
  // A discovery that never finishes starting (a LAN host claiming every name we probe).
  let release: () => void = () => {};
  Object.assign(discovery, { start: () => new Promise<void>((r) => (release = r)) });
  const agent = new Agent({
    config: cfg,
    transport: new InMemoryNetwork().connect('r1'),
    discovery,
    runtime: new InMemoryControlPlane('r1'),
    store: new StateStore(cfg.stateDir),
    log: pino({ level: 'silent' }),
  });
  let server: Awaited<ReturnType<typeof startStatusServer>> | undefined;
  const starting = agent.start(async () => {
    server = await startStatusServer(agent, '127.0.0.1:0');
  });
  try {
    for (let i = 0; i < 200 && !server; i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(server, 'the status server started before discovery finished');
    const res = await fetch(`http://127.0.0.1:${server.port}/status`);
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as { node: string }).node, 'r1');
  } finally {
    release();
    await starting;
    await agent.stop();
    await server?.close();
  }
});
