/**
 * `node edgectl-agent-config.cjs <config>`: the config loader of the bundled agent. It reads and
 * validates the config file and prints the config, or the ConfigError's fields, as JSON on stdout.
 * `npm run build:agent` builds it, with zod and yaml, into its own CommonJS file, which the agent
 * runs in a child process at start-up (agent/config-subprocess.ts says why).
 */
import { loadAgentConfig } from './config.ts';
import { toConfigData } from './config-subprocess.ts';

process.stdout.write(JSON.stringify(toConfigData(() => loadAgentConfig(process.argv[2] ?? ''))));
