import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decideHostKey, knownHostsLine, parseKnownHosts } from './known-hosts.ts';
import { EdgeError } from '../../agent/errors.ts';
import { applyPlan } from './apply.ts';

// Two ed25519 public keys in wire format (type string, then 32 bytes).
const wireKey = (fill: number) => {
  const type = Buffer.from('ssh-ed25519');
  const b = Buffer.alloc(4 + type.length + 4 + 32, fill);
  b.writeUInt32BE(type.length, 0);
  type.copy(b, 4);
  b.writeUInt32BE(32, 4 + type.length);
  return b;
};
const oldKey = wireKey(1);
const newKey = wireKey(2);
const RESUME = 'edgectl bootstrap site -f site.yaml';

function refusal(q: Partial<Parameters<typeof decideHostKey>[0]>) {
  const d = decideHostKey({
    robot: 'spot-2',
    host: '10.20.0.12',
    port: 22,
    offered: newKey,
    known: parseKnownHosts(`${knownHostsLine('10.20.0.12', 22, oldKey)}\n`),
    knownHostsPath: '.edgectl/dock-a/known_hosts',
    acceptNew: false,
    ...q,
  });
  assert.equal(d.accept, false);
  return (d as { error: EdgeError }).error;
}

async function recoverLines(error: EdgeError): Promise<readonly string[]> {
  const report = await applyPlan({
    plan: {
      kind: 'bootstrap',
      site: 'dock-a',
      robots: [{ target: 'spot-2', address: '10.20.0.12', steps: [] }],
    },
    connect: async () => {
      throw error;
    },
    state: { load: async () => ({ done: {}, pendingChanged: [] }), save: async () => {} } as never,
    parallel: 1,
    emit: () => {},
    recheck: false,
    resumeCommand: RESUME,
  });
  return report.robots[0]!.failure!.recover;
}

test('after a changed host key, "to recover" removes the stale entry and records the new key', async () => {
  const lines = await recoverLines(refusal({}));
  assert.match(lines[0]!, /check the key on spot-2's console/);
  assert.equal(lines[1], "ssh-keygen -R '10.20.0.12' -f .edgectl/dock-a/known_hosts");
  assert.match(
    lines[2]!,
    /^edgectl bootstrap site -f site\.yaml --accept-new-host-keys {3}# records spot-2's new key/,
  );
  assert.ok(!lines.includes(RESUME), 'not the same command, which would fail the same way');
});

test('an unknown key is recorded with --accept-new-host-keys; a pinned one is fixed in the inventory', async () => {
  const unknown = await recoverLines(refusal({ known: [] }));
  assert.match(unknown.at(-1)!, /--accept-new-host-keys/);
  const pinned = await recoverLines(
    refusal({ pinned: 'SHA256:something-else', pinnedAt: 'robots[1].ssh.hostKey in site.yaml' }),
  );
  assert.match(pinned.join('\n'), /put its fingerprint in robots\[1\]\.ssh\.hostKey in site\.yaml/);
});

test('a connection that failed for another reason is retried as it was', async () => {
  const lines = await recoverLines(new EdgeError('SSH_UNREACHABLE', 'no route'));
  assert.deepEqual(lines, [RESUME]);
});
