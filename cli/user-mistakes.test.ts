/**
 * A user's mistake is never "a bug in edgectl": every one of these exits with a usage or
 * environment code (never 70), a message that names what is wrong, a hint, and no stack trace.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { main, toEdgeError } from './main.ts';

const dir = mkdtempSync(join(tmpdir(), 'edgectl-mistakes-'));
after(() => rmSync(dir, { recursive: true, force: true }));

async function run(args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(args, { out: (t) => out.push(t), err: (t) => err.push(t) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

/** The rule: not 70, a hint, no stack trace, and the message matches `what`. */
function assertUserMistake(r: { code: number; err: string }, what: RegExp, code = 2): void {
  assert.equal(r.code, code, r.err);
  assert.doesNotMatch(r.err, /bug in edgectl/);
  assert.doesNotMatch(r.err, /\n\s+at /, 'no stack trace');
  assert.match(r.err, /hint: /);
  assert.match(r.err, what);
}

test('inventory validate without -f is a usage error', async () => {
  assertUserMistake(
    await run(['inventory', 'validate']),
    /inventory validate needs -f|Missing required argument: file/,
  );
});

for (const epoch of ['-1', '1.5', 'abc'])
  test(`render site --epoch ${epoch} is a usage error`, async () => {
    const spec = join(dir, 'site.yaml');
    writeFileSync(spec, 'id: lab\n');
    assertUserMistake(await run(['render', 'site', '-f', spec, '--epoch', epoch]), /--epoch/);
  });

test('inventory init --out into a directory that does not exist', async () => {
  assertUserMistake(
    await run(['inventory', 'init', '--out', join(dir, 'nonexistent', 'x.yaml')]),
    /nonexistent.*does not exist/,
  );
});

test('inventory init --out onto an existing directory, even with --force', async () => {
  const d = join(dir, 'a-dir');
  mkdirSync(d, { recursive: true });
  assertUserMistake(await run(['inventory', 'init', '--out', d, '--force']), /is a directory/);
});

test('inventory init --out under a file', async () => {
  const f = join(dir, 'a-file');
  writeFileSync(f, 'x');
  assertUserMistake(await run(['inventory', 'init', '--out', join(f, 'x.yaml')]), /not a directory/);
});

test('inventory init --out where this user may not write', async () => {
  // /sys refuses new files even to root, so the case runs the same for every user.
  assertUserMistake(
    await run(['inventory', 'init', '--out', '/sys/x.yaml']),
    /cannot write|cannot hold files/,
  );
});

test("inventory init --out ''", async () => {
  assertUserMistake(await run(['inventory', 'init', '--out', '']), /--out/);
});

/** A valid inventory of one robot, with its bundle files. */
function writeInventory(): string {
  const inv = join(dir, 'inventory.yaml');
  writeFileSync(
    inv,
    [
      'site: { id: mistakes }',
      'robots:',
      '  - { name: r1, address: 10.9.0.1, ssh: { user: root, agent: true }, sudo: none, serverCapable: true }',
      'controlPlane: { runtime: lab, identityDir: /nonexistent/identity }',
      `bundle: { agent: ${join(dir, 'agent.mjs')}, node: ${join(dir, 'node')} }`,
      '',
    ].join('\n'),
  );
  writeFileSync(join(dir, 'agent.mjs'), 'export {};\n');
  const elf = Buffer.alloc(64);
  elf.writeUInt32BE(0x7f454c46, 0);
  elf[5] = 1;
  elf.writeUInt16LE(0x3e, 18);
  writeFileSync(join(dir, 'node'), elf);
  process.env.SSH_AUTH_SOCK ??= join(dir, 'no-agent.sock');
  return inv;
}

test('bootstrap --site-dir naming a file', async () => {
  const f = join(dir, 'site-dir-file');
  writeFileSync(f, 'x');
  const inv = writeInventory();
  process.env.SSH_AUTH_SOCK ??= join(dir, 'no-agent.sock');
  for (const dryRun of [[], ['--dry-run']]) {
    const r = await run(['bootstrap', 'site', '-f', inv, '--site-dir', f, '--no-wait', ...dryRun]);
    assertUserMistake(r, /site-dir.*not a directory/);
  }
});

async function serve(
  body: string,
  type = 'application/json',
  status = 200,
): Promise<{ addr: string; server: Server }> {
  const server = createServer((_req, res) => {
    res.writeHead(status, { 'content-type': type });
    res.end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { addr: `127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

for (const [what, body, type] of [
  ['an HTML page', '<html><body>hello</body></html>', 'text/html'],
  ['{}', '{}', 'application/json'],
  ['null', 'null', 'application/json'],
] as const)
  test(`status --addr at an HTTP service that is not an agent (${what})`, async () => {
    const { addr, server } = await serve(body, type);
    try {
      assertUserMistake(await run(['status', '--addr', addr]), /not an edgectl agent/, 1);
    } finally {
      server.close();
    }
  });

test('lab run --report under a file is refused before any lab comes up', async () => {
  const f = join(dir, 'report-file');
  writeFileSync(f, 'x');
  const r = await run(['lab', 'run', 'lab/scenarios/leader-power-loss.yaml', '--report', join(f, 'out')]);
  assertUserMistake(r, /--report.*not a directory/);
});

test('a failed system call the command did not expect names the path and exits 1, not 70', () => {
  let thrown: unknown;
  try {
    mkdirSync(join(dir, 'a-file-for-mkdir'), { recursive: true });
    writeFileSync(join(dir, 'a-file-for-mkdir', 'x'), 'x');
    mkdirSync(join(dir, 'a-file-for-mkdir', 'x', 'y'));
  } catch (e) {
    thrown = e;
  }
  const err = toEdgeError(thrown);
  assert.equal(err.exitCode, 1);
  assert.equal(err.code, 'EDGE_SYSTEM');
  assert.match(err.message, /mkdir .*a-file-for-mkdir\/x\/y failed: ENOTDIR/);
  assert.match(err.hint ?? '', /check .*a-file-for-mkdir\/x\/y/);
  assert.equal(toEdgeError(new TypeError('x is undefined')).exitCode, 70, 'a real bug still says so');
});

test('render site --out under a file, or where this user may not write', async () => {
  const spec = join(dir, 'render-site.yaml');
  writeFileSync(spec, 'id: lab\n');
  const f = join(dir, 'render-out-file');
  writeFileSync(f, 'x');
  assertUserMistake(
    await run(['render', 'site', '-f', spec, '--out', join(f, 'm')]),
    /--out .*not a directory/,
  );
  assertUserMistake(
    await run(['render', 'site', '-f', spec, '--out', '/sys/edgectl-render']),
    /--out .*(cannot write|cannot hold files)/,
  );
});

test('status --addr at an HTTP service without /status', async () => {
  const { addr, server } = await serve('not found', 'text/plain', 404);
  try {
    assertUserMistake(await run(['status', '--addr', addr]), /answered HTTP 404/, 1);
  } finally {
    server.close();
  }
});

test('bootstrap --parallel 0 and lab up with stray words are usage errors with a hint', async () => {
  assertUserMistake(
    await run(['bootstrap', 'site', '-f', writeInventory(), '--dry-run', '--parallel', '0']),
    /--parallel must be a whole number/,
  );
  assertUserMistake(
    await run(['lab', 'up', 'r1']),
    /lab up takes no positional arguments|Unknown argument: r1/,
  );
});
