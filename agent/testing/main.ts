/**
 * The tests' agent entry: `node agent/testing/main.ts --config <agent.yaml>`, the robot's agent
 * (agent/run.ts) with the in-memory control plane (agent/control-plane/testing/in-memory.ts) registered
 * beside the robot's runtimes, for the integration and security tests and the benchmarks that run
 * real agents in network namespaces without a control plane of their own.
 *
 * From the sources it reads its config in process, as `edgectl agent run` does; bundled
 * (`node agent/build.ts --entry agent/testing/main.ts <dir>`) it reads it in a child process, as the
 * robot's bundled agent does, so that a benchmark measures the robot's process.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { AgentConfig } from '../config.ts';
import { loadConfigInSubprocess } from '../config-subprocess.ts';
import { EdgeError } from '../errors.ts';
import { agentMain } from '../run.ts';
import { defaultTemplatesDir } from '../site/addon-objects.ts';
import { subprocessSiteSpecSource } from '../site/spec-subprocess.ts';
import { TEST_RUNTIMES } from './runtimes.ts';

const loader = fileURLToPath(new URL('./edgectl-agent-config.cjs', import.meta.url));
const loadConfig: (path: string) => AgentConfig = import.meta.url.endsWith('.ts')
  ? (await import('../config.ts')).loadAgentConfig
  : (path) => {
      if (!existsSync(loader))
        throw new EdgeError(
          'AGENT_FILES_MISSING',
          `${loader} is missing: the test agent's bundle is incomplete`,
        );
      return loadConfigInSubprocess(path, loader);
    };

const siteLoader = fileURLToPath(new URL('./edgectl-agent-site.cjs', import.meta.url));
const kubeWorker = fileURLToPath(new URL('./edgectl-agent-kube.cjs', import.meta.url));

agentMain({
  entryName: 'the test agent',
  loadConfig,
  // From the sources: run.ts's defaults. Bundled: the robot's child processes.
  ...(import.meta.url.endsWith('.ts')
    ? {}
    : {
        siteSpecs: (specFile: string | undefined, templatesDir: string | undefined) =>
          subprocessSiteSpecSource(specFile, templatesDir ?? defaultTemplatesDir(), siteLoader),
        kubeWorker: () => kubeWorker,
      }),
  runtimes: TEST_RUNTIMES,
});
