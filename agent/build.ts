/**
 * `npm run build:agent` (`node agent/build.ts [--entry <file>] [outdir]`): the robot's agent, built
 * with esbuild into agent/bundle/ (or outdir), which it empties first. `--entry` builds another
 * agent entry the same way: the lab's (lab/agent-main.ts, `npm run build:lab-agent`, which
 * `edgectl bootstrap site` installs on lab robots) or the tests' (agent/testing/main.ts).
 *
 * - edgectl-agent.mjs, the entry (agent/main.ts), and the chunks it imports, edgectl-agent-<hash>.mjs:
 *   esm with code splitting, so that code only `import()` reaches loads only when used (main.ts);
 * - edgectl-agent-config.cjs, the config loader (agent/config-loader.ts) with zod and yaml: one
 *   CommonJS file, which the agent runs in a child process at start-up, so that the agent's own
 *   process never loads them (agent/config-subprocess.ts);
 * - edgectl-agent-site.cjs, the site spec loader (agent/site/spec-loader.ts) with zod and yaml, the
 *   same way: a leader runs it to parse a spec and the addon templates (agent/site/spec-subprocess.ts);
 * - edgectl-agent-crypt.cjs, the snapshot cipher (agent/control-plane/snapshot-crypt.ts), which
 *   seals or opens one snapshot push with node:crypto in a child process, so that the agent's own
 *   process never loads node:crypto (agent/control-plane/snapshot-cipher.ts).
 * - edgectl-agent-kube.cjs, a leader's Kubernetes client (agent/site/kube-worker.ts) with node:https:
 *   a leader runs it while it has calls to make to its k3s server (agent/site/kube-child.ts).
 *
 * Bootstrap ships every file the entry refers to (cli/bootstrap/bundle.ts agentChunks).
 */
import { rmSync } from 'node:fs';
import { isBuiltin } from 'node:module';
import { join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type BuildOptions, type Metafile, type Plugin } from 'esbuild';

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

/**
 * builtinsWithoutFacade turns each static `import … from 'node:x'` into
 * `process.getBuiltinModule('node:x')`. An ES module import of a built-in goes through the module's
 * ES facade, which reads every export once, and so runs every lazy getter: `import 'node:http'`
 * alone loads undici's WebSocket and costs an idle process about 16 MB of RSS on Node 24
 * (`require` of the same module, about 1 MB). getBuiltinModule returns the CommonJS exports, and
 * esbuild's interop reads the named imports from them where they are used. `import()` is left
 * alone: it only runs when its code path does. A bundled CommonJS module's `require('x')` of a
 * built-in takes the same path, so the output needs no `require` of its own (one made with
 * createRequire would load node:module and its source-map support).
 */
const builtinsWithoutFacade: Plugin = {
  name: 'builtins-without-facade',
  setup(b) {
    b.onResolve({ filter: /^[a-z0-9_:/]+$/ }, (args) =>
      (args.kind === 'import-statement' || args.kind === 'require-call') && isBuiltin(args.path)
        ? { path: args.path, namespace: 'builtin' }
        : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: 'builtin' }, (args) => ({
      contents: `module.exports = process.getBuiltinModule(${JSON.stringify(args.path)});`,
      loader: 'js',
    }));
  },
};

/**
 * robotShims replaces modules that pino and prom-client load for features the agent does not use,
 * each only for the files that require it:
 * - pino's transports (pino/lib/transport.js, with thread-stream, required by pino.js and
 *   pino/lib/tools.js): they ship logs from a worker thread; the agent logs to stdout for
 *   journald, and asking for a transport throws;
 * - `worker_threads` in pino/lib/tools.js, which reads only `isMainThread`: the agent's logger
 *   always runs on the main thread;
 * - `assert` in sonic-boom, which calls it as a function once: a throwing check does the same;
 * - the OpenTelemetry API in prom-client's process CPU metric, read only for exemplars, which the
 *   agent does not enable (agent/metrics.ts): its global registries and diagnostics are 22 KB of
 *   minified code the agent would load and keep.
 * Together with builtinsWithoutFacade they keep worker_threads and assert out of the agent's
 * process (docs/benchmarks/agent.md).
 */
const PINO_TRANSPORT_SHIM =
  "module.exports = function transport() { throw new Error('pino transports are not part of the edgectl agent: it logs to stdout'); };";
const SHIMS: readonly { request: string; importer: string; contents: string }[] = [
  { request: './lib/transport', importer: 'node_modules/pino/pino.js', contents: PINO_TRANSPORT_SHIM },
  { request: './transport', importer: 'node_modules/pino/lib/tools.js', contents: PINO_TRANSPORT_SHIM },
  {
    request: 'worker_threads',
    importer: 'node_modules/pino/lib/tools.js',
    contents: 'module.exports = { isMainThread: true };',
  },
  {
    request: 'assert',
    importer: 'node_modules/sonic-boom/index.js',
    contents:
      "module.exports = function assert(ok, message) { if (!ok) throw new Error(message ?? 'assertion failed'); };",
  },
  {
    request: '@opentelemetry/api',
    importer: 'node_modules/prom-client/lib/metrics/processCpuTotal.js',
    contents: 'module.exports = {};',
  },
];

const robotShims: Plugin = {
  name: 'robot-shims',
  setup(b) {
    b.onResolve(
      { filter: /^(\.\/lib\/transport|\.\/transport|worker_threads|assert|@opentelemetry\/api)$/ },
      (args) => {
        const i = SHIMS.findIndex(
          (s) => s.request === args.path && args.importer.split(sep).join('/').endsWith(s.importer),
        );
        return i < 0 ? undefined : { path: String(i), namespace: 'robot-shim' };
      },
    );
    b.onLoad({ filter: /.*/, namespace: 'robot-shim' }, (args) => ({
      contents: SHIMS[Number(args.path)]!.contents,
      loader: 'js',
    }));
  },
};

/** The robot's agent entry. */
export const ROBOT_ENTRY = 'agent/main.ts';
/** The tests' entry (agent/testing/main.ts): the robot's agent with the tests' runtimes. */
export const TEST_ENTRY = 'agent/testing/main.ts';
/** The robot model's API server, built beside the tests' entry only. */
export const MODEL_API_SERVER_CHILD = 'edgectl-model-api-server.cjs';

/** buildAgent empties `outdir` and builds the agent into it; the metafiles say what is in which file. */
export async function buildAgent(
  outdir = AGENT_BUNDLE_DIR,
  entry = ROBOT_ENTRY,
): Promise<{
  agent: Metafile;
  configLoader: Metafile;
  siteLoader: Metafile;
  cryptChild: Metafile;
  kubeWorker: Metafile;
}> {
  rmSync(outdir, { recursive: true, force: true });
  const [agent, configLoader, siteLoader, cryptChild, kubeWorker] = await Promise.all([
    build({
      ...common,
      entryPoints: [entry],
      format: 'esm',
      splitting: true,
      outdir,
      entryNames: 'edgectl-agent',
      chunkNames: 'edgectl-agent-[hash]',
      outExtension: { '.js': '.mjs' },
      plugins: [robotShims, builtinsWithoutFacade],
      metafile: true,
    }),
    build({
      ...common,
      entryPoints: ['agent/config-loader.ts'],
      format: 'cjs',
      outfile: join(outdir, 'edgectl-agent-config.cjs'),
      metafile: true,
    }),
    build({
      ...common,
      entryPoints: ['agent/site/spec-loader.ts'],
      format: 'cjs',
      outfile: join(outdir, 'edgectl-agent-site.cjs'),
      // CommonJS has no import.meta: the file's own URL stands in for it, so that paths relative to
      // it (the default templates directory) resolve as they do from the chunks beside it.
      banner: { js: "var __edgectlFileUrl=require('node:url').pathToFileURL(__filename).href;" },
      define: { 'import.meta.url': '__edgectlFileUrl' },
      metafile: true,
    }),
    build({
      ...common,
      entryPoints: ['agent/control-plane/snapshot-crypt.ts'],
      format: 'cjs',
      outfile: join(outdir, 'edgectl-agent-crypt.cjs'),
      metafile: true,
    }),
    build({
      ...common,
      entryPoints: ['agent/site/kube-worker.ts'],
      format: 'cjs',
      outfile: join(outdir, 'edgectl-agent-kube.cjs'),
      metafile: true,
    }),
  ]);
  // The tests' entry runs the k3s runtime over the robot model, whose API server is a child of the
  // leader's Kubernetes client as the HTTPS client is on a robot (agent/k3s/testing/model-robot.ts).
  if (entry === TEST_ENTRY)
    await build({
      ...common,
      entryPoints: ['agent/k3s/testing/model-api-server.ts'],
      format: 'cjs',
      outfile: join(outdir, MODEL_API_SERVER_CHILD),
    });
  return {
    agent: agent.metafile,
    configLoader: configLoader.metafile,
    siteLoader: siteLoader.metafile,
    cryptChild: cryptChild.metafile,
    kubeWorker: kubeWorker.metafile,
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const at = args.indexOf('--entry');
  const entry = at >= 0 ? args.splice(at, 2)[1] : undefined;
  await buildAgent(args[0] === undefined ? undefined : resolve(args[0]), entry);
}
