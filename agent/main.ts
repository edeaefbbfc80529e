/**
 * The robot's agent entry point: `node edgectl-agent.mjs --config /etc/edgectl/agent.yaml`.
 * `npm run build:agent` bundles it (esbuild) into agent/bundle/edgectl-agent.mjs, the file the
 * offline bundle and the systemd unit run: one plain-JS file loads without the TypeScript stripper
 * or the CLI's argument parser, which keeps an idle agent's memory low (docs/benchmarks/agent.md).
 * `edgectl agent run` runs the same code from the sources.
 */
import { runAgent } from '../cli/ops/agent-run.ts';
import { EdgeError, InternalError } from './errors.ts';

const i = process.argv.indexOf('--config');
const config = i >= 0 ? process.argv[i + 1] : '/etc/edgectl/agent.yaml';
try {
  await runAgent(
    { config: config ?? '/etc/edgectl/agent.yaml' },
    { out: (t) => process.stdout.write(`${t}\n`), err: (t) => process.stderr.write(`${t}\n`) },
  );
} catch (e) {
  const err =
    e instanceof EdgeError ? e : new InternalError(e instanceof Error ? e.message : String(e), { cause: e });
  process.stderr.write(`edgectl-agent: ${err.message}${err.hint ? `\n  hint: ${err.hint}` : ''}\n`);
  process.exitCode = err.exitCode;
}
