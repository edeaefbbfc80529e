/**
 * The robot's agent entry point: `node edgectl-agent.mjs --config /etc/edgectl/agent.yaml`.
 * `npm run build:agent` bundles it (esbuild) into agent/bundle/edgectl-agent.mjs, the file the
 * systemd unit runs, and the chunks it imports, edgectl-agent-<hash>.mjs beside it; the offline
 * bundle ships them all. `edgectl agent run` runs the same code from the sources.
 *
 * It registers the robot's runtimes only, k3s and the witness's none (agent/runtimes.ts): the lab's
 * agents start from lab/agent-main.ts, and the in-memory twin is for tests (agent/testing/main.ts),
 * so neither is in the robot's bundle.
 *
 * The bundle is esbuild's esm format with code splitting: code that only `import()` reaches (the
 * k3s runtime, and the site applier) is in chunks that load when a robot first uses them. A robot
 * that does not use them never parses them, makes no closures for their functions, and does not
 * load the built-ins they import: a chunk's built-in imports load with the chunk. The entry and the chunks it imports statically
 * import none of those but child_process, which runs the config loader: an ESM import of node:http
 * alone loads undici (agent/status-server.ts).
 * Built-ins, imported or required, come from `process.getBuiltinModule` (agent/build.ts); each
 * file's own import.meta.url is in agent/bundle/ (or /opt/edgectl/), so URLs relative to it work
 * as in the sources.
 * The config loader, with zod and yaml, is a separate CommonJS file, edgectl-agent-config.cjs, that
 * the agent runs in a child process at start-up (agent/config-subprocess.ts, agent/build.ts); the
 * site spec loader, edgectl-agent-site.cjs, likewise when a leader applies a new spec
 * (agent/site/spec-subprocess.ts); and a leader's Kubernetes client, edgectl-agent-kube.cjs, with
 * the HTTPS client, while it has calls to make (agent/site/kube-child.ts).
 * docs/benchmarks/agent.md has the figures.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadConfigInSubprocess } from './config-subprocess.ts';
import { EdgeError } from './errors.ts';
import { agentMain } from './run.ts';
import { ROBOT_RUNTIMES } from './runtimes.ts';
import { defaultTemplatesDir } from './site/addon-objects.ts';
import { subprocessSiteSpecSource } from './site/spec-subprocess.ts';

/**
 * besideThisFile is the path of a file shipped next to this one. Not createRequire().resolve, which
 * would load node:module and its source-map support into the agent for one lookup.
 */
function besideThisFile(name: string): string {
  const path = fileURLToPath(new URL(name, import.meta.url));
  if (!existsSync(path))
    throw new EdgeError('AGENT_FILES_MISSING', `${path} is missing: the agent's files are incomplete`, {
      hint: 'install the whole agent bundle again (edgectl bootstrap site), or run npm run build:agent',
    });
  return path;
}

agentMain({
  entryName: 'the robot agent',
  // Not loadAgentConfig: it needs zod and yaml, which would then stay in this process's memory.
  // The config loader with them is edgectl-agent-config.cjs beside this file, run in a child
  // process (agent/config-subprocess.ts). Nothing this file imports statically may import
  // agent/config.ts for values. The file name is a literal in a call so that bootstrap finds it
  // and ships it (cli/bootstrap/bundle.ts chunkImports).
  loadConfig: (path) => loadConfigInSubprocess(path, besideThisFile('./edgectl-agent-config.cjs')),
  // The site spec and the addon templates likewise: the leader parses them in a child process,
  // edgectl-agent-site.cjs (agent/site/spec-subprocess.ts).
  siteSpecs: (specFile, templatesDir) =>
    subprocessSiteSpecSource(
      specFile,
      templatesDir ?? defaultTemplatesDir(),
      besideThisFile('./edgectl-agent-site.cjs'),
    ),
  // A leader's Kubernetes client, with node:https, tls and node:crypto, runs in a child process,
  // edgectl-agent-kube.cjs, while it has calls to make (agent/site/kube-child.ts).
  kubeWorker: () => besideThisFile('./edgectl-agent-kube.cjs'),
  runtimes: ROBOT_RUNTIMES,
});
