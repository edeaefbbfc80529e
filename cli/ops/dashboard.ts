/** `edgectl dashboard`: serve the live page until interrupted. */
import { readFileSync, statSync } from 'node:fs';
import { UsageError } from '../../agent/errors.ts';
import { DashboardServer } from '../dashboard/server.ts';
import { LabSource, SiteFileSource, type SiteSource } from '../dashboard/source.ts';
import type { Io, OutputFormat } from '../output.ts';

export interface DashboardCommand {
  readonly lab: boolean;
  readonly site: string;
  /** A bootstrapped site's inventory (its robots are asked over SSH). */
  readonly file?: string | undefined;
  readonly siteDir?: string | undefined;
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

export async function dashboardSource(c: DashboardCommand): Promise<SiteSource> {
  if (c.file !== undefined) {
    if (c.lab || c.faults)
      throw new UsageError('DASHBOARD_SITE', '-f shows a bootstrapped site, read-only', {
        hint: 'use -f site.yaml alone, or --lab [--faults] for a lab site on this machine',
      });
    const [{ loadInventory }, { siteDirFor }, { sshConnect }] = await Promise.all([
      import('../bootstrap/inventory-files.ts'),
      import('../bootstrap/site-dir.ts'),
      import('./bootstrap.ts'),
    ]);
    const loaded = loadInventory(c.file);
    const ctx = {
      siteDir: siteDirFor(loaded.inventory.site.id, c.file, c.siteDir),
      // Read-only: a robot whose host key the site does not know is not asked.
      acceptNewHostKeys: false,
      sudoPassword: undefined,
    };
    return new SiteFileSource(loaded.inventory, (r) => sshConnect(r, loaded, ctx, process.env));
  }
  if (!c.lab)
    throw new UsageError('DASHBOARD_SITE', 'name the site to show', {
      hint: 'edgectl dashboard --lab [--site NAME] for a lab site on this machine, or -f site.yaml for a bootstrapped one',
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
    source: await dashboardSource(c),
    // A bootstrapped site is asked over SSH: every 2 s is enough for a page, and light on the robots.
    intervalMs: c.file !== undefined ? 2000 : 500,
    listen: c.listen,
    remote: c.remote,
    token,
  });
  const url = await server.start();
  if (c.output === 'json') io.out(JSON.stringify({ url, faults: c.faults }));
  else
    io.err(
      `dashboard of ${c.file !== undefined ? c.file : `lab ${c.site}`} on ${url}${token ? '?token=…' : ''}${c.faults ? ' (faults on)' : ' (read-only)'}; Ctrl-C stops it`,
    );
  await (until ??
    new Promise<void>((resolve) => {
      process.once('SIGINT', () => resolve());
      process.once('SIGTERM', () => resolve());
    }));
  await server.close();
}
