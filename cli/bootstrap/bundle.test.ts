import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { EdgeError } from '../../agent/errors.ts';
import { agentChunks, chunkImports, describeBundle, elfArch } from './bundle.ts';
import { sha256Hex } from './plan.ts';

const dir = mkdtempSync(join(tmpdir(), 'edgectl-bundle-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('chunkImports: static and dynamic imports of files beside it, as esbuild writes them minified', () => {
  const source =
    "import{createRequire as __edgectl_cr}from'node:module';const require=__edgectl_cr(import.meta.url);" +
    'import{a as b,c}from"./edgectl-agent-AAAA1111.mjs";import"./edgectl-agent-BBBB2222.mjs";' +
    'import*as z from"./edgectl-agent-AAAA1111.mjs";import{x}from"node:crypto";import y from"yaml";' +
    'async function r(){let{m:e}=await import("./edgectl-agent-CCCC3333.mjs");' +
    'return import( "./edgectl-agent-DDDD4444.mjs" )}export*from"./edgectl-agent-EEEE5555.mjs";' +
    // Not imports: a relative path in a string, a URL beside the file, another directory.
    'var s="./edgectl-agent-FFFF6666.mjs",u=new URL("./edgectl-agent-GGGG7777.mjs",import.meta.url);' +
    'import"../up.mjs";import"./sub/x.mjs";';
  assert.deepEqual(chunkImports(source), [
    'edgectl-agent-AAAA1111.mjs',
    'edgectl-agent-BBBB2222.mjs',
    'edgectl-agent-CCCC3333.mjs',
    'edgectl-agent-DDDD4444.mjs',
    'edgectl-agent-EEEE5555.mjs',
  ]);
});

test('chunkImports: a CommonJS file beside it that it requires or resolves, as esbuild writes it minified', () => {
  // agent/main.ts: minifying renames the `require` that createRequire makes.
  const source =
    'import{createRequire as n}from"node:module";var l=t=>Pe(t,n(import.meta.url).resolve("./edgectl-agent-config.cjs"));' +
    'import"./edgectl-agent-A.mjs";var m=o( \'./other.cjs\' ),k=r.resolve("./edgectl-agent-config.cjs");' +
    // Not requires: a path in a string, a URL beside the file, another directory, a second argument.
    'var s="./s.cjs",u=new URL("./u.cjs",import.meta.url);r("../up.cjs");r("./sub/x.cjs");r("./two.cjs",1);' +
    'require("node:fs");';
  assert.deepEqual(chunkImports(source), ['edgectl-agent-config.cjs', 'edgectl-agent-A.mjs', 'other.cjs']);
});

function writeBundle(name: string, files: Record<string, string>): string {
  const d = mkdtempSync(join(dir, `${name}-`));
  for (const [f, text] of Object.entries(files)) writeFileSync(join(d, f), text);
  return d;
}

test('agentChunks: every chunk the entry needs, transitively through static and dynamic imports and requires, sorted', () => {
  const d = writeBundle('closure', {
    'edgectl-agent.mjs':
      'import{a}from"./edgectl-agent-C.mjs";const r=()=>import("./edgectl-agent-B.mjs");' +
      'const l=t=>Pe(t,n(import.meta.url).resolve("./edgectl-agent-config.cjs"));',
    'edgectl-agent-config.cjs': '"use strict";var f=require("node:fs");',
    // B imports D statically and C again; D imports B back (a cycle) and dynamically E.
    'edgectl-agent-B.mjs': 'import"./edgectl-agent-D.mjs";import{c}from"./edgectl-agent-C.mjs";',
    'edgectl-agent-C.mjs': 'export const a=1;',
    'edgectl-agent-D.mjs':
      'import"./edgectl-agent-B.mjs";export const f=()=>import("./edgectl-agent-E.mjs");',
    'edgectl-agent-E.mjs': 'export{};',
    // Beside the entry, imported by nothing: an older build's, not part of this agent.
    'edgectl-agent-OLD.mjs': 'export{};',
  });
  assert.deepEqual(
    agentChunks(join(d, 'edgectl-agent.mjs')),
    [...['B', 'C', 'D', 'E'].map((x) => `edgectl-agent-${x}.mjs`), 'edgectl-agent-config.cjs']
      .sort()
      .map((f) => join(d, f)),
  );
  // A single-file agent has no chunks.
  const one = writeBundle('single', { 'edgectl-agent.mjs': 'console.log(1);' });
  assert.deepEqual(agentChunks(join(one, 'edgectl-agent.mjs')), []);
});

test('agentChunks: a missing chunk, even one imported only dynamically, is an error naming it and its fix', () => {
  const d = writeBundle('missing', {
    'edgectl-agent.mjs': 'import"./edgectl-agent-A.mjs";',
    'edgectl-agent-A.mjs': 'export const k=()=>import("./edgectl-agent-GONE.mjs");',
  });
  assert.throws(
    () => agentChunks(join(d, 'edgectl-agent.mjs')),
    (e: unknown) =>
      e instanceof EdgeError &&
      e.code === 'EDGE_BUNDLE_AGENT_CHUNK' &&
      e.message.includes(join(d, 'edgectl-agent-GONE.mjs')) &&
      e.message.includes('is missing') &&
      e.message.includes('edgectl-agent-A.mjs imports it') &&
      /run npm run build:agent/.test(e.hint ?? ''),
  );
});

test('agentChunks: a missing config loader is an error too', () => {
  const d = writeBundle('no-loader', {
    'edgectl-agent.mjs': 'n(import.meta.url).resolve("./edgectl-agent-config.cjs");',
  });
  assert.throws(
    () => agentChunks(join(d, 'edgectl-agent.mjs')),
    (e: unknown) =>
      e instanceof EdgeError &&
      e.code === 'EDGE_BUNDLE_AGENT_CHUNK' &&
      e.message.includes(join(d, 'edgectl-agent-config.cjs')) &&
      e.message.includes('edgectl-agent.mjs imports it'),
  );
});

test('describeBundle: the agent with the SHA-256 and size of each chunk, and the Node runtime’s CPU', async () => {
  const elf = Buffer.alloc(64);
  elf.writeUInt32BE(0x7f454c46, 0);
  elf[5] = 1;
  elf.writeUInt16LE(0xb7, 18);
  assert.equal(elfArch(elf), 'aarch64');
  const d = writeBundle('describe', {
    'edgectl-agent.mjs': 'const r=()=>import("./edgectl-agent-Z.mjs");import"./edgectl-agent-Y.mjs";',
    'edgectl-agent-Y.mjs': 'export{};',
    'edgectl-agent-Z.mjs': 'export const z=26;',
  });
  writeFileSync(join(d, 'node'), elf);
  const file = (f: string) => ({
    localPath: join(d, f),
    sha256: sha256Hex(readFileSync(join(d, f))),
    bytes: readFileSync(join(d, f)).length,
  });
  const b = await describeBundle({ agent: join(d, 'edgectl-agent.mjs'), node: join(d, 'node') });
  assert.deepEqual(b, {
    agent: {
      ...file('edgectl-agent.mjs'),
      chunks: [file('edgectl-agent-Y.mjs'), file('edgectl-agent-Z.mjs')],
    },
    node: { ...file('node'), arch: 'aarch64' },
  });
  rmSync(join(d, 'edgectl-agent-Z.mjs'));
  await assert.rejects(describeBundle({ agent: join(d, 'edgectl-agent.mjs'), node: join(d, 'node') }), {
    code: 'EDGE_BUNDLE_AGENT_CHUNK',
  });
});
