import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { after, test } from 'node:test';
import { LocalCommandRunner } from './local.ts';
import { describeRunnerContract } from './runner.contract.ts';

// The contract's sudo tests need root (as CI runs): refuse loudly rather than skip.
const isRoot = process.getuid?.() === 0;
const scratch = mkdtempSync('/run/ebs-local-runner-');
after(() => rmSync(scratch, { recursive: true, force: true }));

test('the local runner contract runs as root', () => {
  assert.ok(isRoot, 'run this test as root (sudo), like CI: the contract writes root-owned files');
});

describeRunnerContract('local', async () => ({ runner: new LocalCommandRunner(), scratch }));

test('the log callback sees every command line, quoted for a shell', async () => {
  const lines: string[] = [];
  const r = new LocalCommandRunner({ log: (l) => lines.push(l) });
  await r.run(['printf', '%s', 'a b']);
  assert.deepEqual(lines, ["local$ printf %s 'a b'"]);
});
