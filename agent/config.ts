/**
 * The agent's configuration (/etc/edgectl/agent.yaml; example in templates/agent.yaml).
 *
 * It is validated at the boundary with a schema, then checked for cross-field invariants; every
 * problem is reported at once, each naming its field and the fix (ConfigError). Defaults come from
 * the named profile (fleet, lab, test: statecharts/timing.ts), and `timing` may override single
 * fields of it.
 */
import { readYamlFile } from './input-file.ts';
import { stateDirProblem } from './kernel-paths.ts';
import { z } from 'zod';
import {
  TIMING_PROFILES,
  validateTiming,
  type ElectionTiming,
  type TimingProfileName,
} from '../statecharts/timing.ts';
import { ConfigError } from './errors.ts';
import { K3sControlPlaneSchema } from './k3s/settings.ts';
import { interfaceNameProblem } from './interface-name.ts';

const NODE_ID = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const nodeId = z
  .string()
  .regex(NODE_ID, 'must be lower-case letters, digits and dashes, 1-63 characters (like r1 or spot-2)');

const hostPort = z
  .string()
  .regex(/^[^\s:]+:\d{1,5}$/, 'must be host:port, like 127.0.0.1:7947')
  .refine((s) => {
    const port = Number(s.slice(s.lastIndexOf(':') + 1));
    return port >= 1 && port <= 65535;
  }, 'the port must be 1 to 65535, like 127.0.0.1:7947');

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
    /**
     * Witnesses: voters that never lead or run k3s (a small box, or a robot that is not
     * server-capable), so that a site of two server-capable robots survives losing either one.
     * They count in the quorum like any voter.
     */
    witnesses: z.array(nodeId).max(6).default([]),
    /**
     * The robots of the site that do not vote (its workers), as bootstrap installed the site. The
     * leader makes these its learners, and never a robot only an advertisement names. Once the site
     * log commits a membership (edgectl robot add|remove), that one counts instead.
     */
    workers: z.array(nodeId).max(1000).default([]),
    profile: z
      .enum(Object.keys(TIMING_PROFILES) as [TimingProfileName, ...TimingProfileName[]])
      .default('fleet'),
    timing: timingOverrides.default({}),
    network: z
      .object({
        /** Interfaces for mDNS, e.g. [wlan0]. Empty: every non-loopback IPv4 interface. */
        interfaces: z
          .array(
            z.string().superRefine((s, ctx) => {
              const p = interfaceNameProblem(s);
              if (p) ctx.addIssue({ code: 'custom', message: p });
            }),
          )
          .default([]),
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
    /** The robot's own keys (agent/site-key.ts, mode 0600), which bootstrap renders for it. */
    siteKeyFile: z.string().min(1).default('/etc/edgectl/site-keys.json'),
    status: z
      .object({ listen: hostPort.default('127.0.0.1:7947') })
      .strict()
      .default({ listen: '127.0.0.1:7947' }),
    /**
     * Which control plane this robot runs, required: k3s on robots, none on a witness, lab in the
     * netns lab, memory in tests. Each agent entry runs only the runtimes it registers (agent/run.ts).
     */
    controlPlane: z
      .object(
        {
          runtime: z.enum(['memory', 'lab', 'k3s', 'none'], {
            error: 'must be k3s (a robot), none (a witness), lab or memory',
          }),
        },
        { error: 'required: set controlPlane.runtime (k3s on a robot, none on a witness)' },
      )
      .passthrough(),
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

/** AgentConfig is the validated config with the effective timing resolved from profile + overrides. */
export interface AgentConfig extends AgentConfigParsed {
  readonly effectiveTiming: ElectionTiming;
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
 * ConfigError listing every problem. `source` names the file in messages.
 */
export function validateAgentConfig(raw: unknown, source = 'agent config'): AgentConfig {
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
  if (c.controlPlane.runtime === 'k3s') {
    // The k3s runtime's own section, with its defaults, so that the runtime loads no zod.
    const k3s = K3sControlPlaneSchema.safeParse(c.controlPlane);
    if (k3s.success) c.controlPlane = k3s.data;
    else
      for (const i of k3s.error.issues)
        problems.push(
          i.code === 'unrecognized_keys'
            ? `controlPlane: unknown field(s) ${i.keys.join(', ')}: remove or fix the spelling`
            : `controlPlane.${formatPath(i.path)}: ${i.message}`,
        );
  }
  const stateDir = stateDirProblem(c.stateDir);
  if (stateDir) problems.push(`stateDir: ${stateDir}`);
  if (new Set(c.voters).size !== c.voters.length)
    problems.push('voters: a robot is listed twice: list each voter once');
  if (new Set(c.witnesses).size !== c.witnesses.length)
    problems.push('witnesses: a witness is listed twice: list each witness once');
  for (const w of c.witnesses)
    if (c.voters.includes(w))
      problems.push(
        `witnesses: ${w} is also in voters: a robot is a voter (may lead) or a witness (never leads), not both`,
      );
  if (new Set(c.workers).size !== c.workers.length)
    problems.push('workers: a robot is listed twice: list each worker once');
  for (const w of c.workers)
    if (c.voters.includes(w) || c.witnesses.includes(w))
      problems.push(`workers: ${w} votes (voters or witnesses): a worker is a robot that does not vote`);
  if (c.voters.length + c.witnesses.length > 7)
    problems.push(
      `voters + witnesses: ${c.voters.length + c.witnesses.length} is more than 7: every vote is a round trip the leader waits for; use 3 or 5`,
    );
  const isWitness = c.witnesses.includes(c.node.id);
  if (isWitness && c.controlPlane.runtime !== 'none')
    problems.push(
      `controlPlane.runtime: ${c.node.id} is a witness, which runs no control plane: set controlPlane.runtime: none`,
    );
  if (!isWitness && c.controlPlane.runtime === 'none')
    problems.push(
      `controlPlane.runtime: none is for witnesses only: add ${c.node.id} to witnesses, or pick memory, lab or k3s`,
    );
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
  if (problems.length) throw new ConfigError(source, problems);
  return { ...c, effectiveTiming };
}

/** loadAgentConfig reads and validates a YAML file. */
export function loadAgentConfig(path: string): AgentConfig {
  const raw = readYamlFile(path, {
    missingHint: 'create it from templates/agent.yaml, or pass --config <path>',
  });
  return validateAgentConfig(raw, path);
}

/** loadWitnessConfig is loadAgentConfig for `edgectl witness run`: the node must be a witness. */
export function loadWitnessConfig(path: string): AgentConfig {
  const c = loadAgentConfig(path);
  if (!c.witnesses.includes(c.node.id))
    throw new ConfigError(
      path,
      [`witnesses: ${c.node.id} is not listed, so it would run as a voter or learner`],
      {
        hint: `add ${c.node.id} to witnesses (and set controlPlane.runtime: none), or run it with edgectl agent run`,
      },
    );
  return c;
}
