/**
 * The spec loader run as the bundled agent runs it (a child process, here from the sources) gives
 * the agent the same specs, templates and errors as fileSiteSpecSource in its own process; and a
 * leader loads a spec once, not on every apply.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, test } from 'node:test';
import { ConfigError, InternalError } from '../errors.ts';
import { InMemoryObjectClient } from './in-memory-client.ts';
import { LeaderSite } from './leader-site.ts';
import { fileSiteSpecSource, type LoadedSite } from './spec-source.ts';
import { subprocessSiteSpecSource } from './spec-subprocess.ts';

const LOADER = fileURLToPath(new URL('./spec-loader.ts', import.meta.url));
const TEMPLATES = fileURLToPath(new URL('../../templates/', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'edgectl-spec-subprocess-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const installed = join(dir, 'site.yaml');
writeFileSync(installed, '# the robot site\nid: lab\nquota:\n  hard: {pods: "40"}\n');

test('the child answers local, validate and load as fileSiteSpecSource does in-process', async () => {
  const inProcess = fileSiteSpecSource(installed, TEMPLATES);
  const child = subprocessSiteSpecSource(installed, TEMPLATES, LOADER);
  const local = await child.local();
  assert.equal(local, await inProcess.local());
  assert.equal(JSON.parse(local!).quota.hard.pods, '40');
  assert.equal(await subprocessSiteSpecSource(undefined, TEMPLATES, LOADER).local(), null);
  assert.equal(await child.validate(local!, 'lab'), await inProcess.validate(local!, 'lab'));
  const loaded = await child.load(local!, 'installed site spec');
  assert.deepEqual(loaded, await inProcess.load(local!, 'installed site spec'));
  assert.equal(loaded.spec.id, 'lab');
  assert.ok(loaded.templates.some((t) => t.objects.some((o) => o.kind === 'DaemonSet')));
});

test("the child's ConfigError comes back as the same ConfigError; a failure of its own as an InternalError", async () => {
  const child = subprocessSiteSpecSource(undefined, TEMPLATES, LOADER);
  const text = JSON.stringify({ id: 'Bad Site' });
  const inProcess = await fileSiteSpecSource(undefined, TEMPLATES)
    .validate(text, 'lab')
    .then(
      () => assert.fail('expected a ConfigError'),
      (e: unknown) => e,
    );
  assert.ok(inProcess instanceof ConfigError);
  await assert.rejects(child.validate(text, 'lab'), (e: unknown) => {
    assert.ok(e instanceof ConfigError);
    assert.deepEqual([e.source, e.problems, e.hint], [inProcess.source, inProcess.problems, inProcess.hint]);
    return true;
  });
  await assert.rejects(child.validate(JSON.stringify({ id: 'other' }), 'lab'), ConfigError);
  await assert.rejects(
    subprocessSiteSpecSource(undefined, join(dir, 'no-templates'), LOADER).load('{"id":"lab"}', 'x'),
    (e: unknown) => e instanceof InternalError && /cannot read the addon template/.test(e.message),
  );
  await assert.rejects(
    subprocessSiteSpecSource(undefined, TEMPLATES, join(dir, 'no-loader.cjs')).local(),
    InternalError,
  );
});

test('a LeaderSite loads each spec once: applying it again, for a new epoch too, parses nothing', async () => {
  const specs = fileSiteSpecSource(installed, TEMPLATES);
  const loads: string[] = [];
  const site = new LeaderSite({
    nodeId: 'r1',
    log: { info: () => undefined, warn: () => undefined },
    load: (text, source): Promise<LoadedSite> => {
      loads.push(source);
      return specs.load(text, source);
    },
  });
  const client = new InMemoryObjectClient();
  const text = (await specs.local())!;
  await site.apply(client, 1, { text, version: 0 });
  await site.apply(client, 1, { text, version: 0 });
  await site.apply(client, 2, { text, version: 1 });
  assert.deepEqual(loads, ['installed site spec']);
  const next = JSON.stringify({ ...JSON.parse(text), quota: { hard: { pods: '50' } } });
  await site.apply(client, 2, { text: next, version: 2 });
  assert.deepEqual(loads, ['installed site spec', 'site spec version 2']);
});
