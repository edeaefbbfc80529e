/**
 * The agent's source of randomness: the kernel's CSPRNG, read from /dev/urandom. It draws twice per
 * boot (the transport's incarnation and the seed of the election's timeout jitter), and neither is
 * worth loading node:crypto for, which costs an idle agent about 2 MB (agent/sha256.ts).
 * /dev/urandom never blocks once the kernel's pool is initialised, which it is long before a
 * robot's services start.
 */
import { closeSync, openSync, readSync } from 'node:fs';

/** randomUint32 is a uniformly random integer in [0, 2^32). */
export function randomUint32(): number {
  const bytes = new Uint8Array(4);
  const fd = openSync('/dev/urandom', 'r');
  try {
    let got = 0;
    while (got < bytes.length) got += readSync(fd, bytes, got, bytes.length - got, null);
  } finally {
    closeSync(fd);
  }
  return new DataView(bytes.buffer).getUint32(0);
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
