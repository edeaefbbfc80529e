/**
 * The robot's agent entry point: `node edgectl-agent.mjs --config /etc/edgectl/agent.yaml`.
 * `npm run build:agent` bundles it (esbuild) into agent/bundle/edgectl-agent.mjs, the one file the
 * offline bundle and the systemd unit run. `edgectl agent run` runs the same code from the sources.
 *
 * The bundle is an ES module whose body is one function (esbuild's iife format): bundled modules
 * then reach Node's built-in modules through `require` where they are initialised, so the lab and
 * k3s runtimes, which esbuild bundles inline, load their built-ins (https, tls, child_process, …)
 * only when a robot uses them. In the esm format every built-in import is hoisted to the top of the
 * file and loaded at start-up. That is also why this file has no top-level await: the iife format
 * cannot hold one. docs/benchmarks/agent.md has the figures.
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
