/**
 * runAgent: the robot daemon's composition root. It builds the real implementation of each
 * interface from the config and runs the Agent until SIGTERM or SIGINT, then shuts down cleanly
 * (leadership transfer, mDNS goodbye). SIGHUP reloads the robot's key file (edgectl site
 * rotate-keys): the transport and the snapshot sealing switch to the new keys at once; a file that
 * fails its checks is logged and the keys in use stay.
 *
 * The entry that calls it names the control-plane runtimes it can run: the robot's entry
 * (agent/main.ts, and `edgectl agent run`) registers k3s and the witness's none, the lab's entry
 * (lab/agent-main.ts) adds the lab runtime, and the tests' entry (agent/testing/main.ts) the
 * in-memory twin. A runtime that no entry registers is never bundled into the robot's agent.
 */
import { Agent } from './agent.ts';
import type { AgentConfig } from './config.ts';
import type { ControlPlaneRuntime } from './control-plane/runtime.ts';
import { makeDiscovery } from './discovery/factory.ts';
import { EdgeError, InternalError } from './errors.ts';
import { startHeapTrim } from './heap-trim.ts';
import { createLogger } from './log.ts';
import { StateStore } from './persistence/state-store.ts';
import { loadKeyring, type Keyring } from './site-key.ts';
import { fileSiteSpecSource, type SiteSpecSource } from './site/spec-source.ts';
import { startStatusServer } from './status-server.ts';
import { UdpTransport } from './transport/udp.ts';
import type { Logger } from 'pino';

/** The keys that seal snapshots between this voter and a peer, the first to seal (agent/site-key.ts). */
export type SnapshotKeysFor = (peer: string) => Buffer[];

/** What a runtime factory gets: the validated config, the agent's logger and the snapshot keys. */
export interface RuntimeContext {
  readonly config: AgentConfig;
  readonly log: Logger;
  /** Read at each use: a SIGHUP key reload reaches the runtime at once. */
  readonly snapshotKeysFor: SnapshotKeysFor;
  /** RunAgentOptions.kubeWorker. */
  readonly kubeWorker?: () => string;
}

/** A runtime factory builds the ControlPlaneRuntime that `controlPlane.runtime` names. */
export type RuntimeFactory = (ctx: RuntimeContext) => Promise<ControlPlaneRuntime>;

export type RuntimeName = AgentConfig['controlPlane']['runtime'];

/** The runtimes an entry can run. */
export type RuntimeRegistry = Readonly<Partial<Record<RuntimeName, RuntimeFactory>>>;

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
            : `set controlPlane.runtime to one of ${has} (docs/agent.md)`,
      exitCode: 2,
    },
  );
}

/** installedSiteSpecFile: the spec file bootstrap or the lab installed (the k3s runtime's default path). */
function installedSiteSpecFile(config: AgentConfig): string | undefined {
  const file = (config.controlPlane as { siteSpecFile?: unknown }).siteSpecFile;
  if (typeof file === 'string') return file;
  return config.controlPlane.runtime === 'k3s' ? '/etc/edgectl/site.yaml' : undefined;
}

/** siteTemplatesDir: the addon templates the leader applies (controlPlane.templatesDir); none: the repository's templates/. */
function siteTemplatesDir(config: AgentConfig): string | undefined {
  const dir = (config.controlPlane as { templatesDir?: unknown }).templatesDir;
  return typeof dir === 'string' ? dir : undefined;
}

export interface RunAgentOptions {
  /** The config file. */
  readonly config: string;
  /**
   * Reads and validates it: loadAgentConfig (agent/config.ts) when the agent runs from the
   * sources (`edgectl agent run`, the lab's entry). The bundled agent passes loadConfigInSubprocess, so that its process never loads zod and yaml
   * (agent/config-subprocess.ts); this module imports agent/config.ts for types only.
   */
  readonly loadConfig: (path: string) => AgentConfig;
  /**
   * Reads and checks site specs and the addon templates for the installed spec file and templates
   * directory (none: the repository's templates/). Default: fileSiteSpecSource, in this process.
   * The bundled agent passes subprocessSiteSpecSource (agent/site/spec-subprocess.ts), for the same
   * reason as loadConfig.
   */
  readonly siteSpecs?: (specFile: string | undefined, templatesDir: string | undefined) => SiteSpecSource;
  /**
   * The path of the child process that runs a k3s leader's Kubernetes client
   * (agent/site/kube-child.ts), asked when the robot first leads: the bundled entries pass
   * edgectl-agent-kube.cjs beside them. Default: the one beside the k3s runtime's code.
   */
  readonly kubeWorker?: () => string;
  readonly runtimes: RuntimeRegistry;
  /** Names this entry in the error for a runtime it does not have ("the robot agent"). */
  readonly entryName: string;
}

export async function runAgent(o: RunAgentOptions, stop?: Promise<unknown>): Promise<void> {
  const config = o.loadConfig(o.config);
  const makeRuntime = runtimeFactory(o, config.controlPlane.runtime);
  // Witnesses vote: their key files list them among the voters.
  const expected = {
    site: config.site.id,
    node: config.node.id,
    voters: [...config.voters, ...config.witnesses],
  };
  let keys: Keyring = loadKeyring(config.siteKeyFile, expected);
  const { log, context } = createLogger({
    node: config.node.id,
    site: config.site.id,
    level: config.log.level,
  });
  // Installed before anything slow: SIGHUP's default action would end the agent. The transport
  // and the runtime read `keys` through these closures, so a reload reaches both at once.
  const reloadKeys = () => {
    try {
      keys = loadKeyring(config.siteKeyFile, expected);
      log.info(
        { keys: keys.summary() },
        `${config.node.id} reloaded its keys: it sends with generation ${keys.sendGeneration}`,
      );
    } catch (e) {
      log.error({ err: (e as Error).message }, `${config.node.id} kept its keys: the key file did not load`);
    }
  };
  // Left in place if the start fails: the process ends then, and a signal listener keeps nothing alive.
  process.on('SIGHUP', reloadKeys);
  // From here on SIGTERM and SIGINT mean a clean stop, also during start-up (the status endpoint
  // answers before discovery has started), and the listeners stay on through the shutdown: a
  // second SIGINT (a terminal's Ctrl-C reaches the wrapper and this process both, and the wrapper
  // forwards it) must not cut the clean shutdown short with the default action.
  let stopSignal: () => void = () => {};
  const stopped = new Promise<void>((resolve) => (stopSignal = resolve));
  const onSignal = () => stopSignal();
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  // What is running so far, stopped in reverse order if a later step fails: a robot whose start
  // failed must exit at once (the UDP port released) so that systemd's Restart= takes over.
  const started: (() => Promise<unknown>)[] = [];
  const undo = async () => {
    for (const close of started.reverse()) await close().catch(() => undefined);
    process.off('SIGHUP', reloadKeys);
    // A daemon keeps them to the end: a signal that arrives while the process exits must not end
    // it by the default action. Only a caller that stops it some other way (tests) gets them back.
    if (stop) {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
    }
  };
  try {
    const runtime = await makeRuntime({
      config,
      log,
      snapshotKeysFor: (peer) => keys.snapshotKeysFor(peer),
      ...(o.kubeWorker === undefined ? {} : { kubeWorker: o.kubeWorker }),
    });
    started.push(() => runtime.close());
    const store = new StateStore(config.stateDir);
    const transport = await UdpTransport.open({
      self: config.node.id,
      siteId: config.site.id,
      keys: {
        sendKey: (peer) => keys.sendKey(peer),
        receiveKey: (peer, generation) => keys.receiveKey(peer, generation),
        confirmSender: (peer, generation) => keys.confirmSender(peer, generation),
      },
      bindAddress: config.network.bindAddress,
      port: config.network.port,
    });
    started.push(() => transport.close());
    const discovery = makeDiscovery(config, transport.port, (err) =>
      log.warn({ err: String(err) }, 'discovery listener failed'),
    );
    started.push(() => discovery.close());
    const a = new Agent({
      config,
      transport,
      discovery,
      runtime,
      store,
      log,
      logContext: context,
      siteSpecs: (o.siteSpecs ?? fileSiteSpecSource)(installedSiteSpecFile(config), siteTemplatesDir(config)),
      // The keys of the current generations, read at each request: a SIGHUP reload takes effect at once.
      operatorKeys: () => keys.operatorKeys(),
      keys: () => keys.summary(),
    });
    started.push(() => a.stop());
    // The status endpoint comes up before discovery, so /status and /metrics answer while mDNS is
    // still starting (a LAN host that claims every name we probe can slow that down).
    await a.start(async () => {
      const status = await startStatusServer(a, config.status.listen);
      started.push(() => status.close());
    });
    const heapTrim = startHeapTrim();
    if (heapTrim) started.push(async () => heapTrim.stop());
    log.info(
      {
        status: config.status.listen,
        port: transport.port,
        keys: keys.summary(),
        heapTrim: heapTrim !== null,
      },
      'agent running',
    );
  } catch (e) {
    log.error({ err: e instanceof Error ? e.message : String(e) }, 'agent start-up failed');
    await undo();
    throw e;
  }
  await (stop ?? stopped);
  log.info('shutting down');
  await undo();
}

/**
 * agentMain is an agent entry's whole body: `<entry> --config <file>` runs runAgent; a failure is
 * printed (with its hint) and the process exits at once with the error's code, whatever handle is
 * still open: systemd's Restart= must see a failed start.
 */
export function agentMain(o: Omit<RunAgentOptions, 'config'>, argv: readonly string[] = process.argv): void {
  const i = argv.indexOf('--config');
  const config = (i >= 0 ? argv[i + 1] : undefined) ?? '/etc/edgectl/agent.yaml';
  runAgent({ ...o, config }).catch((e: unknown) => {
    const err =
      e instanceof EdgeError
        ? e
        : new InternalError(e instanceof Error ? e.message : String(e), { cause: e });
    process.stderr.write(`edgectl-agent: ${err.message}${err.hint ? `\n  hint: ${err.hint}` : ''}\n`);
    process.exit(err.exitCode);
  });
}
