import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { main } from '../main.ts';
import { parseInventory } from './inventory.ts';
import { inventoryWarnings } from './inventory-warnings.ts';
import { testPrivateKey } from './testing/test-key.ts';

const base = {
  site: { id: 'lab' },
  robots: [{ name: 'r1', address: '10.0.0.1', ssh: { user: 'e', keyFile: 'id' }, serverCapable: true }],
};

test('discovery.port 5353 or 7949 and profile: test are valid, but warned about', () => {
  assert.deepEqual(inventoryWarnings(parseInventory(base)), []);
  assert.match(
    inventoryWarnings(parseInventory({ ...base, discovery: { port: 5353 } })).join(),
    /mDNS's own port/,
  );
  assert.match(
    inventoryWarnings(parseInventory({ ...base, discovery: { port: 7949 } })).join(),
    /multicast probe/,
  );
  assert.match(
    inventoryWarnings(parseInventory({ ...base, profile: 'test' })).join(),
    /profile: test is for tests/,
  );
});

test('inventory validate prints the warnings (stderr; warnings[] in JSON)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'edgectl-warn-'));
  writeFileSync(join(dir, 'id'), testPrivateKey(), { mode: 0o600 });
  writeFileSync(join(dir, 'agent.mjs'), 'export {};\n');
  const file = join(dir, 'site.yaml');
  writeFileSync(
    file,
    JSON.stringify({ ...base, profile: 'test', bundle: { agent: 'agent.mjs', node: 'agent.mjs' } }),
  );
  const err: string[] = [];
  const out: string[] = [];
  const code = await main(['inventory', 'validate', '-f', file], {
    out: (t) => out.push(t),
    err: (t) => err.push(t),
  });
  assert.equal(code, 0, err.join('\n'));
  assert.match(err.join('\n'), /^warning: profile: test/m);
  const json: string[] = [];
  await main(['inventory', 'validate', '-f', file, '-ojson'], { out: (t) => json.push(t), err: () => {} });
  assert.equal(JSON.parse(json.join('')).warnings.length, 1);
});
