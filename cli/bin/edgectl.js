#!/usr/bin/env node
// edgectl's entry point. edgectl runs its TypeScript sources directly on Node 24 (type stripping),
// so there is no build step. If this file was started by an older `node` (a system Node 20, say),
// it re-runs itself on the Node 24 runtime that `npm ci` installed as a dependency (docs/runtime.md).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { constants } from 'node:os';
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
  // The wrapper is invisible: a signal meant for edgectl (systemd's stop, kill, a closed terminal) goes
  // to the Node 24 process that does the work, and edgectl ends the way that process ended. Without
  // this, SIGTERM would end the wrapper alone and leave the child running with nobody waiting for it.
  // The handlers go in before the child exists: a signal in between would otherwise end the wrapper
  // by default and orphan the child it had just started.
  const forwarded = ['SIGTERM', 'SIGINT', 'SIGHUP'];
  let child = null;
  const forward = (signal) => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill(signal);
  };
  for (const signal of forwarded) process.on(signal, forward);
  child = spawn(pinned, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
    stdio: 'inherit',
  });
  child.on('error', (e) => {
    process.stderr.write(`edgectl: cannot start ${pinned}: ${e.message}\n`);
    process.exit(1);
  });
  child.on('exit', (code, signal) => {
    if (signal === null) process.exit(code ?? 1);
    // Die of the same signal, so whoever started edgectl sees what really happened.
    for (const s of forwarded) process.removeAllListeners(s);
    process.kill(process.pid, signal);
    // Should the signal not end this process after all, exit the way a shell reports a signal.
    globalThis.setTimeout(() => process.exit(128 + (constants.signals[signal] ?? 0)), 1000);
  });
} else {
  const { main } = await import('../main.ts');
  process.exitCode = await main(process.argv.slice(2));
}
