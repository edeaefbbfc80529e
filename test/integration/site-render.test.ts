/**
 * `edgectl render site` end to end through the CLI: numbered files, addons apart, JSON listing,
 * stale files removed, and an invalid spec refused before anything is written. No cluster involved.
 */
import assert from 'node:assert/strict';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { parse } from 'yaml';
import { main } from '../../cli/main.ts';

const dir = mkdtempSync(join(tmpdir(), 'edgectl-render-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const example = new URL('../../templates/site/site.example.yaml', import.meta.url).pathname;

function io() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (t: string) => out.push(t), err: (t: string) => err.push(t) }, out, err };
}

test('render site --out writes one numbered file per object, addons apart, and lists them as JSON', async () => {
  const out = join(dir, 'manifests');
  const c = io();
  const code = await main(
    ['render', 'site', '-f', example, '--out', out, '--epoch', '3', '--output', 'json'],
    c.io,
  );
  assert.equal(code, 0, c.err.join('\n'));
  const result = JSON.parse(c.out.join(''));
  assert.equal(result.site, 'dock-a');
  const siteFiles = readdirSync(out).filter((f) => f.endsWith('.yaml'));
  assert.equal(siteFiles[0], '00-namespace.yaml');
  assert.ok(siteFiles.includes('01-validatingadmissionpolicy-edgectl-site-dock-a.yaml'));
  assert.ok(siteFiles.includes('03-networkpolicy-default-deny.yaml'));
  assert.ok(siteFiles.some((f) => /^\d\d-networkattachmentdefinition-dds\.yaml$/.test(f)));
  const addonFiles = readdirSync(join(out, 'addons')).filter((f) => f.endsWith('.yaml'));
  assert.ok(existsSync(join(out, '.edgectl-render.json')), 'the manifest of what it wrote');
  assert.equal(
    addonFiles[0],
    '00-customresourcedefinition-network-attachment-definitions.k8s.cni.cncf.io.yaml',
  );
  assert.equal(result.files.length, siteFiles.length + addonFiles.length);
  const ns = parse(readFileSync(join(out, '00-namespace.yaml'), 'utf8'));
  assert.equal(ns.metadata.name, 'site-dock-a');
  assert.equal(ns.metadata.labels['edgectl.io/epoch'], '3');
  for (const f of result.files) assert.ok(existsSync(join(out, f.file)), f.file);
});

test('a re-render removes the numbered files the spec no longer names, and nothing else', async () => {
  const out = join(dir, 'rerender');
  const spec = join(dir, 'two.yaml');
  writeFileSync(
    spec,
    'id: x\nnetworks:\n  - { name: a, master: eth1, range: 10.9.0.0/24 }\n  - { name: b, master: eth1, range: 10.9.1.0/24 }\n',
  );
  assert.equal(await main(['render', 'site', '-f', spec, '--out', out, '--no-addons'], io().io), 0);
  writeFileSync(join(out, 'kustomization.yaml'), 'resources: []\n');
  writeFileSync(spec, 'id: x\nnetworks:\n  - { name: a, master: eth1, range: 10.9.0.0/24 }\n');
  const c = io();
  assert.equal(await main(['render', 'site', '-f', spec, '--out', out, '--no-addons'], c.io), 0);
  const files = readdirSync(out);
  assert.ok(!files.some((f) => f.includes('networkattachmentdefinition-b')));
  assert.ok(files.includes('kustomization.yaml'));
  assert.ok(!existsSync(join(out, 'addons')));
  assert.match(c.out.join(''), /removed stale/);
});

test('an invalid spec is refused with every problem, and nothing is written', async () => {
  const out = join(dir, 'never');
  const spec = join(dir, 'bad.yaml');
  writeFileSync(
    spec,
    'id: x\nnetworks:\n  - { name: a, master: eth1, range: 10.9.0.0/24, rangeStart: 10.9.1.5, exclude: [10.8.0.1] }\n',
  );
  const c = io();
  const code = await main(['render', 'site', '-f', spec, '--out', out], c.io);
  assert.equal(code, 2);
  const err = c.err.join('\n');
  assert.match(err, /networks\[0\]\.rangeStart: 10\.9\.1\.5 is outside range/);
  assert.match(err, /networks\[0\]\.exclude\[0\]: 10\.8\.0\.1 is outside range/);
  assert.ok(!existsSync(out));
});

test('without --out, render site prints one YAML stream, CRDs first', async () => {
  const c = io();
  assert.equal(await main(['render', 'site', '-f', example], c.io), 0);
  const text = c.out.join('');
  assert.ok(
    text.indexOf('kind: CustomResourceDefinition') < text.indexOf('kind: NetworkAttachmentDefinition'),
  );
  assert.ok(text.startsWith('---\n'));
});

test('a re-render prunes only files it wrote: a user numbered file stays, here and in addons/', async () => {
  const out = join(dir, 'users-files');
  const spec = join(dir, 'users.yaml');
  writeFileSync(
    spec,
    'id: u\nnetworks:\n  - { name: a, master: eth1, range: 10.9.0.0/24 }\n  - { name: b, master: eth1, range: 10.9.1.0/24 }\n',
  );
  assert.equal(await main(['render', 'site', '-f', spec, '--out', out], io().io), 0);
  const stale = readdirSync(out).find((f) => f.includes('networkattachmentdefinition-b'))!;
  // The user's own numbered files, beside edgectl's.
  writeFileSync(join(out, '00-my-own-thing.yaml'), 'kind: ConfigMap\n');
  writeFileSync(join(out, '99-zz-extra.yaml'), 'kind: Secret\n');
  writeFileSync(join(out, 'addons', '50-custom.yaml'), 'kind: ConfigMap\n');
  writeFileSync(spec, 'id: u\nnetworks:\n  - { name: a, master: eth1, range: 10.9.0.0/24 }\n');
  const c = io();
  assert.equal(await main(['render', 'site', '-f', spec, '--out', out], c.io), 0, c.err.join('\n'));
  const files = readdirSync(out);
  assert.ok(!files.includes(stale), `${stale} was edgectl's and is no longer rendered`);
  assert.ok(files.includes('00-my-own-thing.yaml'));
  assert.ok(files.includes('99-zz-extra.yaml'));
  assert.ok(existsSync(join(out, 'addons', '50-custom.yaml')));
  assert.equal(readFileSync(join(out, '00-my-own-thing.yaml'), 'utf8'), 'kind: ConfigMap\n');
});

test('render refuses to overwrite a file it did not write, and writes nothing', async () => {
  const out = join(dir, 'clash');
  const spec = join(dir, 'clash.yaml');
  writeFileSync(spec, 'id: c\n');
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, '00-namespace.yaml'), '# mine\n');
  const c = io();
  assert.equal(await main(['render', 'site', '-f', spec, '--out', out], c.io), 2);
  assert.match(c.err.join('\n'), /00-namespace\.yaml .*not written by edgectl/);
  assert.equal(readFileSync(join(out, '00-namespace.yaml'), 'utf8'), '# mine\n');
  assert.deepEqual(readdirSync(out), ['00-namespace.yaml']);
});

test('files of a render made before the manifest existed are recognised by their label', async () => {
  const out = join(dir, 'legacy');
  const spec = join(dir, 'legacy.yaml');
  writeFileSync(
    spec,
    'id: l\nnetworks:\n  - { name: a, master: eth1, range: 10.9.0.0/24 }\n  - { name: b, master: eth1, range: 10.9.1.0/24 }\n',
  );
  assert.equal(await main(['render', 'site', '-f', spec, '--out', out, '--no-addons'], io().io), 0);
  for (const f of readdirSync(out)) if (f.startsWith('.')) rmSync(join(out, f));
  writeFileSync(spec, 'id: l\nnetworks:\n  - { name: a, master: eth1, range: 10.9.0.0/24 }\n');
  assert.equal(await main(['render', 'site', '-f', spec, '--out', out, '--no-addons'], io().io), 0);
  assert.ok(!readdirSync(out).some((f) => f.includes('networkattachmentdefinition-b')));
});
