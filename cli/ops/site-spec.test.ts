/**
 * `edgectl site apply` and `site history` against a real agent (one voter, in-memory transport and
 * runtime) behind its real status endpoint.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { pino } from 'pino';
import { operatorKey } from '../../agent/site-key.ts';
import { Agent } from '../../agent/agent.ts';
import { validateAgentConfig } from '../../agent/config.ts';
import { InMemoryControlPlane } from '../../agent/control-plane/testing/in-memory.ts';
import { InMemoryDiscovery, InMemoryDiscoveryBus } from '../../agent/discovery/discovery.ts';
import { ConfigError } from '../../agent/errors.ts';
import { StateStore } from '../../agent/persistence/state-store.ts';
import { fileSiteSpecSource } from '../../agent/site/spec-source.ts';
import { startStatusServer } from '../../agent/status-server.ts';
import { InMemoryNetwork } from '../../agent/transport/in-memory.ts';
import { runSiteApply, runSiteHistory } from './site-spec.ts';

const SITE = 'cli-apply';

async function until(cond: () => boolean | Promise<boolean>, ms = 15_000): Promise<void> {
  const end = performance.now() + ms;
  while (!(await cond())) {
    if (performance.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('site apply shows the diff, proposes nothing on --dry-run, commits a signed change; history lists it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'edgectl-site-cli-'));
  const key = Buffer.alloc(32, 3);
  const keyFile = join(dir, 'site.key');
  // The site directory's master secret, as bootstrap keeps it: 64 hex digits, 0600.
  writeFileSync(keyFile, `${key.toString('hex')}\n`, { mode: 0o600 });
  const wrongKeyFile = join(dir, 'wrong.key');
  writeFileSync(wrongKeyFile, `${Buffer.alloc(32, 4).toString('hex')}\n`, { mode: 0o600 });
  const installed = join(dir, 'installed.yaml');
  writeFileSync(installed, `id: ${SITE}\nquota:\n  hard:\n    pods: "10"\n`);
  const config = validateAgentConfig({
    site: { id: SITE },
    node: { id: 'k1', serverCapable: true },
    voters: ['k1'],
    profile: 'lab',
    stateDir: join(dir, 'state'),
    controlPlane: { runtime: 'memory' },
  });
  const runtime = new InMemoryControlPlane('k1');
  const agent = new Agent({
    config,
    transport: new InMemoryNetwork().connect('k1'),
    discovery: new InMemoryDiscovery(
      new InMemoryDiscoveryBus(),
      {
        siteId: SITE,
        nodeId: 'k1',
        agentVersion: '0.1.0',
        role: 'starting',
        term: 0,
        port: 7946,
        serverCapable: true,
      },
      { addresses: ['10.0.0.1'] },
    ),
    runtime,
    store: new StateStore(config.stateDir),
    log: pino({ level: 'silent' }),
    siteSpecs: fileSiteSpecSource(installed),
    // What bootstrap installs on a voter: the operator key of generation 1.
    operatorKeys: () => [operatorKey(key, 1)],
  });
  const lines: string[] = [];
  const io = { out: (t: string) => lines.push(t), err: (t: string) => lines.push(t) };
  await agent.start();
  const srv = await startStatusServer(agent, '127.0.0.1:0');
  const addr = `127.0.0.1:${srv.port}`;
  try {
    await until(async () => (await agent.siteView()).committed?.version === 1);
    const proposed = join(dir, 'proposed.yaml');
    writeFileSync(proposed, `# the new quota\nid: ${SITE}\nquota:\n  hard:\n    pods: "42"\n`);

    const dry = await runSiteApply({ file: proposed, addr, dryRun: true, output: 'table' }, io);
    assert.deepEqual(
      dry.changes.map((c) => [c.path, c.before, c.after]),
      [['quota.hard.pods', '"10"', '"42"']],
    );
    assert.equal(dry.result, null);
    assert.match(lines.join('\n'), /quota\.hard\.pods: "10" → "42"\ndry run: nothing proposed/);
    assert.equal((await agent.siteView()).committed?.version, 1, 'a dry run proposes nothing');

    await assert.rejects(
      runSiteApply({ file: proposed, addr, dryRun: false, siteKey: wrongKeyFile, output: 'table' }, io),
      (e: Error & { code?: string }) => e.code === 'EDGE_SITE_APPLY_UNAUTHENTICATED',
    );
    const invalid = join(dir, 'invalid.yaml');
    writeFileSync(invalid, `id: ${SITE}\nquota:\n  hard:\n    pods: lots\n`);
    await assert.rejects(
      runSiteApply({ file: invalid, addr, dryRun: true, output: 'table' }, io),
      (e) => e instanceof ConfigError && /quota\.hard\.pods/.test(e.message),
    );

    const applied = await runSiteApply(
      { file: proposed, addr, dryRun: false, siteKey: keyFile, output: 'json' },
      io,
    );
    assert.equal(applied.result?.kind, 'committed');
    assert.equal(applied.result?.kind === 'committed' && applied.result.version, 2);
    await until(async () => (await agent.siteView()).applied?.version === 2);
    const again = await runSiteApply(
      { file: proposed, addr, dryRun: false, siteKey: keyFile, output: 'table' },
      io,
    );
    assert.equal(again.result, null);
    assert.match(lines.at(-1)!, /nothing to apply/);

    const history = await runSiteHistory({ addr, output: 'table' }, io);
    assert.deepEqual(
      history.map((v) => [v.version, v.changes]),
      [
        [1, ['first version in the site log']],
        [2, ['quota.hard.pods: "10" → "42"']],
      ],
    );
    assert.match(lines.at(-1)!, /^version +term +index +digest +when +what changed\n1 /);
  } finally {
    await srv.close();
    await agent.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
