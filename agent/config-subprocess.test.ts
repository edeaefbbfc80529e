import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadAgentConfig } from './config.ts';
import { fromConfigData, loadConfigInSubprocess, toConfigData } from './config-subprocess.ts';
import { ConfigError, InternalError } from './errors.ts';

// The config loader from the sources: the child runs it with this Node, as the bundle runs
// edgectl-agent-config.cjs (agent/build.test.ts runs that one).
const LOADER = fileURLToPath(new URL('./config-loader.ts', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'edgectl-cfgsub-'));
after(() => rmSync(dir, { recursive: true, force: true }));
/** The shipped template, with the example site spec where a robot has /etc/edgectl/site.yaml. */
const template = join(dir, 'agent.yaml');
writeFileSync(
  template,
  readFileSync(fileURLToPath(new URL('../templates/agent.yaml', import.meta.url)), 'utf8').replace(
    '/etc/edgectl/site.yaml',
    fileURLToPath(new URL('../templates/site/site.example.yaml', import.meta.url)),
  ),
);

function write(name: string, text: string): string {
  writeFileSync(join(dir, name), text);
  return join(dir, name);
}

/** The error `f` throws. */
function thrown(f: () => unknown): unknown {
  try {
    f();
  } catch (e) {
    return e;
  }
  return assert.fail('expected an error');
}

/** The same ConfigError: class, code, message, hint, problems and exit code. */
function assertSameConfigError(actual: unknown, expected: unknown): void {
  assert.ok(actual instanceof ConfigError, String(actual));
  assert.ok(expected instanceof ConfigError);
  assert.deepEqual(
    { ...actual.toJSON(), problems: actual.problems, source: actual.source, exitCode: actual.exitCode },
    {
      ...expected.toJSON(),
      problems: expected.problems,
      source: expected.source,
      exitCode: expected.exitCode,
    },
  );
}

const bad = write('bad.yaml', 'site: {id: Bad Site}\nnode: {id: r1}\nvoters: []\nnework: {}\n');
const invalidYaml = write('invalid.yaml', ': : :\n- [');
const missing = join(dir, 'missing.yaml');

test('toConfigData and fromConfigData: the config, or its ConfigError with every field, as JSON data', () => {
  const ok = toConfigData(() => loadAgentConfig(template));
  assert.deepEqual(fromConfigData(JSON.parse(JSON.stringify(ok))), loadAgentConfig(template));
  for (const path of [bad, invalidYaml, missing]) {
    const data = toConfigData(() => loadAgentConfig(path));
    assert.equal(data.ok, false);
    assertSameConfigError(
      thrown(() => fromConfigData(JSON.parse(JSON.stringify(data)))),
      thrown(() => loadAgentConfig(path)),
    );
  }
  // Only a ConfigError is data; anything else is a bug and is thrown as it is.
  const bug = new TypeError('boom');
  assert.equal(
    thrown(() =>
      toConfigData(() => {
        throw bug;
      }),
    ),
    bug,
  );
});

test('loadConfigInSubprocess returns what loadAgentConfig returns, or throws the same ConfigError', () => {
  assert.deepEqual(loadConfigInSubprocess(template, LOADER), loadAgentConfig(template));
  for (const path of [bad, invalidYaml, missing])
    assertSameConfigError(
      thrown(() => loadConfigInSubprocess(path, LOADER)),
      thrown(() => loadAgentConfig(path)),
    );
});

test('loadConfigInSubprocess: a loader that fails or prints no config is an InternalError naming it', () => {
  const crash = write('crash.cjs', 'throw new Error("loader bug");');
  const e = thrown(() => loadConfigInSubprocess(template, crash));
  assert.ok(e instanceof InternalError);
  assert.match(e.message, /the config loader .*crash\.cjs failed \(exit code 1\): .*loader bug/s);
  const quiet = write('quiet.cjs', '');
  assert.throws(
    () => loadConfigInSubprocess(template, quiet),
    (x: unknown) => x instanceof InternalError && /quiet\.cjs printed no config/.test(x.message),
  );
});
