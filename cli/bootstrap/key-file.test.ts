import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { keyFileProblem } from './inventory-files.ts';
import { testPrivateKey } from './testing/test-key.ts';

const dir = mkdtempSync(join(tmpdir(), 'edgectl-key-'));
const file = (name: string, content: string) => {
  const p = join(dir, name);
  writeFileSync(p, content, { mode: 0o600 });
  return p;
};

test('a usable private key passes', () => {
  assert.equal(keyFileProblem(file('id_rsa', testPrivateKey())), null);
});

test('junk, a public key and a passphrase-protected key are each refused with the fix', () => {
  assert.match(keyFileProblem(file('junk', 'not really a key\n'))!, /is not a private key SSH can use/);
  const { publicKey } = generateKeyPairSync('ed25519');
  // The OpenSSH wire form of an ed25519 public key: string "ssh-ed25519", string key.
  const wire = (b: Buffer) => Buffer.concat([Buffer.from([0, 0, 0, b.length]), b]);
  const blob = Buffer.concat([
    wire(Buffer.from('ssh-ed25519')),
    wire(publicKey.export({ format: 'der', type: 'spki' }).subarray(-32)),
  ]);
  assert.match(
    keyFileProblem(file('id_ed25519.pub', `ssh-ed25519 ${blob.toString('base64')} me@host\n`))!,
    /is a public key: point keyFile at the private key \(.*id_ed25519\)/,
  );
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const encrypted = privateKey.export({
    format: 'pem',
    type: 'pkcs1',
    cipher: 'aes-256-cbc',
    passphrase: 'secret',
  }) as string;
  assert.match(
    keyFileProblem(file('id_locked', encrypted))!,
    /passphrase.*ssh-add it and set ssh\.agent: true/,
  );
});
