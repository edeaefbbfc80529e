/**
 * `edgectl site apply` and `edgectl site history`: change the site spec of a running site through
 * its leader, and list the versions its site log committed (docs/operations.md, "Changing the site
 * spec"). Both talk to an agent's status endpoint (agent/status-server.ts); a follower names the
 * leader, whose endpoint is assumed on the same port (bootstrap and the lab give every robot the
 * same status port).
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { SiteApplyOutcome, SiteHistoryEntry, SiteView } from '../../agent/agent.ts';
import { ConfigError, EdgeError, UsageError } from '../../agent/errors.ts';
import { signSiteApply } from '../../agent/operator-auth.ts';
import { operatorKey } from '../../agent/site-key.ts';
import { diffSpecs, formatChange, specDigest, type SpecChange } from '../../agent/site/spec-log.ts';
import { canonicalSiteSpec } from '../../agent/site/spec-source.ts';
import { parseSiteSpec } from '../../agent/site/spec.ts';
import { readInventoryFile } from '../bootstrap/inventory-files.ts';
import { loadSiteIdentity, siteDirFor, type SiteDir } from '../bootstrap/site-dir.ts';
import { table, type Io, type OutputFormat } from '../output.ts';

export interface SiteApplyOptions {
  /** The inventory (its `site:` section is the spec) or a bare site spec file. */
  readonly file: string;
  /** An agent's status endpoint, host:port. */
  readonly addr: string;
  /** The site key; default <site dir>/site.key for an inventory. */
  readonly siteKey?: string;
  readonly siteDir?: string;
  readonly dryRun: boolean;
  readonly output: OutputFormat;
  readonly timeoutMs?: number;
}

export interface SiteApplyReport {
  readonly site: string;
  readonly leader: string;
  readonly baseVersion: number;
  readonly digest: string;
  readonly changes: readonly SpecChange[];
  readonly dryRun: boolean;
  /** What the leader did; null on a dry run or when nothing changed. */
  readonly result: SiteApplyOutcome | null;
}

/** loadProposedSpec reads the spec to propose and where its key is, from an inventory or a spec file. */
function loadProposedSpec(o: SiteApplyOptions): {
  text: string;
  siteId: string;
  keyFile: string | undefined;
} {
  let raw: unknown;
  try {
    raw = parseYaml(readFileSync(o.file, 'utf8'));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ConfigError(o.file, [
      code ? `cannot read the file: ${code}` : `not valid YAML: ${(e as Error).message}`,
    ]);
  }
  const isInventory = raw !== null && typeof raw === 'object' && 'robots' in raw && 'site' in raw;
  const spec = isInventory ? readInventoryFile(o.file).site : parseSiteSpec(raw, o.file);
  const keyFile = o.siteKey ?? (isInventory ? siteDirFor(spec.id, o.file, o.siteDir).siteKey : undefined);
  return { text: canonicalSiteSpec(spec), siteId: spec.id, keyFile };
}

async function call(
  url: string,
  timeoutMs: number,
  init?: RequestInit,
): Promise<{ status: number; body: unknown }> {
  let res: Response;
  try {
    res = await fetch(url, { ...init, signal: AbortSignal.timeout(timeoutMs) });
  } catch (e) {
    throw new EdgeError('AGENT_UNREACHABLE', `no agent answers at ${url}`, {
      hint: "pass --addr host:port of a robot agent's status endpoint (on robots it is loopback: tunnel it with ssh -L, docs/operations.md)",
      cause: e,
    });
  }
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // Not JSON: kept as text for the error below.
  }
  return { status: res.status, body };
}

/** agentError turns an agent's error answer into the EdgeError the CLI reports. */
function agentError(url: string, status: number, body: unknown): EdgeError {
  const e = (body as { error?: { code?: string; message?: string; hint?: string; problems?: string[] } })
    ?.error;
  if (!e?.code)
    return new EdgeError('AGENT_HTTP', `${url} answered HTTP ${status}: ${String(body).slice(0, 200)}`);
  if (e.code === 'EDGE_CONFIG_INVALID' && e.problems)
    return new ConfigError('the site spec (as the leader checked it)', e.problems);
  return new EdgeError(e.code, e.message ?? e.code, { hint: e.hint });
}

const portOf = (addr: string) => addr.slice(addr.lastIndexOf(':') + 1);

/** leaderView asks `addr` for the site, and the leader if `addr` is not it. */
async function leaderView(addr: string, timeoutMs: number): Promise<{ addr: string; view: SiteView }> {
  for (let hop = 0; hop < 2; hop++) {
    const url = `http://${addr}/site`;
    const r = await call(url, timeoutMs);
    if (r.status !== 200) throw agentError(url, r.status, r.body);
    const view = r.body as SiteView;
    if (view.leader === view.node) return { addr, view };
    if (view.leader === null)
      throw new EdgeError('NO_LEADER', `the site has no leader now (as ${view.node} sees it)`, {
        hint: 'wait for an election (edgectl status), then run the command again',
      });
    if (!view.leaderAddress)
      throw new EdgeError(
        'LEADER_UNREACHABLE',
        `${view.node} follows ${view.leader} but knows no address for it`,
        {
          hint: `pass --addr with ${view.leader}'s status endpoint`,
        },
      );
    addr = `${view.leaderAddress}:${portOf(addr)}`;
  }
  throw new EdgeError('NO_LEADER', 'the leader moved while edgectl looked for it', {
    hint: 'run the command again',
  });
}

export async function runSiteApply(o: SiteApplyOptions, io: Io): Promise<SiteApplyReport> {
  const timeoutMs = o.timeoutMs ?? 30_000;
  const proposed = loadProposedSpec(o);
  const { addr, view } = await leaderView(o.addr, timeoutMs);
  if (view.site !== proposed.siteId)
    throw new UsageError(
      'WRONG_SITE',
      `the spec is for site ${proposed.siteId}, but ${o.addr} is an agent of site ${view.site}`,
      {
        hint: 'pass the --addr of an agent of that site, or the spec of this one',
      },
    );
  const committed = view.committed;
  const base = committed?.version ?? 0;
  const changes = diffSpecs(committed?.text ?? null, proposed.text);
  const digest = specDigest(proposed.text);
  const report = (result: SiteApplyOutcome | null): SiteApplyReport => ({
    site: view.site,
    leader: view.node,
    baseVersion: base,
    digest,
    changes: committed?.digest === digest ? [] : changes,
    dryRun: o.dryRun,
    result,
  });
  const head = committed
    ? `site ${view.site}: version ${committed.version} is committed (term ${committed.term}, index ${committed.index}, ${committed.digest.slice(0, 12)}); ${view.node} leads`
    : `site ${view.site}: no version committed yet; ${view.node} leads`;
  const diffLines = (r: SiteApplyReport) =>
    r.changes.length === 0 ? ['no change'] : r.changes.map((c) => `  ${formatChange(c)}`);
  if (o.dryRun || committed?.digest === digest) {
    const r = report(null);
    if (o.output === 'json') io.out(JSON.stringify(r, null, 2));
    else
      io.out([head, ...diffLines(r), o.dryRun ? 'dry run: nothing proposed' : 'nothing to apply'].join('\n'));
    return r;
  }
  if (!proposed.keyFile)
    throw new UsageError('NO_SITE_KEY', 'which site key signs this request?', {
      hint: 'pass --site-key <path> (or -f the inventory, whose site directory holds site.key)',
    });
  // The site directory's master secret and the generation its robots send with now.
  const identity = loadSiteIdentity(siteDirOfKey(proposed.keyFile));
  if (!identity)
    throw new UsageError('NO_SITE_KEY', `there is no site master secret at ${proposed.keyFile}`, {
      hint: 'pass --site-key <site directory>/site.key, or -f the inventory bootstrap used',
    });
  const key = operatorKey(Buffer.from(identity.siteKeyHex, 'hex'), identity.keys?.send ?? 1);
  const body = JSON.stringify({
    site: view.site,
    baseVersion: base,
    spec: proposed.text,
    mac: signSiteApply(key, { site: view.site, baseVersion: base, digest }),
  });
  let target = addr;
  for (let hop = 0; ; hop++) {
    const url = `http://${target}/site/apply`;
    const r = await call(url, timeoutMs, { method: 'POST', body });
    if (r.status === 421 && hop === 0) {
      const moved = r.body as Extract<SiteApplyOutcome, { kind: 'notLeader' }>;
      if (!moved.leaderAddress) throw agentError(url, r.status, r.body);
      target = `${moved.leaderAddress}:${portOf(target)}`;
      continue;
    }
    if (r.status !== 200) throw agentError(url, r.status, r.body);
    const result = r.body as SiteApplyOutcome;
    const out = report(result);
    if (o.output === 'json') io.out(JSON.stringify(out, null, 2));
    else {
      const done =
        result.kind === 'committed'
          ? `committed version ${result.version} (term ${result.term}, index ${result.index}, ${result.digest.slice(0, 12)}); the leader applies it now`
          : `nothing to apply: version ${result.kind === 'unchanged' ? result.version : base} is this spec`;
      io.out([head, ...diffLines(out), done].join('\n'));
    }
    return out;
  }
}

export async function runSiteHistory(
  o: { addr: string; output: OutputFormat; timeoutMs?: number },
  io: Io,
): Promise<SiteHistoryEntry[]> {
  const timeoutMs = o.timeoutMs ?? 10_000;
  // The leader's log is the freshest; any robot's committed prefix is the same history, maybe shorter.
  const { addr } = await leaderView(o.addr, timeoutMs).catch(() => ({ addr: o.addr }));
  const url = `http://${addr}/site/history`;
  const r = await call(url, timeoutMs);
  if (r.status !== 200) throw agentError(url, r.status, r.body);
  const versions = (r.body as { versions: SiteHistoryEntry[] }).versions;
  if (o.output === 'json') io.out(JSON.stringify(versions, null, 2));
  else if (versions.length === 0) io.out('no site spec version committed yet');
  else
    io.out(
      table(
        ['version', 'term', 'index', 'digest', 'when', 'what changed'],
        versions.map((v) => [v.version, v.term, v.index, v.digest.slice(0, 12), v.at, v.changes.join('; ')]),
      ),
    );
  return versions;
}

/** siteDirOfKey: the site directory whose master secret is at `keyFile` (keys.json beside it). */
function siteDirOfKey(keyFile: string): SiteDir {
  const root = dirname(resolve(keyFile));
  return { ...siteDirFor('', keyFile, root), siteKey: resolve(keyFile) };
}
