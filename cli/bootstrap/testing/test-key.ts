/** A real private key for tests whose inventories name a keyFile (inventory validation parses it). */
import { generateKeyPairSync } from 'node:crypto';

let pem: string | undefined;

/** testPrivateKey: an unencrypted RSA key in PEM, made once per process; never used to log in. */
export function testPrivateKey(): string {
  pem ??= generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({
    format: 'pem',
    type: 'pkcs1',
  }) as string;
  return pem;
}
