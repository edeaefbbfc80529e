import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { loadSiteSpec } from '../../agent/site/spec.ts';
import { main } from '../main.ts';

const INVENTORY = fileURLToPath(new URL('../../templates/inventory/site.example.yaml', import.meta.url));

function io() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (t: string) => out.push(t), err: (t: string) => err.push(t) }, out, err };
}

test("render site -f <inventory> renders the inventory's site: section", async () => {
  const c = io();
  assert.equal(await main(['render', 'site', '-f', INVENTORY, '--no-addons'], c.io), 0, c.err.join('\n'));
  const yaml = c.out.join('\n');
  const site = loadSiteSpec(INVENTORY, { acceptInventory: true });
  assert.match(yaml, new RegExp(`kind: Namespace\\n[\\s\\S]*name: site-${site.id}`));
  assert.doesNotMatch(c.err.join('\n'), /unknown field/);
});

test('where a site spec is wanted, an inventory is named as one', () => {
  assert.throws(() => loadSiteSpec(INVENTORY), /this is an inventory \(it has robots:\), not a site spec/);
});
