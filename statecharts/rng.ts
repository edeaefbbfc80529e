/**
 * A tiny seeded PRNG (mulberry32) whose whole state is one 32-bit integer, so it can live in a
 * statechart's serializable context. The core never calls Math.random(): the shell seeds this from a
 * real entropy source on a robot and from the run's seed in the simulator, which makes every
 * simulated run replayable from its seed.
 */

/** nextRandom returns a float in [0, 1) and the next state. */
export function nextRandom(state: number): [value: number, next: number] {
  const next = (state + 0x6d2b79f5) | 0;
  let t = next;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  const value = ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  return [value, next];
}

/** seedFrom mixes a number and a string (a node id) into a 32-bit seed. */
export function seedFrom(seed: number, salt: string): number {
  let h = (seed ^ 0x9e3779b9) | 0;
  for (let i = 0; i < salt.length; i++) {
    h = Math.imul(h ^ salt.charCodeAt(i), 0x85ebca6b);
    h ^= h >>> 13;
  }
  return h | 0;
}

/** Rng is a stateful convenience wrapper for shells and the simulator (not for the core). */
export class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = seed | 0;
  }
  /** next returns a float in [0, 1). */
  next(): number {
    const [v, s] = nextRandom(this.state);
    this.state = s;
    return v;
  }
  /** between returns a float in [lo, hi). */
  between(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }
  /** int returns an integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  /** chance returns true with probability p. */
  chance(p: number): boolean {
    return p > 0 && this.next() < p;
  }
}
