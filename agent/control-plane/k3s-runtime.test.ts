import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { validateAgentConfig } from '../config.ts';
import { ConfigError } from '../errors.ts';
import { makeK3sControlPlane } from './k3s-runtime.ts';

const log = pino({ level: 'silent' });
const base = { site: { id: 'dock-a' }, node: { id: 'spot-1', serverCapable: true }, voters: ['spot-1'] };

test('the config loader refuses a k3s section without its k3s settings, naming each field', () => {
  assert.throws(
    () => validateAgentConfig({ ...base, controlPlane: { runtime: 'k3s', k3s: { flannelIface: 'wlan0' } } }),
    (e: unknown) =>
      e instanceof ConfigError && e.problems.some((p) => p.startsWith('controlPlane.k3s.nodeIp')),
  );
});

test('a config without controlPlane.runtime is refused, naming the fix', () => {
  assert.throws(
    () => validateAgentConfig(base),
    (e: unknown) =>
      e instanceof ConfigError &&
      e.problems.some((p) => /^controlPlane: required: set controlPlane.runtime to k3s/.test(p)),
  );
});

test('the k3s runtime is built from the agent config, and the config carries the site spec', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'edgectl-k3s-rt-'));
  writeFileSync(join(dir, 'site.yaml'), 'id: dock-a\n');
  const config = validateAgentConfig({
    ...base,
    controlPlane: {
      runtime: 'k3s',
      k3s: { nodeIp: '10.20.0.11' },
      siteSpecFile: join(dir, 'site.yaml'),
      templatesDir: fileURLToPath(new URL('../../templates/', import.meta.url)),
      snapshotReceiver: false,
    },
  });
  assert.equal(config.siteSpec.id, 'dock-a');
  const rt = await makeK3sControlPlane({ config, log, siteKey: Buffer.alloc(32, 1) });
  assert.equal(rt.kind, 'k3s');
  const st = rt.status();
  assert.deepEqual([st.server, st.worker, st.details?.['node']], [null, null, 'spot-1']);
});
