/**
 * The agent's configuration (/etc/edgectl/agent.yaml; example in templates/agent.yaml).
 *
 * It is validated at the boundary with a schema, then checked for cross-field invariants; every
 * problem is reported at once, each naming its field and the fix (ConfigError). Defaults come from
 * the named profile (fleet, lab, test: statecharts/timing.ts), and `timing` may override single
 * fields of it.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import {
  TIMING_PROFILES,
  validateTiming,
  type ElectionTiming,
  type TimingProfileName,
} from '../statecharts/timing.ts';
import { ConfigError } from './errors.ts';
import { K3sSettingsSchema } from './k3s/settings.ts';
import { RECEIVED_SNAPSHOT_DIR } from './k3s/paths.ts';
import { loadSiteSpec, parseSiteSpec, type SiteSpec } from './site/spec.ts';

const NODE_ID = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const nodeId = z
  .string()
  .regex(NODE_ID, 'must be lower-case letters, digits and dashes, 1-63 characters (like r1 or spot-2)');

const hostPort = z
  .string()
  .regex(/^[^\s:]+:\d{1,5}$/, 'must be host:port, like 127.0.0.1:7947')
  .refine((v) => {
    const port = Number(v.slice(v.lastIndexOf(':') + 1));
    return port >= 1 && port <= 65535;
  }, 'the port must be 1-65535');

/**
 * The k3s runtime's section (docs/k3s.md): validated here, in the config loader, so that the
 * robot's agent process never loads zod and yaml (agent/config-subprocess.ts).
 */
const k3sControlPlane = z
  .object({
    runtime: z.literal('k3s'),
    /** The robot's k3s settings (agent/k3s/settings.ts). */
    k3s: K3sSettingsSchema,
    /** The site spec the leader applies (bootstrap installs it). */
    siteSpecFile: z.string().min(1).default('/etc/edgectl/site.yaml'),
    /** The admin kubeconfig k3s server writes. */
    kubeconfig: z.string().min(1).default('/etc/rancher/k3s/k3s.yaml'),
    /** The addon templates bootstrap installs (CRDs, Multus, Whereabouts). */
    templatesDir: z.string().min(1).default('/opt/edgectl/templates'),
    /** Accept sealed snapshots from the leader (port 7948 on the node IP). */
    snapshotReceiver: z.boolean().default(true),
    receivedSnapshotDir: z.string().min(1).default(RECEIVED_SNAPSHOT_DIR),
  })
  .strict();

/** The lab runtime's section: lab/runtime/lab-control-plane.ts checks its own fields. */
const labControlPlane = z
  .object({
    runtime: z.literal('lab'),
    siteSpecFile: z.string().min(1).optional(),
    templatesDir: z.string().min(1).optional(),
  })
  .passthrough();

/** The in-memory twin (agent/control-plane/in-memory.ts): tests only. */
const memoryControlPlane = z
  .object({
    runtime: z.literal('memory'),
    siteSpecFile: z.string().min(1).optional(),
    templatesDir: z.string().min(1).optional(),
  })
  .strict();

const timingOverrides = z
  .object({
    heartbeatMs: z.number().positive(),
    learnerHeartbeatMs: z.number().positive(),
    ackIntervalMs: z.number().positive(),
    electionTimeoutMinMs: z.number().positive(),
    electionTimeoutMaxMs: z.number().positive(),
    bootElectionTimeoutMs: z.number().positive(),
    leaderLeaseMs: z.number().positive(),
    campaignRetryMinMs: z.number().positive(),
    campaignRetryMaxMs: z.number().positive(),
    fitnessBias: z.number().min(0).max(0.99),
    timerSlackMs: z.number().min(0),
    transferTimeoutMs: z.number().positive(),
    maxAppendBytes: z.number().int().positive(),
    maxEntryBytes: z.number().int().positive(),
  })
  .partial()
  .strict();

export const agentConfigSchema = z
  .object({
    site: z.object({ id: nodeId, name: z.string().optional() }).strict(),
    node: z
      .object({
        id: nodeId,
        /** Can this robot run the k3s server? Only server-capable robots can be voters. */
        serverCapable: z.boolean().default(false),
        /** Static fitness 0..1 when no battery/CPU probe is available; biases the election timeout. */
        fitness: z.number().min(0).max(1).default(0.5),
        labels: z.record(z.string(), z.string()).default({}),
      })
      .strict(),
    /** The server-capable robots that vote (1–7; 3 or 5 recommended). Every other robot is a learner. */
    voters: z.array(nodeId).min(1).max(7),
    profile: z
      .enum(Object.keys(TIMING_PROFILES) as [TimingProfileName, ...TimingProfileName[]])
      .default('fleet'),
    timing: timingOverrides.default({}),
    network: z
      .object({
        /** Interfaces for mDNS, e.g. [wlan0]. Empty: every non-loopback IPv4 interface. */
        interfaces: z.array(z.string().min(1)).default([]),
        /** UDP address the election transport binds. */
        bindAddress: z.string().default('0.0.0.0'),
        port: z.number().int().min(1).max(65535).default(7946),
        /** Advertise and browse over mDNS. Turn off where multicast is filtered; seeds still work. */
        mdns: z.boolean().default(true),
        /** Static peers: the fallback where multicast is filtered. */
        seeds: z
          .array(
            z
              .object({
                node: nodeId,
                host: z.string().min(1),
                port: z.number().int().min(1).max(65535).default(7946),
              })
              .strict(),
          )
          .default([]),
      })
      .strict()
      .default({ interfaces: [], bindAddress: '0.0.0.0', port: 7946, mdns: true, seeds: [] }),
    /** Where term, vote and site log live (written atomically, fsync'd). */
    stateDir: z.string().min(1).default('/var/lib/edgectl'),
    /** The site key (≥ 32 bytes, mode 0600) that authenticates every datagram. */
    siteKeyFile: z.string().min(1).default('/etc/edgectl/site.key'),
    status: z
      .object({ listen: hostPort.default('127.0.0.1:7947') })
      .strict()
      .default({ listen: '127.0.0.1:7947' }),
    /** Which control plane the agent runs; no default, so a robot never runs a test twin by mistake. */
    controlPlane: z.discriminatedUnion('runtime', [k3sControlPlane, labControlPlane, memoryControlPlane], {
      error: (issue) =>
        issue.input === undefined
          ? 'required: set controlPlane.runtime to k3s on robots (edgectl bootstrap site writes it; docs/agent.md)'
          : 'runtime must be k3s (robots), lab (edgectl lab) or memory (tests)',
    }),
    membership: z
      .object({
        /** A peer unheard this long is suspect (it may be in a Wi-Fi dead spot). */
        suspectAfterMs: z.number().positive().default(3_000),
        /** A peer unheard this long is dead: the leader acts on it (cleanup after a grace period). */
        deadAfterMs: z.number().positive().default(10_000),
        /**
         * The grace period: a dead robot unheard this long is lost. The leader taints its Node
         * out-of-service so its pods move, and frees its IPs. Bootstrap sets it from the site
         * spec's nodeLoss.graceSeconds.
         */
        lostAfterMs: z.number().positive().default(60_000),
      })
      .strict()
      .default({ suspectAfterMs: 3_000, deadAfterMs: 10_000, lostAfterMs: 60_000 }),
    /** Control-plane snapshots by the leader, shipped to the other voters (the RPO is the interval). */
    snapshots: z
      .object({ intervalMs: z.number().int().min(1000).default(300_000) })
      .strict()
      .default({ intervalMs: 300_000 }),
    log: z
      .object({ level: z.enum(['trace', 'debug', 'info', 'warn', 'error']).default('info') })
      .strict()
      .default({ level: 'info' }),
  })
  .strict();

export type AgentConfigInput = z.input<typeof agentConfigSchema>;
export type AgentConfigParsed = z.output<typeof agentConfigSchema>;

/**
 * AgentConfig is the validated config with the effective timing resolved from profile + overrides,
 * and the site spec the leader applies, read from controlPlane.siteSpecFile (a site of just its
 * namespace and defaults when the runtime names none).
 */
export interface AgentConfig extends AgentConfigParsed {
  readonly effectiveTiming: ElectionTiming;
  readonly siteSpec: SiteSpec;
}

/** formatZodPath renders `network.seeds[0].host`. */
function formatPath(path: readonly PropertyKey[]): string {
  return (
    path.reduce<string>(
      (acc, p) => (typeof p === 'number' ? `${acc}[${p}]` : acc ? `${acc}.${String(p)}` : String(p)),
      '',
    ) || '(top level)'
  );
}

/**
 * validateAgentConfig checks a parsed YAML/JSON value and returns the config, or throws a
 * ConfigError listing every problem. `source` names the file in messages; the site spec file the
 * control plane names is read with `readSiteSpec`.
 */
export function validateAgentConfig(
  raw: unknown,
  source = 'agent config',
  readSiteSpec: (path: string) => SiteSpec = loadSiteSpec,
): AgentConfig {
  const parsed = agentConfigSchema.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => {
      const where = formatPath(i.path);
      if (i.code === 'unrecognized_keys')
        return `${where}: unknown field(s) ${i.keys.join(', ')}: remove or fix the spelling`;
      return `${where}: ${i.message}`;
    });
    throw new ConfigError(source, problems);
  }
  const c = parsed.data;
  const problems: string[] = [];
  if (new Set(c.voters).size !== c.voters.length)
    problems.push('voters: a robot is listed twice: list each voter once');
  if (c.voters.includes(c.node.id) && !c.node.serverCapable) {
    problems.push(
      `node.serverCapable: ${c.node.id} is a voter, so it must be server-capable: set node.serverCapable: true or remove it from voters`,
    );
  }
  const effectiveTiming: ElectionTiming = { ...TIMING_PROFILES[c.profile], ...c.timing } as ElectionTiming;
  for (const p of validateTiming(effectiveTiming))
    problems.push(`timing (profile ${c.profile} + overrides): ${p}`);
  if (c.membership.deadAfterMs <= c.membership.suspectAfterMs) {
    problems.push(
      `membership.deadAfterMs (${c.membership.deadAfterMs}) must be greater than membership.suspectAfterMs (${c.membership.suspectAfterMs})`,
    );
  }
  if (c.membership.lostAfterMs < c.membership.deadAfterMs) {
    problems.push(
      `membership.lostAfterMs (${c.membership.lostAfterMs}) must be at least membership.deadAfterMs (${c.membership.deadAfterMs}): a robot is lost only once it is dead`,
    );
  }
  if (c.membership.suspectAfterMs < 3 * effectiveTiming.heartbeatMs) {
    problems.push(
      `membership.suspectAfterMs (${c.membership.suspectAfterMs}) must be at least 3 heartbeats (${3 * effectiveTiming.heartbeatMs} ms): one lost datagram must not make a robot suspect`,
    );
  }
  const seen = new Set<string>();
  for (const s of c.network.seeds) {
    if (s.node === c.node.id) problems.push(`network.seeds: ${s.node} is this robot: list only other robots`);
    if (seen.has(s.node)) problems.push(`network.seeds: ${s.node} is listed twice`);
    seen.add(s.node);
  }
  if (!c.network.mdns && c.network.seeds.length === 0 && c.voters.length > 1) {
    problems.push(
      'network: with mdns off, list the other robots in network.seeds, or this robot can find no peers',
    );
  }
  let siteSpec: SiteSpec | undefined;
  const specFile = 'siteSpecFile' in c.controlPlane ? c.controlPlane.siteSpecFile : undefined;
  try {
    siteSpec = typeof specFile === 'string' ? readSiteSpec(specFile) : parseSiteSpec({ id: c.site.id });
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    problems.push(...e.problems.map((p) => `controlPlane.siteSpecFile (${specFile}): ${p}`));
  }
  if (problems.length || !siteSpec) throw new ConfigError(source, problems);
  return { ...c, effectiveTiming, siteSpec };
}

/** loadAgentConfig reads and validates a YAML file. */
export function loadAgentConfig(path: string): AgentConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError(
      path,
      [`cannot read the file: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`],
      {
        hint: `create it from templates/agent.yaml, or pass --config <path>`,
      },
    );
  }
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (e) {
    throw new ConfigError(path, [`not valid YAML: ${(e as Error).message}`]);
  }
  return validateAgentConfig(raw, path);
}
