import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { test } from 'node:test';
import {
  decideHostKey,
  fingerprint,
  hostKeyAlgorithms,
  keyType,
  knownHostsLine,
  matchesHost,
  parseKnownHosts,
  type HostKeyQuestion,
} from './known-hosts.ts';

/** A wire-format ed25519 public key: string "ssh-ed25519", string <32 bytes>. */
function wireKey(seed: number): Buffer {
  const type = Buffer.from('ssh-ed25519');
  const body = Buffer.alloc(32, seed);
  const len = (n: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n);
    return b;
  };
  return Buffer.concat([len(type.length), type, len(body.length), body]);
}
const k1 = wireKey(1);
const k2 = wireKey(2);

const q = (over: Partial<HostKeyQuestion>): HostKeyQuestion => ({
  robot: 'spot-1',
  host: '10.0.0.1',
  port: 22,
  offered: k1,
  known: [],
  knownHostsPath: '/s/known_hosts',
  acceptNew: false,
  ...over,
});

test('fingerprint and key type match what OpenSSH shows', () => {
  assert.match(fingerprint(k1), /^SHA256:[A-Za-z0-9+/]{43}$/);
  assert.equal(keyType(k1), 'ssh-ed25519');
});

test('known_hosts: plain, [host]:port, lists, negation, wildcards, hashed names, markers', () => {
  const salt = randomBytes(20);
  const hashed = `|1|${salt.toString('base64')}|${createHmac('sha1', salt).update('[10.0.0.9]:2222').digest('base64')}`;
  const text = [
    '# comment',
    knownHostsLine('10.0.0.1', 22, k1),
    knownHostsLine('10.0.0.2', 2222, k1),
    `spot-*,!spot-9 ssh-ed25519 ${k1.toString('base64')}`,
    `${hashed} ssh-ed25519 ${k2.toString('base64')}`,
    `@revoked 10.0.0.5 ssh-ed25519 ${k2.toString('base64')}`,
    'garbage',
  ].join('\n');
  const e = parseKnownHosts(text);
  assert.equal(e.length, 5);
  assert.equal(e[0]!.line, 2);
  assert.ok(matchesHost(e[0]!, '10.0.0.1', 22));
  assert.ok(!matchesHost(e[0]!, '10.0.0.1', 2222));
  assert.ok(matchesHost(e[1]!, '10.0.0.2', 2222));
  assert.ok(matchesHost(e[2]!, 'spot-3', 22));
  assert.ok(!matchesHost(e[2]!, 'spot-9', 22));
  assert.ok(matchesHost(e[3]!, '10.0.0.9', 2222));
  assert.ok(!matchesHost(e[3]!, '10.0.0.9', 22));
  assert.equal(e[4]!.marker, '@revoked');
});

test('a pinned key alone decides: match accepts without recording, mismatch names both fingerprints', () => {
  assert.deepEqual(decideHostKey(q({ pinned: fingerprint(k1) })), { accept: true, record: false });
  const d = decideHostKey(q({ pinned: fingerprint(k2), pinnedAt: 'robots[0].ssh.hostKey', acceptNew: true }));
  assert.equal(d.accept, false);
  if (!d.accept) {
    assert.equal(d.error.code, 'EDGE_HOST_KEY_MISMATCH');
    assert.ok(d.error.message.includes(fingerprint(k1)) && d.error.message.includes(fingerprint(k2)));
    assert.match(d.error.hint ?? '', /robots\[0\]\.ssh\.hostKey/);
  }
});

test('known_hosts: a known key is accepted, a changed one refused even with accept-new', () => {
  const known = parseKnownHosts(knownHostsLine('10.0.0.1', 22, k2));
  assert.deepEqual(decideHostKey(q({ offered: k2, known })), { accept: true, record: false });
  const d = decideHostKey(q({ known, acceptNew: true }));
  assert.ok(!d.accept && d.error.code === 'EDGE_HOST_KEY_MISMATCH' && /line 1/.test(d.error.message));
});

test('an unknown host is recorded only with accept-new; a revoked key is always refused', () => {
  assert.deepEqual(decideHostKey(q({ acceptNew: true })), { accept: true, record: true });
  const d = decideHostKey(q({}));
  assert.ok(
    !d.accept &&
      d.error.code === 'EDGE_HOST_KEY_UNKNOWN' &&
      /--accept-new-host-keys/.test(d.error.hint ?? ''),
  );
  const revoked = parseKnownHosts(`@revoked 10.0.0.1 ssh-ed25519 ${k1.toString('base64')}`);
  const r = decideHostKey(q({ known: revoked, acceptNew: true }));
  assert.ok(!r.accept && r.error.code === 'EDGE_HOST_KEY_REVOKED');
});

test('host key algorithms follow the known key types; RSA asks for SHA-2 signatures first', () => {
  assert.deepEqual(hostKeyAlgorithms(['ssh-ed25519', 'ssh-rsa', 'ssh-ed25519']), [
    'ssh-ed25519',
    'rsa-sha2-512',
    'rsa-sha2-256',
    'ssh-rsa',
  ]);
});
