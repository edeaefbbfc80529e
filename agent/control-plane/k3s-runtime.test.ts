import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import type { AgentConfig } from '../config.ts';
import { ConfigError } from '../errors.ts';
import { makeK3sControlPlane } from './k3s-runtime.ts';

const log = pino({ level: 'silent' });
const base = { site: { id: 'dock-a' }, node: { id: 'spot-1' }, voters: ['spot-1'], network: { seeds: [] } };

test('the k3s runtime refuses a config without its k3s settings, naming each field', async () => {
  const config = {
    ...base,
    controlPlane: { runtime: 'k3s', k3s: { flannelIface: 'wlan0' } },
  } as unknown as AgentConfig;
  await assert.rejects(
    makeK3sControlPlane(config, log),
    (e: unknown) =>
      e instanceof ConfigError && e.problems.some((p) => p.startsWith('controlPlane.k3s.nodeIp')),
  );
});

test('the k3s runtime is built from the agent config and the site spec', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'edgectl-k3s-rt-'));
  writeFileSync(join(dir, 'site.yaml'), 'id: dock-a\n');
  const config = {
    ...base,
    controlPlane: {
      runtime: 'k3s',
      k3s: { nodeIp: '10.20.0.11' },
      siteSpecFile: join(dir, 'site.yaml'),
      templatesDir: fileURLToPath(new URL('../../templates/', import.meta.url)),
    },
  } as unknown as AgentConfig;
  const rt = await makeK3sControlPlane(config, log);
  assert.equal(rt.kind, 'k3s');
  const st = rt.status();
  assert.deepEqual(
    [st.server, st.worker, st.siteAppliedEpoch, st.details?.['node']],
    [null, null, null, 'spot-1'],
  );
});
