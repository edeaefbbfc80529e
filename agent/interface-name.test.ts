import assert from 'node:assert/strict';
import { test } from 'node:test';
import { validateAgentConfig } from './config.ts';
import { ConfigError } from './errors.ts';
import { interfaceNameProblem } from './interface-name.ts';

test('interface names as the kernel takes them: 1-15 bytes, not . or .., no /, : or white space', () => {
  for (const ok of ['wlan0', 'wlp2s0', 'wlp2s0@1', 'br-lan.5', 'a', 'x'.repeat(15), 'wlän0'])
    assert.equal(interfaceNameProblem(ok), null, ok);
  for (const bad of ['', '.', '..', 'a/b', 'wlan:0', 'wl an0', 'wlan\t0', 'x'.repeat(16), 'ä'.repeat(8)])
    assert.notEqual(interfaceNameProblem(bad), null, JSON.stringify(bad));
});

test("the agent's config takes the same interface names", () => {
  const config = (interfaces: string[]) => ({
    site: { id: 'lab' },
    node: { id: 'r1', serverCapable: true },
    voters: ['r1'],
    network: { interfaces },
    controlPlane: { runtime: 'memory' },
  });
  assert.deepEqual(validateAgentConfig(config(['wlp2s0@1'])).network.interfaces, ['wlp2s0@1']);
  assert.throws(
    () => validateAgentConfig(config(['wlan:0'])),
    (e: unknown) =>
      e instanceof ConfigError && /network\.interfaces\[0\]: .*no spaces, \/ or :/.test(e.message),
  );
});
