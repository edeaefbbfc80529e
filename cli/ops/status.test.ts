import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { AgentStatus } from '../../agent/agent.ts';
import type { CommandRunner } from '../../agent/exec/runner.ts';
import { main } from '../main.ts';
import { parseStatusAddr, runSiteStatus } from './status.ts';
import { testPrivateKey } from '../bootstrap/testing/test-key.ts';

function io() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (t: string) => out.push(t), err: (t: string) => err.push(t) }, out, err };
}

test('--addr is checked before anything is asked', async () => {
  assert.equal(parseStatusAddr('127.0.0.1:7947'), '127.0.0.1:7947');
  assert.equal(parseStatusAddr('robot-1.local:17947'), 'robot-1.local:17947');
  assert.equal(parseStatusAddr('[::1]:7947'), '[::1]:7947');
  for (const bad of ['foo', '1.2.3.4:99999', ':7947', 'a b:1', 'http://x:1/', '1.2.3.4:0']) {
    const c = io();
    assert.equal(await main(['status', '--addr', bad, '-ojson'], c.io), 2, bad);
    assert.equal(JSON.parse(c.err.join('')).error.errors[0].path, '--addr');
  }
});

function siteStatus(node: string, role: string, leader: string, lifecycle: string): AgentStatus {
  return {
    node,
    site: 'dock',
    role,
    voter: true,
    term: 4,
    leader,
    commitIndex: 9,
    lifecycle,
    controlPlane: {
      runtime: 'k3s',
      server: role === 'leader' ? { epoch: 4, state: 'serving' } : null,
      worker: role === 'leader' ? null : { leader, epoch: 4, state: 'ready' },
      siteAppliedEpoch: 4,
    },
    members: [],
    lastErrors: [],
    transport: {},
    discovery: {},
    uptimeMs: 1,
  } as unknown as AgentStatus;
}

test('status -f shows every robot of the site at once, and fails if one cannot be asked', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'edgectl-status-'));
  writeFileSync(join(dir, 'id_ed25519'), testPrivateKey(), { mode: 0o600 });
  writeFileSync(join(dir, 'agent.mjs'), 'export {};\n');
  writeFileSync(
    join(dir, 'site.yaml'),
    JSON.stringify({
      site: { id: 'dock' },
      bundle: { agent: 'agent.mjs' },
      controlPlane: { runtime: 'lab', identityDir: '/var/lib/edgectl/lab/dock/identity' },
      robots: ['r1', 'r2', 'r3'].map((name, i) => ({
        name,
        address: `10.77.40.${i + 1}`,
        ssh: { user: 'edgectl', keyFile: 'id_ed25519' },
        sudo: 'nopasswd',
        serverCapable: true,
      })),
    }),
  );
  const statuses: Record<string, AgentStatus> = {
    r1: siteStatus('r1', 'leader', 'r1', 'leading.serving'),
    r2: siteStatus('r2', 'follower', 'r1', 'following.ready'),
  };
  const asked: string[] = [];
  const closed: string[] = [];
  const connect = async (robot: { name: string }) => {
    if (robot.name === 'r3') throw new Error('r3: SSH to edgectl@10.77.40.3:22 failed: timed out');
    return {
      target: robot.name,
      run: async (argv: readonly string[]) => {
        asked.push(`${robot.name} ${argv.at(-1)}`);
        return { code: 0, stdout: JSON.stringify(statuses[robot.name]), stderr: '' };
      },
      close: async () => void closed.push(robot.name),
    } as unknown as CommandRunner;
  };
  const c = io();
  await assert.rejects(
    runSiteStatus({ file: join(dir, 'site.yaml'), output: 'table' }, c.io, { connect }),
    (e: Error & { code?: string }) => e.code === 'EDGE_SITE_STATUS_INCOMPLETE' && /r3/.test(e.message),
  );
  assert.deepEqual(asked.sort(), ['r1 10.77.40.1:7947', 'r2 10.77.40.2:7947']);
  assert.deepEqual(closed.sort(), ['r1', 'r2']);
  const text = c.out.join('\n');
  assert.match(text, /^r1\s+leader\s+4\s+r1\s+leading\.serving\s+0\/0 alive\s+server epoch 4 serving$/m);
  assert.match(text, /^r2\s+follower\s+4\s+r1\s+following\.ready/m);
  assert.match(text, /^r3\s+NO ANSWER.*timed out$/m);
  assert.match(text, /site dock: leader r1 \(term 4\); 2\/3 robots ready/);
  const j = io();
  await assert.rejects(runSiteStatus({ file: join(dir, 'site.yaml'), output: 'json' }, j.io, { connect }));
  const report = JSON.parse(j.out.join(''));
  assert.equal(report.robots.length, 3);
  assert.equal(report.robots[0].status.node, 'r1');
  assert.match(report.robots[2].error, /timed out/);
});

test('status takes -f or --addr, not both', async () => {
  const c = io();
  assert.equal(await main(['status', '-f', 'site.yaml', '--addr', '127.0.0.1:7947'], c.io), 2);
});
