/**
 * The agent's source of randomness: the kernel's CSPRNG, read from /dev/urandom. The agent draws
 * rarely (the transport's incarnation and the seed of the election's timeout jitter at boot, a
 * temp-file name or sudo marker per command the k3s runtime runs, a nonce and an upload file name
 * per snapshot push), and none of it is worth loading node:crypto into the agent's process for
 * (agent/sha256.ts).
 * /dev/urandom never blocks once the kernel's pool is initialised, which it is long before a
 * robot's services start.
 */
import { closeSync, openSync, readSync } from 'node:fs';

/** randomBytes fills `n` bytes from the kernel's CSPRNG. */
export function randomBytes(n: number): Buffer {
  const bytes = Buffer.alloc(n);
  const fd = openSync('/dev/urandom', 'r');
  try {
    let got = 0;
    while (got < bytes.length) got += readSync(fd, bytes, got, bytes.length - got, null);
  } finally {
    closeSync(fd);
  }
  return bytes;
}

/** randomUint32 is a uniformly random integer in [0, 2^32). */
export function randomUint32(): number {
  return randomBytes(4).readUInt32BE(0);
}

/** randomBelow is a uniformly random integer in [0, n), for 1 ≤ n ≤ 2^32 (no modulo bias). */
export function randomBelow(n: number): number {
  if (!Number.isInteger(n) || n < 1 || n > 2 ** 32) throw new RangeError(`randomBelow(${n})`);
  // Reject the top partial range, so every residue is equally likely.
  const limit = 2 ** 32 - (2 ** 32 % n);
  for (;;) {
    const x = randomUint32();
    if (x < limit) return x % n;
  }
}
