/**
 * A peer's address has one owner, the transport: what the peer's own authenticated datagrams say,
 * else the latest hint (seeds, discovery). Everything else reads it there: where datagrams go, the
 * address a worker joins its leader's server at, /status's members and /site's leader address.
 * Here, on real UDP sockets on loopback, a worker comes back with a new DHCP address: it speaks
 * only when spoken to, so the leader finds it at the address its advertisement gives once its
 * membership has called it dead (Transport.releasePeer). Then the leader comes back at a new
 * address too. Each reader follows.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { pino } from 'pino';
import { Agent } from './agent.ts';
import { validateAgentConfig } from './config.ts';
import { InMemoryControlPlane } from './control-plane/testing/in-memory.ts';
import type { LeaderEndpoint } from './control-plane/runtime.ts';
import { InMemoryDiscovery, InMemoryDiscoveryBus } from './discovery/discovery.ts';
import { StateStore } from './persistence/state-store.ts';
import { siteKeyrings } from './site-key.ts';
import { UdpTransport } from './transport/udp.ts';

const SITE = 'dhcp';
const fastLifecycle = {
  discoveryWindowMs: 50,
  serverStartTimeoutMs: 2000,
  siteApplyTimeoutMs: 2000,
  joinTimeoutMs: 2000,
  reconcileEveryMs: 60_000,
  retryMinMs: 20,
  retryMaxMs: 200,
  joinRetryMaxMs: 200,
};

async function until(cond: () => boolean, what: string, ms = 15_000): Promise<void> {
  const end = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > end) assert.fail(`${what}: not in time`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The in-memory control plane, recording where each join went. */
class RecordingControlPlane extends InMemoryControlPlane {
  readonly joins: LeaderEndpoint[] = [];
  override async joinAsWorker(leader: LeaderEndpoint, epoch: number): Promise<void> {
    this.joins.push(leader);
    return super.joinAsWorker(leader, epoch);
  }
}

test('a robot that comes back with a new address is reached there by every reader of its address', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'edgectl-peer-address-'));
  const rings = siteKeyrings(randomBytes(32), SITE, ['v1'], ['v1', 'w1']);
  const bus = new InMemoryDiscoveryBus();
  const log = pino({ level: 'silent' });
  const started: Agent[] = [];
  /** One robot's agent at `host`, as it boots there (same id, same state directory). */
  const boot = async (id: string, host: string) => {
    const config = validateAgentConfig({
      site: { id: SITE },
      node: { id, serverCapable: id === 'v1' },
      voters: ['v1'],
      workers: ['w1'],
      profile: 'test',
      membership: { suspectAfterMs: 100, deadAfterMs: 300, lostAfterMs: 400 },
      stateDir: join(dir, id),
      controlPlane: { runtime: 'memory' },
    });
    const transport = await UdpTransport.open({
      self: id,
      siteId: SITE,
      keys: rings.get(id)!,
      port: 0,
      bindAddress: host,
    });
    const runtime = new RecordingControlPlane(id, { delayMs: 1 });
    const agent = new Agent({
      config,
      transport,
      runtime,
      discovery: new InMemoryDiscovery(
        bus,
        {
          siteId: SITE,
          nodeId: id,
          agentVersion: '0.1.0',
          role: 'starting',
          term: 0,
          port: transport.port,
          serverCapable: id === 'v1',
        },
        { addresses: [host] },
      ),
      store: new StateStore(config.stateDir),
      log,
      lifecycleTiming: fastLifecycle,
      seed: started.length + 1,
    });
    started.push(agent);
    await agent.start();
    return { agent, transport, runtime };
  };
  const addressesOf = (a: Agent, id: string) => a.status().members.find((m) => m.id === id)?.addresses;
  try {
    const v1 = await boot('v1', '127.0.0.1');
    let w1 = await boot('w1', '127.0.0.2');
    await until(() => v1.agent.ready() && w1.agent.ready(), 'the site formed');
    assert.equal(v1.transport.peerAddress('w1')?.host, '127.0.0.2');
    assert.deepEqual(w1.runtime.joins.at(-1)?.host, '127.0.0.1');

    // w1 powers off and comes back with a new DHCP lease: only its advertisement says where.
    await w1.agent.stop();
    w1 = await boot('w1', '127.0.0.3');
    await until(() => w1.agent.ready(), 'w1 hears its leader at its new address and joins again');
    // The leader's transport (where its heartbeats go) and its /status read the same new address.
    assert.equal(v1.transport.peerAddress('w1')?.host, '127.0.0.3');
    assert.equal(addressesOf(v1.agent, 'w1')?.[0], '127.0.0.3');
    assert.ok(!addressesOf(v1.agent, 'w1')?.includes('127.0.0.2'), 'the old lease is no address of w1');

    // The leader comes back at a new address too: w1 joins its server there, and names it there.
    await v1.agent.stop();
    const v1b = await boot('v1', '127.0.0.4');
    await until(
      () => v1b.agent.ready() && w1.agent.ready() && w1.runtime.joins.at(-1)?.host === '127.0.0.4',
      'w1 joins the leader at its new address',
    );
    assert.equal(w1.transport.peerAddress('v1')?.host, '127.0.0.4');
    assert.equal(addressesOf(w1.agent, 'v1')?.[0], '127.0.0.4');
    assert.equal((await w1.agent.siteView()).leaderAddress, '127.0.0.4');
  } finally {
    for (const a of started) await a.stop().catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  }
});
