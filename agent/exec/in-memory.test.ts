import assert from 'node:assert/strict';
import { test } from 'node:test';
import { InMemoryCommandRunner } from './in-memory.ts';
import { describeRunnerContract } from './runner.contract.ts';

describeRunnerContract('in-memory', async () => ({
  runner: new InMemoryCommandRunner('r1', { user: 'edgectl', dirs: ['/scratch'] }),
  scratch: '/scratch',
}));

test('calls are recorded with stdin as a length only, so a secret on stdin never shows up in a record', async () => {
  const r = new InMemoryCommandRunner('r1');
  await r.run(['cat'], { stdin: 'hunter2', sudo: true });
  assert.deepEqual(r.calls, [{ op: 'run', argv: ['cat'], sudo: true, stdinBytes: 7 }]);
  assert.ok(!JSON.stringify(r.calls).includes('hunter2'));
});

test('scripted commands take precedence, and unknown commands exit 127', async () => {
  const r = new InMemoryCommandRunner('r1', {
    handlers: {
      uname: (argv) => ({ code: 0, stdout: argv.includes('-m') ? 'x86_64\n' : 'Linux\n', stderr: '' }),
    },
  });
  assert.equal((await r.run(['uname', '-m'])).stdout, 'x86_64\n');
  assert.equal((await r.run(['systemctl', 'start', 'x'])).code, 127);
});

test('disconnectAfter drops the connection after n operations, reconnect brings it back', async () => {
  const r = new InMemoryCommandRunner('r1');
  r.disconnectAfter(1);
  await r.run(['true']);
  await assert.rejects(r.run(['true']), { code: 'EDGE_SSH_DISCONNECTED' });
  r.reconnect();
  assert.equal((await r.run(['true'])).code, 0);
});

test('a non-root user cannot read a root 0600 file without sudo', async () => {
  const r = new InMemoryCommandRunner('r1', { user: 'edgectl', dirs: ['/etc/edgectl'] });
  await r.writeFile('/etc/edgectl/site.key', 'k', { mode: 0o600, owner: 'root:root', sudo: true });
  await assert.rejects(r.readFile('/etc/edgectl/site.key'), { code: 'EDGE_READ_FAILED' });
  assert.equal((await r.run(['cat', '/etc/edgectl/site.key'])).code, 1);
  assert.equal((await r.readFile('/etc/edgectl/site.key', { sudo: true }))?.toString(), 'k');
});
