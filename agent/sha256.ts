/**
 * SHA-256 and HMAC-SHA256 for the wire codec and the state files, from @noble/hashes (audited,
 * no dependencies) instead of node:crypto. Loading node:crypto costs an idle agent about 2 MB of
 * resident memory (its OpenSSL glue and every internal/crypto module), which the agent paid only to
 * hash a few dozen small datagrams a second (docs/benchmarks/agent.md). sha256.test.ts checks
 * them against FIPS 180-4's and RFC 4231's examples and against node:crypto on random inputs.
 */
import { hmac } from '@noble/hashes/hmac.js';
import { sha256 } from '@noble/hashes/sha2.js';

export const SHA256_BYTES = 32;

/** sha256 of `data` (FIPS 180-4). */
export function sha256Digest(data: Uint8Array): Uint8Array {
  return sha256(data);
}

/** sha256Hex: the SHA-256 of `data` (a string as UTF-8) in lower-case hex, as sha256sum prints it. */
export function sha256Hex(data: string | Uint8Array): string {
  return Buffer.from(sha256(typeof data === 'string' ? Buffer.from(data, 'utf8') : data)).toString('hex');
}

/**
 * HmacSha256 authenticates with one key (RFC 2104). The key's inner and outer pad states are
 * hashed once; each `macInto` copies them into a reused instance, so a datagram costs the blocks
 * of its own bytes and one more, and writes its tag into the frame without an allocation.
 */
export class HmacSha256 {
  readonly #keyed: ReturnType<typeof hmac.create>;
  readonly #scratch: ReturnType<typeof hmac.create>;

  constructor(key: Uint8Array) {
    this.#keyed = hmac.create(sha256, key);
    this.#scratch = this.#keyed.clone();
  }

  /** macInto writes HMAC-SHA256(key, data) into `out`, which is 32 bytes (a view into a frame). */
  macInto(data: Uint8Array, out: Uint8Array): void {
    this.#keyed._cloneInto(this.#scratch).update(data).digestInto(out);
  }
}

/**
 * constantTimeEqual compares two byte strings in time that depends only on their lengths, so a
 * forger learns nothing from how fast a wrong tag is refused.
 */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}
