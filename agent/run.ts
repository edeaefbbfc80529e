/**
 * `edgectl agent run`: the robot daemon. It builds the real implementations of each interface from
 * the config and runs the Agent until SIGTERM or SIGINT, then shuts down cleanly (leadership
 * transfer, mDNS goodbye).
 */
import { Agent } from './agent.ts';
import type { AgentConfig } from './config.ts';
import { InMemoryControlPlane } from './control-plane/in-memory.ts';
import type { ControlPlaneRuntime } from './control-plane/runtime.ts';
import { makeDiscovery } from './discovery/factory.ts';
import { EdgeError } from './errors.ts';
import { createLogger } from './log.ts';
import { StateStore } from './persistence/state-store.ts';
import { readSiteKey } from './site-key.ts';
import { startStatusServer } from './status-server.ts';
import { UdpTransport } from './transport/udp.ts';
import type { Io } from '../cli/output.ts';
import type { Logger } from 'pino';

async function makeRuntime(config: AgentConfig, log: Logger, siteKey: Buffer): Promise<ControlPlaneRuntime> {
  switch (config.controlPlane.runtime) {
    case 'memory':
      return new InMemoryControlPlane(config.node.id);
    case 'lab': {
      const { makeLabControlPlane } = await import('../lab/runtime/lab-control-plane.ts');
      return makeLabControlPlane({
        nodeId: config.node.id,
        siteId: config.site.id,
        stateDir: config.stateDir,
        labels: config.node.labels,
        controlPlane: config.controlPlane,
        log,
        siteKey,
        serverCapable: config.voters.includes(config.node.id),
      });
    }
    case 'k3s': {
      const { makeK3sControlPlane } = await import('./control-plane/k3s-runtime.ts');
      return makeK3sControlPlane(config, log, siteKey);
    }
    default:
      throw new EdgeError(
        'RUNTIME_UNAVAILABLE',
        `controlPlane.runtime "${config.controlPlane.runtime}" is not available in this build`,
        {
          hint: 'set controlPlane.runtime to memory, lab or k3s (docs/agent.md)',
          exitCode: 2,
        },
      );
  }
}

export interface RunAgentOptions {
  /** The config file. */
  readonly config: string;
  /**
   * Reads and validates it: loadAgentConfig (agent/config.ts) under `edgectl agent run`. The
   * bundled agent passes loadConfigInSubprocess, so that its process never loads zod and yaml
   * (agent/config-subprocess.ts); this module imports agent/config.ts for types only.
   */
  readonly loadConfig: (path: string) => AgentConfig;
}

export async function runAgent(o: RunAgentOptions, _io: Io, stop?: Promise<unknown>): Promise<void> {
  const config = o.loadConfig(o.config);
  const key = readSiteKey(config.siteKeyFile);
  const { log, context } = createLogger({
    node: config.node.id,
    site: config.site.id,
    level: config.log.level,
  });
  const runtime = await makeRuntime(config, log, key);
  const store = new StateStore(config.stateDir);
  const transport = await UdpTransport.open({
    self: config.node.id,
    siteId: config.site.id,
    key,
    bindAddress: config.network.bindAddress,
    port: config.network.port,
  });
  const discovery = makeDiscovery(config, transport.port, (err) =>
    log.warn({ err: String(err) }, 'discovery listener failed'),
  );
  const agent = new Agent({ config, transport, discovery, runtime, store, log, logContext: context });
  try {
    await agent.start();
  } catch (e) {
    await agent.stop().catch(() => {});
    throw e;
  }
  const status = await startStatusServer(agent, config.status.listen);
  log.info({ status: config.status.listen, port: transport.port }, 'agent running');
  await (stop ??
    new Promise<void>((resolve) => {
      process.once('SIGTERM', () => resolve());
      process.once('SIGINT', () => resolve());
    }));
  log.info('shutting down');
  await agent.stop();
  await status.close();
  await runtime.close();
}
