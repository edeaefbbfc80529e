/**
 * The bundled agent parses site specs and the addon templates in a short-lived child process, so
 * that its own process never loads zod and yaml: the same reason, and the same way, as its config
 * (agent/config-subprocess.ts says why a module loaded once stays). `npm run build:agent` builds
 * the spec loader (agent/site/spec-loader.ts) as edgectl-agent-site.cjs beside the entry; the agent
 * writes one request as JSON to its stdin and reads the answer, plain JSON, from its stdout. The
 * leader runs it once per spec it applies (LeaderSite keeps the last one), not per reconcile.
 *
 * This module imports the parser's modules for types only.
 */
import { execFile } from 'node:child_process';
import { ConfigError, InternalError } from '../errors.ts';
import type { LoadedSite, SiteSpecSource } from './spec-source.ts';

/** One question to the spec loader: the calls of SiteSpecSource, with the paths they read. */
export type SpecRequest =
  | { readonly op: 'local'; readonly path?: string }
  | { readonly op: 'validate'; readonly text: string; readonly siteId: string }
  | { readonly op: 'load'; readonly text: string; readonly source: string; readonly templatesDir: string };

/** The loader's answer: the call's value, or the ConfigError's fields, or another error's message. */
export type SpecReply =
  | { readonly ok: true; readonly value: unknown }
  | {
      readonly ok: false;
      readonly source: string;
      readonly problems: readonly string[];
      readonly hint: string | undefined;
    }
  | { readonly ok: false; readonly internal: string };

/** answerSpecRequest runs `req` against `source` and returns its answer as data. */
export async function answerSpecRequest(
  req: SpecRequest,
  source: (path: string | undefined, templatesDir: string | undefined) => SiteSpecSource,
): Promise<SpecReply> {
  try {
    switch (req.op) {
      case 'local':
        return { ok: true, value: await source(req.path, undefined).local() };
      case 'validate':
        return { ok: true, value: await source(undefined, undefined).validate(req.text, req.siteId) };
      case 'load':
        return { ok: true, value: await source(undefined, req.templatesDir).load(req.text, req.source) };
    }
  } catch (e) {
    if (e instanceof ConfigError)
      return { ok: false, source: e.source, problems: [...e.problems], hint: e.hint };
    return { ok: false, internal: (e as Error).message };
  }
}

/** fromSpecReply returns the answer's value, or throws the error it describes. */
export function fromSpecReply(reply: SpecReply, loader: string): unknown {
  if (reply.ok) return reply.value;
  if ('internal' in reply)
    throw new InternalError(`the site spec loader ${loader} failed: ${reply.internal}`);
  throw new ConfigError(reply.source, reply.problems, reply.hint === undefined ? {} : { hint: reply.hint });
}

/** askLoader runs the loader `loader` with this process's Node, writes `req` and returns its answer. */
function askLoader(loader: string, req: SpecRequest): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      process.execPath,
      [loader],
      // Asynchronous, unlike the config loader's run: the leader keeps answering its peers while the
      // child parses. A child that hangs is killed, and the apply fails and is tried again.
      { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, timeout: 60_000 },
      (err, stdout, stderr) => {
        if (err) {
          reject(new InternalError(`the site spec loader ${loader} failed: ${err.message} ${stderr.trim()}`));
          return;
        }
        try {
          resolve(fromSpecReply(JSON.parse(stdout) as SpecReply, loader));
        } catch (e) {
          reject(
            e instanceof ConfigError || e instanceof InternalError
              ? e
              : new InternalError(
                  `the site spec loader ${loader} printed no answer: ${(e as Error).message}`,
                ),
          );
        }
      },
    );
    child.stdin!.end(JSON.stringify(req));
  });
}

/**
 * subprocessSiteSpecSource is fileSiteSpecSource(path, templatesDir) run in the spec loader
 * `loader` (edgectl-agent-site.cjs): each call is one short-lived child process.
 */
export function subprocessSiteSpecSource(
  path: string | undefined,
  templatesDir: string,
  loader: string,
): SiteSpecSource {
  return {
    local: async () =>
      (await askLoader(loader, path === undefined ? { op: 'local' } : { op: 'local', path })) as
        string | null,
    validate: async (text, siteId) => (await askLoader(loader, { op: 'validate', text, siteId })) as string,
    load: async (text, source) =>
      (await askLoader(loader, { op: 'load', text, source, templatesDir })) as LoadedSite,
  };
}
