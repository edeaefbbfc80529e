/**
 * The bundled agent reads its config in a child process, so that its own process never loads zod
 * and yaml.
 *
 * Validating the config needs zod and yaml (agent/config.ts): some 570 KB of code that the agent
 * runs once, at start-up. Loaded in the agent's process, they would stay: ES modules are never
 * unloaded, and even a CommonJS copy that is required, used and forgotten leaves the agent's RSS
 * as high, since V8 keeps the heap pages that it freed (docs/agent.md has the figures). So
 * `npm run build:agent` builds the config loader (agent/config-loader.ts) as a separate CommonJS
 * file, edgectl-agent-config.cjs beside the entry, and the agent runs it with its own Node:
 * `node edgectl-agent-config.cjs <config>` prints the config, or the ConfigError's fields, as JSON.
 * fromConfigData makes that a ConfigError again, the same as loadAgentConfig throws.
 *
 * This module imports agent/config.ts for types only: a value import would put zod and yaml back
 * into the agent's entry.
 */
import { spawnSync } from 'node:child_process';
import type { AgentConfig } from './config.ts';
import { ConfigError, InternalError } from './errors.ts';

/** What the config loader prints: the config, or the ConfigError's fields. */
export type AgentConfigData =
  | { readonly ok: true; readonly config: AgentConfig }
  | {
      readonly ok: false;
      readonly source: string;
      readonly problems: readonly string[];
      readonly hint: string | undefined;
    };

/** toConfigData runs `load` and returns its config, or its ConfigError, as data; any other error is thrown. */
export function toConfigData(load: () => AgentConfig): AgentConfigData {
  try {
    return { ok: true, config: load() };
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    return { ok: false, source: e.source, problems: [...e.problems], hint: e.hint };
  }
}

/** fromConfigData returns the config, or throws the ConfigError the data describes. */
export function fromConfigData(data: AgentConfigData): AgentConfig {
  if (data.ok) return data.config;
  throw new ConfigError(data.source, data.problems, data.hint === undefined ? {} : { hint: data.hint });
}

/**
 * loadConfigInSubprocess reads and validates the config at `path` with the config loader `loader`
 * (edgectl-agent-config.cjs, or agent/config-loader.ts from the sources), run by this process's
 * Node. It returns the config, throws its ConfigError, or an InternalError if the loader fails.
 */
export function loadConfigInSubprocess(path: string, loader: string): AgentConfig {
  const run = spawnSync(process.execPath, [loader, path], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    maxBuffer: 16 * 1024 * 1024,
    // A loader stuck on a config file that never ends (a FIFO, a hung network mount) must not hold the
    // agent forever: systemd restarts it and the error names the loader.
    timeout: 60_000,
  });
  if (run.error) throw new InternalError(`cannot run the config loader ${loader}: ${run.error.message}`);
  if (run.status !== 0) {
    throw new InternalError(
      `the config loader ${loader} failed (${run.signal ?? `exit code ${run.status}`}): ${run.stderr.trim()}`,
    );
  }
  let data: AgentConfigData;
  try {
    data = JSON.parse(run.stdout) as AgentConfigData;
  } catch (e) {
    throw new InternalError(`the config loader ${loader} printed no config: ${(e as Error).message}`);
  }
  return fromConfigData(data);
}
