/**
 * The inventory (site.yaml): the robots of one site, how to reach them over SSH, and what to
 * install on them. `edgectl bootstrap site -f site.yaml` reads it; templates/inventory/
 * site.example.yaml is a commented example and docs/bootstrap.md the reference.
 *
 * Validation has three layers, and every problem of all of them is reported at once (ConfigError),
 * each naming the field and the fix:
 * 1. the zod schema (shape, defaults), with the `site` part checked by parseSiteSpec;
 * 2. cross-field rules (unique names and addresses, voters, discovery), and each robot's rendered
 *    agent config checked by validateAgentConfig, so an inventory never installs a config the
 *    agent would refuse;
 * 3. checkInventoryFiles (the shell's part: key files, bundle files), run before any robot is
 *    touched.
 * Layers 1 and 2 are pure (parseInventory).
 */
import { z } from 'zod';
import { validateAgentConfig, type AgentConfigInput } from '../../agent/config.ts';
import { ConfigError } from '../../agent/errors.ts';
import { parseSiteSpec, type SiteSpec } from '../../agent/site/spec.ts';
import { TIMING_PROFILES, type TimingProfileName } from '../../statecharts/timing.ts';

/** Voters are server-capable robots; more than 7 makes every election slower and gains nothing. */
export const MAX_VOTERS = 7;

const robotName = z
  .string()
  .regex(
    /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/,
    'must be lower-case letters, digits and dashes, 1-63 characters (like spot-1)',
  );

/** An IPv4 address or a DNS name; SSH connects to it, and the agents use it as a seed address. */
const address = z
  .string()
  .regex(
    /^([0-9]{1,3}(\.[0-9]{1,3}){3}|[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?)$/,
    'must be an IPv4 address or a host name, like 10.20.0.11 or spot-1.local',
  );

/** OpenSSH's fingerprint form (ssh-keygen -lf): SHA256 then 43 unpadded base64 characters. */
export const HOST_KEY_FINGERPRINT = /^SHA256:[A-Za-z0-9+/]{43}$/;

const sshSchema = z
  .object({
    user: z.string().regex(/^[a-z_][a-z0-9_-]{0,31}\$?$/, 'must be a Linux user name, like edgectl'),
    port: z.number().int().min(1).max(65535).default(22),
    /** A private key file (OpenSSH format; ed25519 recommended). Relative to the inventory file. */
    keyFile: z.string().min(1).optional(),
    /** Use the ssh-agent at SSH_AUTH_SOCK instead of a key file. */
    agent: z.boolean().default(false),
    /**
     * The robot's pinned host key fingerprint (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub).
     * Without it, the site's known_hosts decides, and only --accept-new-host-keys adds to it.
     */
    hostKey: z
      .string()
      .regex(HOST_KEY_FINGERPRINT, 'must be an OpenSSH SHA256 fingerprint, like SHA256:abc...(43 chars)')
      .optional(),
  })
  .strict();

const labelKey = z
  .string()
  .regex(
    /^([a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?\/)?[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$/,
    'must be a Kubernetes label key, like robot.edgectl.io/kind',
  );
const labelValue = z
  .string()
  .regex(
    /^([A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?)?$/,
    'must be a Kubernetes label value: 0-63 letters, digits, dashes, dots, underscores',
  );

const robotSchema = z
  .object({
    name: robotName,
    address,
    ssh: sshSchema,
    /**
     * How to become root: none (ssh.user is root), nopasswd (sudo -n), or password (sudo -S, the
     * password read once per run from --sudo-password-file or a prompt; never in this file).
     */
    sudo: z.enum(['none', 'nopasswd', 'password']).default('nopasswd'),
    /** The Wi-Fi NIC: mDNS runs on it. */
    wifiInterface: z
      .string()
      .regex(/^[^\s/:]{1,15}$/, 'must be a network interface name: 1-15 characters, no spaces, / or :')
      .default('wlan0'),
    /** Can this robot run the k3s server (CPU, storage, battery)? Only these can vote. */
    serverCapable: z.boolean().default(false),
    /** Static fitness 0..1 when no battery probe runs; fitter robots tend to win elections. */
    fitness: z.number().min(0).max(1).optional(),
    labels: z.record(labelKey, labelValue).default({}),
  })
  .strict();

const bundleSchema = z
  .object({
    /**
     * The bundled agent's entry file (npm run build:agent), its edgectl-agent-*.mjs chunks beside
     * it. Default: edgectl's own agent/bundle/edgectl-agent.mjs.
     */
    agent: z.string().min(1).optional(),
    /** A Linux Node 24 binary for the robots' architecture. Default: edgectl's own pinned runtime. */
    node: z.string().min(1).optional(),
    /** The k3s binary (offline install). Without it, k3s must already be on the robots. */
    k3s: z.string().min(1).optional(),
    /** k3s air-gap images (k3s-airgap-images-<arch>.tar.zst or .tar). */
    airgapImages: z.string().min(1).optional(),
  })
  .strict();

const discoverySchema = z
  .object({
    /** Advertise and browse over mDNS on each robot's wifiInterface. */
    mdns: z.boolean().default(true),
    /**
     * Static seed peers, the fallback where the Wi-Fi filters multicast: `voters` (every robot seeds
     * the voters), `all` (every robot), `none`, or a list of robot names.
     */
    seeds: z.union([z.enum(['voters', 'all', 'none']), z.array(robotName)]).default('voters'),
    /** UDP port of the election transport. */
    port: z.number().int().min(1).max(65535).default(7946),
  })
  .strict();

const installSchema = z
  .object({
    /**
     * Where on the robot edgectl's own files go: `/` on robots. `{robot}` is replaced by the robot's
     * name, so the network-namespace lab can give each robot its own tree on one machine.
     */
    root: z
      .string()
      .regex(/^\/[^\s]*$/, 'must be an absolute path without spaces, like / or /srv/lab/{robot}')
      .default('/'),
    /** systemd installs and starts edgectl-agent.service; none leaves starting it to the caller (lab). */
    service: z.enum(['systemd', 'none']).default('systemd'),
  })
  .strict();

/** A section left with only comments in it is YAML null: read it as left out. */
const section = <T extends z.ZodType>(schema: T) => z.preprocess((v) => (v === null ? undefined : v), schema);

const profileNames = Object.keys(TIMING_PROFILES) as [TimingProfileName, ...TimingProfileName[]];

export const inventorySchema = z
  .object({
    /** The site spec (agent/site/spec.ts, docs/site.md): id, name, namespace, quota, networks, ... */
    site: z.unknown(),
    robots: z.array(robotSchema).min(1, 'list at least one robot'),
    /** The voting robots (1-7, server-capable). Default: every server-capable robot. */
    voters: z.array(robotName).optional(),
    /** The timing profile: fleet (Wi-Fi robots), lab, test (statecharts/timing.ts). */
    profile: z.enum(profileNames).default('fleet'),
    /** Override single timing fields of the profile; the agents check them (agent/config.ts). */
    timing: section(z.record(z.string(), z.number()).default({})),
    discovery: section(discoverySchema.prefault({})),
    controlPlane: section(
      z
        .object({
          runtime: z.enum(['k3s', 'lab']).default('k3s'),
          /** lab only: the site identity `edgectl lab up` made (CA, serving certificate, tokens). */
          identityDir: z.string().min(1).optional(),
        })
        .strict()
        .prefault({}),
    ),
    bundle: section(bundleSchema.prefault({})),
    install: section(installSchema.prefault({})),
    log: section(
      z
        .object({ level: z.enum(['trace', 'debug', 'info', 'warn', 'error']).default('info') })
        .strict()
        .prefault({}),
    ),
  })
  .strict();

type InventoryParsed = z.output<typeof inventorySchema>;
export type InventoryInput = z.input<typeof inventorySchema>;
export type Robot = z.output<typeof robotSchema>;

/** Inventory is a validated inventory: the site spec parsed, voters resolved. */
export interface Inventory extends Omit<InventoryParsed, 'site' | 'voters'> {
  readonly site: SiteSpec;
  readonly voters: readonly string[];
}

export function formatPath(path: readonly PropertyKey[]): string {
  return (
    path.reduce<string>(
      (acc, p) => (typeof p === 'number' ? `${acc}[${p}]` : acc ? `${acc}.${String(p)}` : String(p)),
      '',
    ) || '(top level)'
  );
}

/**
 * parseInventory checks a parsed YAML/JSON value and returns the inventory, or throws one
 * ConfigError listing every problem. Pure: files are checked by checkInventoryFiles.
 */
export function parseInventory(raw: unknown, source = 'inventory'): Inventory {
  const problems: string[] = [];
  const parsed = inventorySchema.safeParse(raw);
  let site: SiteSpec | null = null;
  const siteRaw = raw !== null && typeof raw === 'object' ? (raw as { site?: unknown }).site : undefined;
  if (siteRaw === undefined) {
    problems.push('site: missing: add the site spec, at least `site: { id: <site-id> }`');
  } else {
    try {
      site = parseSiteSpec(siteRaw, source, { pathPrefix: 'site' });
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      problems.push(...e.problems);
    }
  }
  if (!parsed.success) {
    for (const i of parsed.error.issues) {
      const where = formatPath(i.path);
      if (i.code === 'unrecognized_keys')
        problems.push(`${where}: unknown field(s) ${i.keys.join(', ')}: remove or fix the spelling`);
      else if (i.code === 'invalid_type' && /received undefined/.test(i.message))
        problems.push(`${where}: missing: add it (${i.message})`);
      else problems.push(`${where}: ${i.message}`);
    }
    throw new ConfigError(source, problems);
  }
  const inv = parsed.data;
  problems.push(...crossFieldProblems(inv));
  const voters = inv.voters ?? inv.robots.filter((r) => r.serverCapable).map((r) => r.name);
  if (problems.length === 0 && site) {
    // Render every robot's agent config and let the agent's own validator judge it.
    const candidate: Inventory = { ...inv, site, voters };
    inv.robots.forEach((r, i) => {
      try {
        // The robot's site spec file is the inventory's site, which bootstrap installs there.
        validateAgentConfig(renderAgentConfig(candidate, r.name), `robots[${i}] agent config`, () => site);
      } catch (e) {
        if (!(e instanceof ConfigError)) throw e;
        problems.push(...e.problems.map((p) => `robots[${i}] (${r.name}) agent config: ${p}`));
      }
    });
  }
  if (problems.length || !site) throw new ConfigError(source, problems);
  return { ...inv, site, voters };
}

function crossFieldProblems(inv: InventoryParsed): string[] {
  const problems: string[] = [];
  if (inv.controlPlane.runtime === 'lab' && !inv.controlPlane.identityDir)
    problems.push(
      'controlPlane.identityDir: the lab runtime needs the lab site identity: set it to <lab dir>/identity (edgectl lab up makes it)',
    );
  const byName = new Map<string, number>();
  const byAddress = new Map<string, number>();
  inv.robots.forEach((r, i) => {
    const dupName = byName.get(r.name);
    if (dupName !== undefined)
      problems.push(
        `robots[${i}].name: ${r.name} is also robots[${dupName}].name: give every robot its own name`,
      );
    else byName.set(r.name, i);
    const key = `${r.address}:${r.ssh.port}`;
    const dupAddr = byAddress.get(key);
    if (dupAddr !== undefined)
      problems.push(
        `robots[${i}].address: ${key} is also robots[${dupAddr}]'s address: give every robot its own address (or SSH port)`,
      );
    else byAddress.set(key, i);
    if (r.ssh.keyFile && r.ssh.agent)
      problems.push(`robots[${i}].ssh: both keyFile and agent are set: use one of them`);
    if (!r.ssh.keyFile && !r.ssh.agent)
      problems.push(
        `robots[${i}].ssh: no credentials: set keyFile (a private key file) or agent: true (ssh-agent)`,
      );
    if (r.ssh.user === 'root' && r.sudo !== 'none')
      problems.push(`robots[${i}].sudo: ssh.user is root, so sudo is not needed: set sudo: none`);
    if (r.ssh.user !== 'root' && r.sudo === 'none')
      problems.push(
        `robots[${i}].sudo: ${r.ssh.user} is not root and sudo is none: set sudo: nopasswd or password, or ssh.user: root`,
      );
  });
  const capable = inv.robots.filter((r) => r.serverCapable);
  if (capable.length === 0)
    problems.push(
      'robots: no robot is server-capable: set serverCapable: true on the robots that can run the k3s server',
    );
  if (inv.voters) {
    const seen = new Set<string>();
    inv.voters.forEach((v, i) => {
      const at = byName.get(v);
      if (seen.has(v)) problems.push(`voters[${i}]: ${v} is listed twice: list each voter once`);
      seen.add(v);
      if (at === undefined)
        problems.push(`voters[${i}]: ${v} is not a robot of this inventory: add it to robots or remove it`);
      else if (!inv.robots[at]!.serverCapable)
        problems.push(
          `voters[${i}]: ${v} is not server-capable: set robots[${at}].serverCapable: true or remove it from voters`,
        );
    });
    if (inv.voters.length === 0) problems.push('voters: empty: list 1 to 7 server-capable robots');
    if (inv.voters.length > MAX_VOTERS)
      problems.push(
        `voters: ${inv.voters.length} voters, at most ${MAX_VOTERS}: list 3 or 5 robots; the others follow as learners`,
      );
  } else if (capable.length > MAX_VOTERS) {
    problems.push(
      `voters: ${capable.length} robots are server-capable but at most ${MAX_VOTERS} can vote: list the voters (3 or 5 recommended)`,
    );
  }
  const seeds = inv.discovery.seeds;
  if (Array.isArray(seeds))
    seeds.forEach((s, i) => {
      if (!byName.has(s))
        problems.push(`discovery.seeds[${i}]: ${s} is not a robot of this inventory: add it or remove it`);
    });
  if (!inv.discovery.mdns && seeds === 'none' && inv.robots.length > 1)
    problems.push(
      'discovery: mdns is off and seeds is none, so no robot can find another: turn mdns on or set seeds: voters',
    );
  return problems;
}

/** robotByName returns a robot of the inventory, or throws the UsageError-like ConfigError. */
export function robotByName(inv: Inventory, name: string): Robot {
  const r = inv.robots.find((x) => x.name === name);
  if (!r)
    throw new ConfigError('inventory', [
      `robots: no robot named ${name}: use one of ${inv.robots.map((x) => x.name).join(', ')}`,
    ]);
  return r;
}

/** seedRobots lists the robots `robotName` seeds, by the inventory's discovery.seeds rule. */
export function seedRobots(inv: Inventory, robot: string): Robot[] {
  const s = inv.discovery.seeds;
  const names =
    s === 'none'
      ? []
      : s === 'all'
        ? inv.robots.map((r) => r.name)
        : s === 'voters'
          ? [...inv.voters]
          : [...s];
  return inv.robots.filter((r) => r.name !== robot && names.includes(r.name));
}

/** installPath maps an absolute robot path under install.root (with `{robot}` replaced). */
export function installPath(inv: Inventory, robot: string, path: string): string {
  const root = inv.install.root.replaceAll('{robot}', robot).replace(/\/+$/, '');
  return root === '' ? path : `${root}${path}`;
}

/**
 * renderAgentConfig is the /etc/edgectl/agent.yaml of one robot, as the agent's config input
 * (agent/config.ts). Pure; parseInventory checks every robot's with validateAgentConfig.
 */
export function renderAgentConfig(inv: Inventory, robot: string): AgentConfigInput {
  const r = robotByName(inv, robot);
  const node: AgentConfigInput['node'] = { id: r.name, serverCapable: r.serverCapable, labels: r.labels };
  if (r.fitness !== undefined) node.fitness = r.fitness;
  const site: AgentConfigInput['site'] = { id: inv.site.id };
  if (inv.site.name !== undefined) site.name = inv.site.name;
  return {
    site,
    node,
    voters: [...inv.voters],
    profile: inv.profile,
    timing: inv.timing,
    network: {
      interfaces: [r.wifiInterface],
      bindAddress: '0.0.0.0',
      port: inv.discovery.port,
      mdns: inv.discovery.mdns,
      seeds: seedRobots(inv, robot).map((s) => ({ node: s.name, host: s.address, port: inv.discovery.port })),
    },
    stateDir: installPath(inv, robot, '/var/lib/edgectl'),
    siteKeyFile: installPath(inv, robot, '/etc/edgectl/site.key'),
    // In the lab, the host polls every robot's status over the lab bridge.
    status: { listen: inv.controlPlane.runtime === 'lab' ? `${r.address}:7947` : '127.0.0.1:7947' },
    controlPlane: renderControlPlane(inv, r),
    // The site's grace period for a lost robot (site spec nodeLoss), enforced by the leader's agent.
    membership: { lostAfterMs: inv.site.nodeLoss.graceSeconds * 1000 },
    log: { level: inv.log.level },
  };
}

/** The robot paths of the site spec and of the addon templates (CRDs, Multus, Whereabouts). */
export const SITE_SPEC_PATH = '/etc/edgectl/site.yaml';
export const TEMPLATES_DIR = '/opt/edgectl/templates';

/** renderControlPlane is the runtime section of a robot's agent config. */
function renderControlPlane(inv: Inventory, r: Robot): AgentConfigInput['controlPlane'] {
  const common = {
    siteSpecFile: installPath(inv, r.name, SITE_SPEC_PATH),
    templatesDir: installPath(inv, r.name, TEMPLATES_DIR),
  };
  if (inv.controlPlane.runtime === 'lab')
    return { runtime: 'lab', identityDir: inv.controlPlane.identityDir, address: r.address, ...common };
  return {
    runtime: 'k3s',
    ...common,
    k3s: {
      nodeIp: r.address,
      flannelIface: r.wifiInterface,
      serverCapable: r.serverCapable,
      labels: { ...r.labels }, // a copy: a shared object would print as a YAML alias
    },
  };
}
