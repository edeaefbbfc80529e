/**
 * The robot's agent entry point: `node edgectl-agent.mjs --config /etc/edgectl/agent.yaml`.
 * `npm run build:agent` bundles it (esbuild) into agent/bundle/edgectl-agent.mjs, the file the
 * systemd unit runs, and the chunks it imports, edgectl-agent-<hash>.mjs beside it; the offline
 * bundle ships them all. `edgectl agent run` runs the same code from the sources.
 *
 * The bundle is esbuild's esm format with code splitting: code that only `import()` reaches (the
 * lab and k3s runtimes, with @kubernetes/client-node and undici) is in chunks that load when a
 * robot first uses them. A robot that does not use them never parses them, makes no closures for
 * their functions, and does not load the built-ins they import (https, tls, child_process, http):
 * a chunk's built-in imports load with the chunk. The entry and the chunks it imports statically
 * import none of those: an ESM import of node:http alone loads undici (agent/status-server.ts).
 * The banner gives each file a `require` for the bundled CommonJS modules' built-ins; each file's
 * own import.meta.url is in agent/bundle/ (or /opt/edgectl/), so URLs relative to it work as before.
 * docs/benchmarks/agent.md has the figures.
 */
import { runAgent } from '../cli/ops/agent-run.ts';
import { EdgeError, InternalError } from './errors.ts';

const i = process.argv.indexOf('--config');
runAgent(
  { config: (i >= 0 ? process.argv[i + 1] : undefined) ?? '/etc/edgectl/agent.yaml' },
  { out: (t) => process.stdout.write(`${t}\n`), err: (t) => process.stderr.write(`${t}\n`) },
).catch((e: unknown) => {
  const err =
    e instanceof EdgeError ? e : new InternalError(e instanceof Error ? e.message : String(e), { cause: e });
  process.stderr.write(`edgectl-agent: ${err.message}${err.hint ? `\n  hint: ${err.hint}` : ''}\n`);
  process.exitCode = err.exitCode;
});
