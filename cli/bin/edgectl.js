#!/usr/bin/env node
// edgectl's entry point. edgectl runs its TypeScript sources directly on Node 24 (type stripping),
// so there is no build step. If this file was started by an older `node` (a system Node 20, say),
// it re-runs itself on the Node 24 runtime that `npm ci` installed as a dependency (docs/runtime.md).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  const pinned = fileURLToPath(new URL('../../node_modules/node/bin/node', import.meta.url));
  if (!existsSync(pinned)) {
    process.stderr.write(
      `edgectl: needs Node.js 24 (this is ${process.version}).\n  hint: run "npm ci" in the edgectl directory; it installs the pinned runtime.\n`,
    );
    process.exit(1);
  }
  const r = spawnSync(pinned, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
    stdio: 'inherit',
  });
  process.exit(r.status ?? 1);
}

const { main } = await import('../main.ts');
process.exitCode = await main(process.argv.slice(2));
