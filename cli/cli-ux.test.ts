/**
 * The command line as an operator meets it: JSON errors scripts can walk, the short output flag,
 * no-argument help, the version, --quiet, NO_COLOR, escape-free output, a closed pipe, completion.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { main } from './main.ts';
import { escapeControl, wantsLiveOutput } from './output.ts';
import { testPrivateKey } from './bootstrap/testing/test-key.ts';

const EDGECTL = fileURLToPath(new URL('./bin/edgectl.js', import.meta.url));

function io(live: { write(s: string): unknown } | null = null) {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (t: string) => out.push(t), err: (t: string) => err.push(t), live }, out, err };
}

for (const flags of [['-ojson'], ['--output=json'], ['-o=json'], ['--output', 'json']]) {
  test(`usage failures are JSON with ${flags.join(' ')}`, async () => {
    const c = io();
    assert.equal(await main(['sim', '--bogus', ...flags], c.io), 2);
    const e = JSON.parse(c.err.join('')).error;
    assert.equal(e.code, 'EDGE_BAD_ARGUMENTS');
    assert.deepEqual(e.errors, [
      {
        path: '--bogus',
        message: 'unknown flag',
        hint: 'run the command with --help to see its options and examples',
      },
    ]);
  });
}

test('-ojson selects JSON output for a command that succeeds', async () => {
  const c = io();
  assert.equal(await main(['sim', '--duration', '2s', '-ojson'], c.io), 0, c.err.join('\n'));
  assert.equal(JSON.parse(c.out.join('')).durationMs, 2000);
});

test('a config error lists each problem as {path, message, hint} under --output json', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'edgectl-ux-'));
  const file = join(dir, 'site.yaml');
  writeFileSync(file, 'site: { id: lab }\nrobots:\n  - name: r1\n    bogus: 1\n');
  const c = io();
  assert.equal(await main(['inventory', 'validate', '-f', file, '-ojson'], c.io), 2);
  const e = JSON.parse(c.err.join('')).error;
  assert.equal(e.code, 'EDGE_CONFIG_INVALID');
  assert.ok(Array.isArray(e.errors) && e.errors.length >= 2, JSON.stringify(e));
  assert.deepEqual(
    e.errors.find((x: { path: string }) => x.path === 'robots[0]'),
    { path: 'robots[0]', message: 'unknown field(s) bogus', hint: 'remove or fix the spelling' },
  );
  for (const x of e.errors) {
    assert.equal(typeof x.message, 'string');
    assert.ok(x.path === null || typeof x.path === 'string');
  }
});

test('no command prints the command list the message points to', async () => {
  const c = io();
  assert.equal(await main([], c.io), 2);
  const text = c.err.join('\n');
  for (const cmd of ['sim', 'status', 'lab', 'render', 'inventory', 'bootstrap', 'completion'])
    assert.match(text, new RegExp(`edgectl ${cmd}\\b`));
  assert.match(text, /Name a command/);
});

test('--version is edgectl’s and only at the top level', async () => {
  const top = io();
  assert.equal(await main(['--version'], top.io), 0);
  assert.match(top.out.join(''), /^\d+\.\d+\.\d+$/);
  const sub = io();
  assert.equal(await main(['sim', '--version'], sub.io), 2);
  assert.match(sub.err.join('\n'), /Unknown argument: version/);
});

test('--help output goes through io, not straight to the console', async () => {
  const c = io();
  assert.equal(await main(['status', '--help'], c.io), 0);
  assert.match(c.out.join('\n'), /--addr/);
});

test('--quiet keeps results and errors and drops progress and notes', async () => {
  const { renderCommand } = await import('./commands/render.ts');
  assert.ok(renderCommand);
  const loud = io({ write: () => true });
  const quiet = io({ write: () => true });
  const dir = mkdtempSync(join(tmpdir(), 'edgectl-ux-'));
  const args = ['inventory', 'init', '--out', join(dir, 'a.yaml')];
  assert.equal(await main(args, loud.io), 0);
  assert.equal(await main(['inventory', 'init', '--out', join(dir, 'b.yaml'), '--quiet'], quiet.io), 0);
  assert.ok(loud.err.length + loud.out.length > 0, 'init says what it wrote');
  assert.equal(quiet.err.length, 0);
  const failed = io();
  assert.equal(await main(['sim', '--nodes', '0', '-q'], failed.io), 2);
  assert.match(failed.err.join('\n'), /--nodes/, 'errors still print under --quiet');
});

test('NO_COLOR and TERM=dumb turn off in-place redrawing', () => {
  assert.equal(wantsLiveOutput({}), true);
  assert.equal(wantsLiveOutput({ NO_COLOR: '1' }), false);
  assert.equal(wantsLiveOutput({ NO_COLOR: '' }), true, 'no-color.org: an empty NO_COLOR is unset');
  assert.equal(wantsLiveOutput({ TERM: 'dumb' }), false);
});

test('control characters are shown, not obeyed, and JSON stays JSON', () => {
  const hostile = 'r1\u001b[2J\u001b]0;pwned\u0007\r\u009b31m\u202etxt.exe';
  const shown = escapeControl(hostile);
  // eslint-disable-next-line no-control-regex -- the test is about control characters
  assert.doesNotMatch(shown, /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202e]/);
  assert.match(shown, /\\u001b\[2J/);
  assert.equal(escapeControl('a\tb\nc'), 'a\tb\nc', 'tab and newline are layout');
  const json = escapeControl(JSON.stringify({ name: 'x\u009by' }));
  assert.equal(JSON.parse(json).name, 'x\u009by');
});

test('an input file’s escape sequences reach the terminal escaped', () => {
  const dir = mkdtempSync(join(tmpdir(), 'edgectl-ux-'));
  const file = join(dir, 'site.yaml');
  writeFileSync(file, 'site: { id: lab }\nrobots:\n  - name: r1\n    "evil\\e[2J\\e]0;x\\a": 1\n');
  const r = spawnSync(process.execPath, [EDGECTL, 'inventory', 'validate', '-f', file], { encoding: 'utf8' });
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /evil\\u001b\[2J/);
  assert.ok(!r.stderr.includes('\u001b'), 'no raw ESC reaches the terminal');
});

test('a reader that goes away (| head -1) ends edgectl quietly', async () => {
  // A plan bigger than a pipe holds, so edgectl is still writing when the reader leaves.
  const dir = mkdtempSync(join(tmpdir(), 'edgectl-ux-'));
  writeFileSync(join(dir, 'agent.mjs'), 'export {};\n');
  const elf = Buffer.alloc(64);
  elf.writeUInt32BE(0x7f454c46, 0);
  elf[5] = 1;
  elf.writeUInt16LE(0x3e, 18);
  writeFileSync(join(dir, 'node'), elf);
  writeFileSync(join(dir, 'id_ed25519'), testPrivateKey(), { mode: 0o600 });
  const robots = Array.from({ length: 40 }, (_, i) => ({
    name: `r${i + 1}`,
    address: `10.77.30.${i + 1}`,
    ssh: { user: 'edgectl', keyFile: 'id_ed25519' },
    sudo: 'nopasswd',
    serverCapable: i < 3,
  }));
  writeFileSync(
    join(dir, 'site.yaml'),
    JSON.stringify({
      site: { id: 'pipe' },
      bundle: { agent: 'agent.mjs', node: 'node' },
      controlPlane: { runtime: 'lab', identityDir: '/var/lib/edgectl/lab/pipe/identity' },
      robots,
    }),
  );
  const child = spawn(
    process.execPath,
    [EDGECTL, 'bootstrap', 'site', '-f', join(dir, 'site.yaml'), '--dry-run'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += String(d)));
  child.stdout.once('data', () => child.stdout.destroy());
  const [code] = (await once(child, 'exit')) as [number | null];
  // The plan's own notes may come first; the broken pipe adds nothing, no EPIPE and no stack.
  assert.doesNotMatch(stderr, /EPIPE|Error|at /);
  assert.equal(code, 0);
});

test('bash completion offers commands, their words and their flags', () => {
  const script = execFileSync(process.execPath, [EDGECTL, 'completion', 'bash'], { encoding: 'utf8' });
  const complete = (...words: string[]) =>
    execFileSync(
      'bash',
      [
        '-c',
        `${script}\nCOMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _edgectl; echo "\${COMPREPLY[*]}"`,
      ],
      { encoding: 'utf8' },
    ).trim();
  assert.equal(complete('edgectl', 'la'), 'lab');
  assert.equal(complete('edgectl', 'lab', 'fa'), 'fault');
  assert.equal(complete('edgectl', 'sim', '--dur'), '--duration');
  assert.equal(complete('edgectl', 'bootstrap', 'site', '--dry'), '--dry-run');
  assert.equal(complete('edgectl', 'completion', ''), 'bash zsh');
  const zsh = execFileSync(process.execPath, [EDGECTL, 'completion', 'zsh'], { encoding: 'utf8' });
  assert.match(zsh, /^#compdef edgectl/);
  assert.match(zsh, /bashcompinit/);
  assert.ok(zsh.includes(script.split('\n').slice(1).join('\n')), 'zsh runs the same function');
});

test('each subcommand’s --help lists its own flags, not its siblings’', async () => {
  const flags = async (...args: string[]) => {
    const c = io();
    assert.equal(await main([...args, '--help'], c.io), 0);
    return c.out.join('\n');
  };
  const init = await flags('inventory', 'init');
  assert.match(init, /--out/);
  assert.doesNotMatch(init, /--file/);
  const validate = await flags('inventory', 'validate');
  assert.match(validate, /--file/);
  assert.doesNotMatch(validate, /--out\b|--force/);
  const remove = await flags('robot', 'remove');
  assert.match(remove, /--yes/);
  assert.doesNotMatch(remove, /--wait|--kubeconfig/);
  const add = await flags('robot', 'add');
  assert.match(add, /--wait/);
  assert.doesNotMatch(add, /--yes/);
});

test('inventory validate without -f is a usage error naming the flag', async () => {
  const c = io();
  assert.equal(await main(['inventory', 'validate'], c.io), 2);
  assert.match(c.err.join('\n'), /Missing required argument: file/);
});

test(
  '--out under /proc is a usage error at once, for inventory init and render',
  { timeout: 20_000 },
  async () => {
    const io = { out: () => {}, err: () => {} };
    assert.equal(await main(['inventory', 'init', '--out', '/proc/edgectl-site.yaml'], io), 2);
    assert.equal(
      await main(
        ['render', 'site', '-f', 'templates/site/site.example.yaml', '--out', '/proc/edgectl-manifests'],
        io,
      ),
      2,
    );
  },
);

test('--output without a command is no --version; -f without its file is a usage error', async () => {
  const c = io();
  assert.equal(await main(['--output', 'json'], c.io), 2);
  assert.equal(c.out.length, 0);
  const s = io();
  assert.equal(await main(['status', '-f'], s.io), 2);
  assert.doesNotMatch(s.err.join('\n'), /bug in edgectl/);
});

test('lab up echoes a bad number as typed, never NaN', async () => {
  for (const [flag, value] of [
    ['--robots', 'x'],
    ['--voters', '1.5'],
    ['--seed', 'abc'],
  ] as const) {
    const c = io();
    assert.equal(await main(['lab', 'up', flag, value], c.io), 2);
    assert.match(c.err.join('\n'), new RegExp(`${flag} ${value.replace('.', '\\.')} is not`));
    assert.doesNotMatch(c.err.join('\n'), /NaN/);
  }
});

test('lab subcommands list only their own flags', async () => {
  const help = async (...args: string[]) => {
    const c = io();
    assert.equal(await main([...args, '--help'], c.io), 0);
    return c.out.join('\n');
  };
  const status = await help('lab', 'status');
  assert.match(status, /--site/);
  assert.doesNotMatch(status, /--robots|--report|--keep|--runtime/);
  const run = await help('lab', 'run');
  assert.match(run, /--report/);
  assert.doesNotMatch(run, /--robots|--runtime/);
});
