import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import fc from 'fast-check';
import { newMarkers, shellQuote, shellQuoteArg, tempPathFor, wrapArgv } from './posix.ts';

test('plain words stay readable; everything else is single-quoted', () => {
  assert.equal(
    shellQuote(['systemctl', 'enable', '--now', 'edgectl-agent.service']),
    'systemctl enable --now edgectl-agent.service',
  );
  assert.equal(shellQuoteArg(''), "''");
  assert.equal(shellQuoteArg("it's"), `'it'\\''s'`);
  assert.equal(shellQuoteArg('$(reboot)'), `'$(reboot)'`);
});

test('property: sh splits a quoted command line back into the same argv', () => {
  // One sh per batch of 40 argvs keeps this cheap.
  const argvs = fc.sample(
    fc.array(
      // No NUL (an argv cannot hold one), and no argument that is exactly \x01, the separator this
      // test prints between argvs.
      fc
        .string({ unit: 'binary' })
        .map((s) => s.replaceAll('\0', ''))
        .filter((s) => s !== '\u0001'),
      { maxLength: 5 },
    ),
    40,
  );
  const script = argvs.map((a) => `printf '%s\\0' ${shellQuote(a)}; printf '\\1\\0'`).join('\n');
  const out = execFileSync('sh', ['-c', script]).toString('utf8').split('\0').slice(0, -1);
  const got: string[][] = [[]];
  for (const s of out) {
    if (s === '\u0001') got.push([]);
    else got[got.length - 1]!.push(s);
  }
  got.pop();
  // printf '%s\0' with no operands prints one empty string.
  assert.deepEqual(
    got,
    argvs.map((a) => (a.length === 0 ? [''] : a)),
  );
});

test('wrapArgv: sudo with a password gets -S -k, a prompt marker and the ready announcement', () => {
  const m = newMarkers('abc');
  assert.deepEqual(wrapArgv(['id', '-u'], { sudo: 'password', markers: m }), [
    'sudo',
    '-S',
    '-k',
    '-p',
    '[edgectl-sudo-abc]',
    '--',
    'sh',
    '-c',
    'printf "%s\\n" "$0" >&2; exec "$@"',
    'edgectl-ready-abc',
    'id',
    '-u',
  ]);
  assert.deepEqual(wrapArgv(['id'], { sudo: 'nopasswd', markers: m }).slice(0, 3), ['sudo', '-n', '--']);
  assert.deepEqual(wrapArgv(['id'], { sudo: 'none', markers: m }), ['id']);
  assert.deepEqual(wrapArgv(['pwd'], { sudo: false, cwd: '/x y', markers: m, remoteTimeoutMs: 1500 }), [
    'sh',
    '-c',
    'cd -- "$0" && exec "$@"',
    '/x y',
    'timeout',
    '-k',
    '2',
    '1.500',
    'pwd',
  ]);
});

test('the temp file sits beside the target, hidden', () => {
  assert.equal(tempPathFor('/etc/edgectl/site.key', 'n1'), '/etc/edgectl/.site.key.edgectl-n1');
});
