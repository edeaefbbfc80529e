/**
 * `npm run build:agent` (`node agent/build.ts [outdir]`): the robot's agent, built with esbuild
 * into agent/bundle/ (or outdir), which it empties first:
 *
 * - edgectl-agent.mjs, the entry (agent/main.ts), and the chunks it imports, edgectl-agent-<hash>.mjs:
 *   esm with code splitting, so that code only `import()` reaches loads only when used (main.ts);
 * - edgectl-agent-config.cjs, the config loader (agent/config-loader.ts) with zod and yaml: one
 *   CommonJS file, which the agent runs in a child process at start-up, so that the agent's own
 *   process never loads them (agent/config-subprocess.ts).
 *
 * Bootstrap ships every file the entry refers to (cli/bootstrap/bundle.ts agentChunks).
 */
import { rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type BuildOptions, type Metafile } from 'esbuild';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
export const AGENT_BUNDLE_DIR = join(ROOT, 'agent/bundle');

const common: BuildOptions = {
  bundle: true,
  platform: 'node',
  target: 'node24',
  minify: true,
  sourcemap: true,
  absWorkingDir: ROOT,
  logLevel: 'warning',
};

/** buildAgent empties `outdir` and builds the agent into it; the metafiles say what is in which file. */
export async function buildAgent(
  outdir = AGENT_BUNDLE_DIR,
): Promise<{ agent: Metafile; configLoader: Metafile }> {
  rmSync(outdir, { recursive: true, force: true });
  const [agent, configLoader] = await Promise.all([
    build({
      ...common,
      entryPoints: ['agent/main.ts'],
      format: 'esm',
      splitting: true,
      outdir,
      entryNames: 'edgectl-agent',
      chunkNames: 'edgectl-agent-[hash]',
      outExtension: { '.js': '.mjs' },
      // A `require` in each file, for the built-ins of the bundled CommonJS modules.
      banner: {
        js: "import { createRequire as __edgectl_cr } from 'node:module'; const require = __edgectl_cr(import.meta.url);",
      },
      metafile: true,
    }),
    build({
      ...common,
      entryPoints: ['agent/config-loader.ts'],
      format: 'cjs',
      outfile: join(outdir, 'edgectl-agent-config.cjs'),
      metafile: true,
    }),
  ]);
  return { agent: agent.metafile, configLoader: configLoader.metafile };
}

if (process.argv[1] === fileURLToPath(import.meta.url))
  await buildAgent(process.argv[2] === undefined ? undefined : resolve(process.argv[2]));
