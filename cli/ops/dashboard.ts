/** `edgectl dashboard`: serve the live page until interrupted. */
import { readFileSync, statSync } from 'node:fs';
import { UsageError } from '../../agent/errors.ts';
import { DashboardServer } from '../dashboard/server.ts';
import { LabSource, type SiteSource } from '../dashboard/source.ts';
import type { Io, OutputFormat } from '../output.ts';

export interface DashboardCommand {
  readonly lab: boolean;
  readonly site: string;
  readonly listen: string;
  readonly faults: boolean;
  readonly remote: boolean;
  readonly tokenFile?: string | undefined;
  readonly output: OutputFormat;
}

/** readToken reads a token file that only its owner can read. */
export function readToken(file: string): string {
  let mode: number;
  let text: string;
  try {
    mode = statSync(file).mode;
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new UsageError('DASHBOARD_TOKEN', `cannot read --token-file ${file}`, {
      hint: 'write one: head -c 24 /dev/urandom | base64 > FILE && chmod 600 FILE',
      cause: e,
    });
  }
  if ((mode & 0o077) !== 0)
    throw new UsageError('DASHBOARD_TOKEN', `--token-file ${file} can be read by other users`, {
      hint: `chmod 600 ${file}`,
    });
  const token = text.trim();
  if (token.length < 16 || /\s/.test(token))
    throw new UsageError(
      'DASHBOARD_TOKEN',
      `--token-file ${file} must hold one token of at least 16 characters`,
      {
        hint: 'write one: head -c 24 /dev/urandom | base64 > FILE && chmod 600 FILE',
      },
    );
  return token;
}

export function dashboardSource(c: DashboardCommand): SiteSource {
  if (!c.lab)
    throw new UsageError('DASHBOARD_SITE', 'name the site to show', {
      hint: 'edgectl dashboard --lab [--site NAME] for a lab site on this machine',
    });
  if (c.faults && process.getuid?.() !== 0)
    throw new UsageError('DASHBOARD_FAULTS_ROOT', 'lab faults need root', {
      hint: 'run sudo edgectl dashboard --lab --faults, or leave out --faults for a read-only page',
    });
  return new LabSource(c.site, { faults: c.faults });
}

export async function runDashboard(c: DashboardCommand, io: Io, until?: Promise<void>): Promise<void> {
  const token = c.tokenFile === undefined ? undefined : readToken(c.tokenFile);
  const server = new DashboardServer({
    source: dashboardSource(c),
    listen: c.listen,
    remote: c.remote,
    token,
  });
  const url = await server.start();
  if (c.output === 'json') io.out(JSON.stringify({ url, faults: c.faults }));
  else
    io.err(
      `dashboard of ${c.lab ? `lab ${c.site}` : c.site} on ${url}${token ? '?token=…' : ''}${c.faults ? ' (faults on)' : ' (read-only)'}; Ctrl-C stops it`,
    );
  await (until ??
    new Promise<void>((resolve) => {
      process.once('SIGINT', () => resolve());
      process.once('SIGTERM', () => resolve());
    }));
  await server.close();
}
