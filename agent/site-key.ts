/**
 * The site key file (/etc/edgectl/site.key). Apart from agent/config.ts so that the bundled agent
 * reads it without loading zod and yaml (agent/main.ts).
 */
import { readFileSync, statSync } from 'node:fs';
import { ConfigError } from './errors.ts';

/**
 * readSiteKey loads the site key and refuses one that is short or readable by others: the key
 * authenticates every datagram of the site, so a leaked key lets anyone depose the leader.
 */
export function readSiteKey(path: string): Buffer {
  let mode: number;
  let key: Buffer;
  try {
    mode = statSync(path).mode;
    key = readFileSync(path);
  } catch (e) {
    throw new ConfigError(
      path,
      [`cannot read the site key: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`],
      {
        hint: 'edgectl bootstrap site installs it; for a lab, write 32 random bytes with mode 0600',
      },
    );
  }
  const problems: string[] = [];
  if ((mode & 0o077) !== 0) problems.push(`mode is ${(mode & 0o777).toString(8)}: run chmod 600 ${path}`);
  const trimmed = /^[0-9a-f]+\s*$/i.test(key.toString('utf8'))
    ? Buffer.from(key.toString('utf8').trim(), 'hex')
    : key;
  if (trimmed.length < 32) problems.push(`the key has ${trimmed.length} bytes; it needs at least 32`);
  if (problems.length) throw new ConfigError(path, problems);
  return trimmed;
}
