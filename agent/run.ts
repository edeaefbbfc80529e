/**
 * runAgent: the robot daemon's composition root. It builds the real implementation of each
 * interface from the config and runs the Agent until SIGTERM or SIGINT, then shuts down cleanly
 * (leadership transfer, mDNS goodbye).
 *
 * The entry that calls it names the control-plane runtimes it can run: the robot's entry
 * (agent/main.ts, and `edgectl agent run`) registers k3s only, the lab's entry (lab/agent-main.ts)
 * adds the lab runtime, and the tests' entry (agent/testing/main.ts) the in-memory twin. A runtime
 * that no entry registered is never bundled into the robot's agent.
 *
 * Start-up order: the UDP transport, the control-plane runtime, the durable state and the
 * statecharts, then the status endpoint, then discovery, so /status and /metrics answer while mDNS
 * is still starting. Any failure on the way stops everything started so far (the UDP port is
 * released) and rejects, so the entry exits non-zero at once and systemd's Restart= takes over.
 */
import { Agent } from './agent.ts';
import type { AgentConfig } from './config.ts';
import type { ControlPlaneRuntime } from './control-plane/runtime.ts';
import { makeDiscovery } from './discovery/factory.ts';
import { EdgeError, InternalError } from './errors.ts';
import { createLogger } from './log.ts';
import { StateStore } from './persistence/state-store.ts';
import { leaderSiteApplier } from './site/leader-site.ts';
import { readSiteKey } from './site-key.ts';
import { startStatusServer } from './status-server.ts';
import { UdpTransport } from './transport/udp.ts';
import type { Logger } from 'pino';

/** What a runtime factory gets: the validated config, the agent's logger and the site key. */
export interface RuntimeContext {
  readonly config: AgentConfig;
  readonly log: Logger;
  readonly siteKey: Buffer;
}

/** A runtime factory builds the ControlPlaneRuntime that `controlPlane.runtime` names. */
export type RuntimeFactory = (ctx: RuntimeContext) => Promise<ControlPlaneRuntime>;

export type RuntimeName = AgentConfig['controlPlane']['runtime'];

/** The runtimes an entry can run. */
export type RuntimeRegistry = Readonly<Partial<Record<RuntimeName, RuntimeFactory>>>;

export interface RunAgentOptions {
  /** The config file. */
  readonly config: string;
  /**
   * Reads and validates it: loadAgentConfig (agent/config.ts) when the agent runs from the
   * sources. The bundled agent passes loadConfigInSubprocess, so that its process never loads zod
   * and yaml (agent/config-subprocess.ts); this module imports agent/config.ts for types only.
   */
  readonly loadConfig: (path: string) => AgentConfig;
  readonly runtimes: RuntimeRegistry;
  /** Names this entry in the error for a runtime it does not have ("the robot agent"). */
  readonly entryName: string;
  /** Builds discovery (default makeDiscovery: mDNS and the seeds); tests slow it down. */
  readonly discovery?: typeof makeDiscovery;
}

/** runtimeFactory returns the registered factory of the config's runtime, or says which entry has it. */
function runtimeFactory(o: RunAgentOptions, runtime: RuntimeName): RuntimeFactory {
  const factory = o.runtimes[runtime];
  if (factory) return factory;
  const has = Object.keys(o.runtimes).join(', ');
  throw new EdgeError(
    'RUNTIME_UNAVAILABLE',
    `controlPlane.runtime "${runtime}" is not available in ${o.entryName}, which runs ${has}`,
    {
      hint:
        runtime === 'lab'
          ? 'lab robots run lab/agent-main.ts (edgectl lab up starts it); robots run controlPlane.runtime: k3s'
          : runtime === 'memory'
            ? 'the in-memory control plane is for tests (agent/testing/main.ts); robots run controlPlane.runtime: k3s'
            : `set controlPlane.runtime to ${has} (docs/agent.md)`,
      exitCode: 2,
    },
  );
}

export async function runAgent(o: RunAgentOptions, stop?: Promise<unknown>): Promise<void> {
  const config = o.loadConfig(o.config);
  const factory = runtimeFactory(o, config.controlPlane.runtime);
  const key = readSiteKey(config.siteKeyFile);
  const { log, context } = createLogger({
    node: config.node.id,
    site: config.site.id,
    level: config.log.level,
  });
  // What is running so far, stopped in reverse order if a later step fails.
  const started: (() => Promise<unknown>)[] = [];
  const undo = async () => {
    for (const close of started.reverse()) await close().catch(() => undefined);
  };
  let agent: Agent;
  let status: Awaited<ReturnType<typeof startStatusServer>>;
  try {
    const transport = await UdpTransport.open({
      self: config.node.id,
      siteId: config.site.id,
      key,
      bindAddress: config.network.bindAddress,
      port: config.network.port,
    });
    started.push(() => transport.close());
    const runtime = await factory({ config, log, siteKey: key });
    started.push(() => runtime.close());
    const store = new StateStore(config.stateDir);
    const discovery = (o.discovery ?? makeDiscovery)(config, transport.port, (err) =>
      log.warn({ err: String(err) }, 'discovery listener failed'),
    );
    started.push(() => discovery.close());
    // One SiteApplier on every runtime; the runtime only says how to reach its server.
    const site = leaderSiteApplier({
      spec: config.siteSpec,
      templatesDir: 'templatesDir' in config.controlPlane ? config.controlPlane.templatesDir : undefined,
      log,
      server: () => runtime.apiServer(),
    });
    agent = new Agent({ config, transport, discovery, runtime, site, store, log, logContext: context });
    agent.startCore();
    started.push(() => agent.stop());
    status = await startStatusServer(agent, config.status.listen);
    started.push(() => status.close());
    await agent.startDiscovery();
    log.info({ status: config.status.listen, port: transport.port }, 'agent running');
  } catch (e) {
    log.error({ err: e instanceof Error ? e.message : String(e) }, 'agent start-up failed');
    await undo();
    throw e;
  }
  await (stop ??
    new Promise<void>((resolve) => {
      process.once('SIGTERM', () => resolve());
      process.once('SIGINT', () => resolve());
    }));
  log.info('shutting down');
  await undo();
}

/**
 * agentMain is an agent entry's whole body: `<entry> --config <file>` runs runAgent; a failure is
 * printed (with its hint) and the process exits at once with the error's code, whatever handle is
 * still open. The entries are the only places besides cli/main.ts that turn errors into exit codes.
 */
export function agentMain(o: Omit<RunAgentOptions, 'config'>, argv: readonly string[] = process.argv): void {
  const i = argv.indexOf('--config');
  const config = (i >= 0 ? argv[i + 1] : undefined) ?? '/etc/edgectl/agent.yaml';
  runAgent({ ...o, config }).catch((e: unknown) => {
    const err =
      e instanceof EdgeError
        ? e
        : new InternalError(e instanceof Error ? e.message : String(e), { cause: e });
    process.stderr.write(`edgectl-agent: ${err.message}${err.hint ? `\n  hint: ${err.hint}` : ''}\n`, () =>
      process.exit(err.exitCode),
    );
  });
}
