/**
 * Flags whose values yargs would turn into NaN or Infinity (`--nodes abc`, `--seed 1e309`): read
 * from the text that was typed, so a refusal echoes it and names the flag.
 */
import { UsageError } from '../agent/errors.ts';

/**
 * wholeNumber reads a flag that must be a whole number in [min, max], echoing what was typed:
 * yargs turns `abc` into NaN and `1e309` into Infinity, which say nothing to the person who typed them.
 */
export function wholeNumber(value: unknown, flag: string, min: number, max: number, what: string): number {
  const text = String(value).trim();
  const n = /^-?\d+(?:\.\d+)?(?:e[+-]?\d+)?$/i.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new UsageError('BAD_FLAG', `${flag} ${text} is not ${what}`, {
      hint: `give ${flag} a whole number from ${min} to ${max}`,
      path: flag,
    });
  }
  return n;
}

/** fraction reads a flag that must be a number from 0 to 1, echoing what was typed. */
export function fraction(value: unknown, flag: string): number {
  const text = String(value).trim();
  const n = /^\d*\.?\d+(?:e[+-]?\d+)?$/i.test(text) ? Number(text) : NaN;
  if (!(n >= 0 && n <= 1))
    throw new UsageError('BAD_RATE', `${flag} ${text} is not a fraction`, {
      hint: `write ${flag} as 0..1, e.g. 0.1 for 10%`,
      path: flag,
    });
  return n;
}
