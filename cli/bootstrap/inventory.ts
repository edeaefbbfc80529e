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
import { interfaceNameProblem } from '../../agent/interface-name.ts';
import { remapIndexes, salvage, salvageEach } from '../../agent/partial-parse.ts';
import { cidrContains, parseCidr, parseIpv4, type Cidr } from '../../agent/site/ipv4.ts';
import { parseSiteSpec, salvageSiteSpec, type SiteSpec } from '../../agent/site/spec.ts';
import { K3S_RESERVED, poolContains } from '../../agent/site/validate.ts';
import { K3sSettingsSchema } from '../../agent/k3s/settings.ts';
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
      .superRefine((s, ctx) => {
        const p = interfaceNameProblem(s);
        if (p) ctx.addIssue({ code: 'custom', message: p });
      })
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
    /**
     * The SHA-256 the `node` binary must have; bootstrap refuses any other. edgectl's own runtime
     * is always checked against its pin (cli/bootstrap/node-runtime.ts).
     */
    nodeSha256: z
      .string()
      .regex(/^[0-9a-f]{64}$/, 'must be a SHA-256 in hex: 64 characters 0-9 a-f (sha256sum <file>)')
      .optional(),
    /** The k3s binary (offline install). Without it, k3s must already be on the robots. */
    k3s: z.string().min(1).optional(),
    /** k3s air-gap images (k3s-airgap-images-<arch>.tar.zst or .tar). */
    airgapImages: z.string().min(1).optional(),
    /**
     * The etcd that server-capable robots run as k3s's datastore and replica (docs/k3s.md
     * "Replication"), for the robots' architecture: `etcd` (Debian's etcd-server package has it at
     * /usr/bin/etcd), `etcdctl` (etcd-client, /usr/bin/etcdctl) and `etcdRevisionBump`
     * (tools/etcd-revision-bump). All three or none; without them, they must already be in
     * /usr/local/bin on the server-capable robots.
     */
    etcd: z.string().min(1).optional(),
    etcdctl: z.string().min(1).optional(),
    etcdRevisionBump: z.string().min(1).optional(),
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
    /**
     * Witnesses: robots (or small boxes: a router, a Raspberry Pi) that vote but never lead and run
     * no k3s. A site with two server-capable robots needs one to survive losing either.
     */
    witnesses: z.array(robotName).default([]),
    /** Accept a site that cannot elect a new leader after losing one voter (two voters, no witness). */
    allowNoFailover: z.boolean().default(false),
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
/**
 * A robot of the inventory. `ip` is the IPv4 address its `address` resolved to when the plan was
 * made (loadInventoryResolved, inventory-files.ts): what its agent's config and k3s carry.
 */
export type Robot = z.output<typeof robotSchema> & { readonly ip?: string };

/** robotIp: the robot's IPv4 address (resolved from a host name, or the address itself). */
export function robotIp(r: Robot): string {
  return r.ip ?? r.address;
}

/** Inventory is a validated inventory: the site spec parsed, voters resolved. */
export interface Inventory extends Omit<InventoryParsed, 'site' | 'voters' | 'robots'> {
  readonly robots: Robot[];
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
  const r = checkInventory(raw);
  if (!r.inventory) throw new ConfigError(source, r.problems);
  return r.inventory;
}

/**
 * The robots (and bundle) of an inventory that failed validation, as far as they parsed: enough
 * for the file checks to run too. robotIndex[k] is robots[k]'s index in the file.
 */
export interface PartialInventory {
  readonly robots: Robot[];
  readonly robotIndex: readonly number[];
  readonly bundle: Inventory['bundle'];
}

/**
 * checkInventory runs every layer of the pure checks and returns every problem. A schema error
 * does not stop the later layers: they run on what parsed (agent/partial-parse.ts), so one run
 * shows the unknown field, the duplicate name and the bad CIDR together. Pure.
 */
export function checkInventory(raw: unknown): {
  inventory: Inventory | null;
  partial: PartialInventory | null;
  problems: string[];
} {
  const problems: string[] = [];
  const parsed = inventorySchema.safeParse(raw);
  let site: SiteSpec | null = null;
  const siteRaw = raw !== null && typeof raw === 'object' ? (raw as { site?: unknown }).site : undefined;
  if (siteRaw === undefined) {
    problems.push('site: missing: add the site spec, at least `site: { id: <site-id> }`');
  } else {
    try {
      // The robots' NICs and addresses are their management side, which site networks stay off.
      const robots = parsed.success ? parsed.data.robots : [];
      site = parseSiteSpec(siteRaw, 'inventory', {
        pathPrefix: 'site',
        // Robots' own addresses in a pool are reported per robot (addressProblems), once.
        management: { interfaces: robots.map((r) => r.wifiInterface), addresses: [] },
      });
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      problems.push(...e.problems);
    }
  }
  // The site as far as it parsed, for the checks that need it (robot addresses, agent configs).
  const checkSite = site ?? (siteRaw === undefined ? null : (salvageSiteSpec(siteRaw)?.spec ?? null));
  if (!parsed.success) {
    for (const i of parsed.error.issues) {
      const where = formatPath(i.path);
      if (i.code === 'unrecognized_keys')
        problems.push(`${where}: unknown field(s) ${i.keys.join(', ')}: remove or fix the spelling`);
      else if (i.code === 'invalid_type' && /received undefined/.test(i.message))
        problems.push(`${where}: missing: add it (${i.message})`);
      else problems.push(`${where}: ${i.message}`);
    }
    // Run the cross-field rules on what parsed: every robot that does on its own, and the rest
    // of the document without the fields the schema refused.
    const robots = salvageEach(robotSchema, (raw as { robots?: unknown } | null)?.robots);
    const rest =
      robots.items.length > 0 && raw !== null && typeof raw === 'object'
        ? salvage(inventorySchema, { ...raw, robots: robots.items })
        : null;
    if (rest) {
      const complete = robots.items.length === (raw as { robots: unknown[] }).robots.length;
      problems.push(...remapIndexes(crossFieldProblems(rest, complete), 'robots', robots.origIndex));
    }
    problems.push(...remapIndexes(addressProblems(robots.items, checkSite), 'robots', robots.origIndex));
    return {
      inventory: null,
      partial: robots.items.length
        ? { robots: robots.items, robotIndex: robots.origIndex, bundle: rest?.bundle ?? {} }
        : null,
      problems: dedupe(problems),
    };
  }
  const inv = parsed.data;
  problems.push(...crossFieldProblems(inv, true));
  problems.push(...addressProblems(inv.robots, checkSite));
  const voters =
    inv.voters ??
    inv.robots.filter((r) => r.serverCapable && !inv.witnesses.includes(r.name)).map((r) => r.name);
  if (checkSite) {
    // Render every robot's agent config and let the agent's own validator judge it. Its voter,
    // seed and discovery rules repeat the inventory's own: once those have spoken, only what the
    // inventory does not check itself (the timing) is added, so nothing is reported twice.
    const earlier = problems.length > 0;
    const candidate: Inventory = { ...inv, site: checkSite, voters };
    // A host name not resolved yet renders with a placeholder address, as k3sSettingsProblems does,
    // which also reports the k3s section's own problems (so they are left out here).
    const placeheld: Inventory = {
      ...candidate,
      robots: candidate.robots.map((r) =>
        r.ip || !isHostName(r.address) ? r : { ...r, ip: UNRESOLVED_PLACEHOLDER },
      ),
    };
    inv.robots.forEach((r, i) => {
      try {
        validateAgentConfig(renderAgentConfig(placeheld, r.name), `robots[${i}] agent config`);
      } catch (e) {
        if (!(e instanceof ConfigError)) throw e;
        problems.push(
          ...e.problems
            .filter((p) => !p.startsWith('controlPlane.k3s'))
            .filter((p) => !earlier || p.startsWith('timing'))
            .map((p) => `robots[${i}] (${r.name}) agent config: ${p}`),
        );
      }
    });
    problems.push(...k3sSettingsProblems(candidate));
  }
  const partial = { robots: inv.robots, robotIndex: inv.robots.map((_, i) => i), bundle: inv.bundle };
  if (problems.length || !site) return { inventory: null, partial, problems };
  return { inventory: { ...inv, site, voters }, partial, problems: [] };
}

function dedupe(problems: readonly string[]): string[] {
  return [...new Set(problems)];
}

/**
 * The rules between fields. `complete` is false when some robots did not parse: then the rules
 * that need every robot (who exists, who is server-capable) are left for the run after the fix.
 */
function crossFieldProblems(inv: InventoryParsed, complete: boolean): string[] {
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
    for (const key of Object.keys(r.labels))
      if (!kubeletMaySet(key))
        problems.push(
          `robots[${i}].labels.${key}: kubelet refuses node labels in the kubernetes.io and k8s.io namespaces other than its own (node.kubernetes.io/*, kubelet.kubernetes.io/*, topology.kubernetes.io/zone|region, ...), and k3s would not start: use a namespace of your own, like robot.edgectl.io/${key.slice(key.indexOf('/') + 1)}`,
        );
    if (r.ssh.user === 'root' && r.sudo !== 'none')
      problems.push(`robots[${i}].sudo: ssh.user is root, so sudo is not needed: set sudo: none`);
    if (r.ssh.user !== 'root' && r.sudo === 'none')
      problems.push(
        `robots[${i}].sudo: ${r.ssh.user} is not root and sudo is none: set sudo: nopasswd or password, or ssh.user: root`,
      );
  });
  const capable = inv.robots.filter((r) => r.serverCapable);
  if (capable.length === 0 && complete)
    problems.push(
      'robots: no robot is server-capable: set serverCapable: true on the robots that can run the k3s server',
    );
  const witnessSeen = new Set<string>();
  inv.witnesses.forEach((w, i) => {
    if (witnessSeen.has(w)) problems.push(`witnesses[${i}]: ${w} is listed twice: list each witness once`);
    witnessSeen.add(w);
    if (!byName.has(w))
      problems.push(`witnesses[${i}]: ${w} is not a robot of this inventory: add it to robots or remove it`);
    if (inv.voters?.includes(w))
      problems.push(
        `witnesses[${i}]: ${w} is also a voter: a robot either may lead (voters) or only votes (witnesses)`,
      );
  });
  const leaders = inv.voters ?? capable.filter((r) => !inv.witnesses.includes(r.name)).map((r) => r.name);
  if (leaders.length + inv.witnesses.length > MAX_VOTERS)
    problems.push(
      `witnesses: ${leaders.length} voters and ${inv.witnesses.length} witnesses make ${leaders.length + inv.witnesses.length} votes, at most ${MAX_VOTERS}: 3 or 5 in all`,
    );
  if (inv.voters) {
    const seen = new Set<string>();
    inv.voters.forEach((v, i) => {
      const at = byName.get(v);
      if (seen.has(v)) problems.push(`voters[${i}]: ${v} is listed twice: list each voter once`);
      seen.add(v);
      if (at === undefined) {
        if (complete)
          problems.push(`voters[${i}]: ${v} is not a robot of this inventory: add it to robots or remove it`);
      } else if (!inv.robots[at]!.serverCapable)
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
      if (!byName.has(s) && complete)
        problems.push(`discovery.seeds[${i}]: ${s} is not a robot of this inventory: add it or remove it`);
    });
  if (!inv.discovery.mdns && seeds === 'none' && inv.robots.length > 1)
    problems.push(
      'discovery: mdns is off and seeds is none, so no robot can find another: turn mdns on or set seeds: voters',
    );
  return problems;
}

/** The labels kubelet sets itself, which --node-labels may name (k8s.io/kubelet well-known labels). */
const KUBELET_LABELS = new Set([
  'kubernetes.io/hostname',
  'kubernetes.io/arch',
  'kubernetes.io/os',
  'beta.kubernetes.io/arch',
  'beta.kubernetes.io/os',
  'beta.kubernetes.io/instance-type',
  'node.kubernetes.io/instance-type',
  'failure-domain.beta.kubernetes.io/region',
  'failure-domain.beta.kubernetes.io/zone',
  'topology.kubernetes.io/region',
  'topology.kubernetes.io/zone',
]);

/**
 * kubeletMaySet: whether kubelet starts with this key in --node-labels. Keys in the kubernetes.io
 * and k8s.io namespaces (and their subdomains) must be kubelet's own, or under kubelet.kubernetes.io
 * or node.kubernetes.io.
 */
export function kubeletMaySet(key: string): boolean {
  const slash = key.indexOf('/');
  if (slash < 0) return true;
  const ns = key.slice(0, slash);
  const under = (d: string) => ns === d || ns.endsWith(`.${d}`);
  if (!under('kubernetes.io') && !under('k8s.io')) return true;
  return KUBELET_LABELS.has(key) || under('kubelet.kubernetes.io') || under('node.kubernetes.io');
}

/** Blocks no robot's address may be in: no host can be reached at them. */
const NOT_A_HOST: readonly { cidr: Cidr; why: string }[] = [
  ['0.0.0.0/8', 'is in 0.0.0.0/8, which means "this host" and reaches no robot'],
  ['127.0.0.0/8', 'is a loopback address: every machine answers it itself'],
  ['224.0.0.0/4', 'is a multicast address: it names a group, not a robot'],
  ['240.0.0.0/4', 'is reserved or the broadcast address: it reaches no single robot'],
].map(([c, why]) => ({ cidr: (parseCidr(c!) as { ok: true; cidr: Cidr }).cidr, why: why! }));

/**
 * addressProblem: why a robot's IPv4 address cannot be used with this site, or null. The address
 * must reach one robot, and no pod may be given it: not in k3s's pod or service network, nor in
 * the pool of a site network, where Whereabouts would hand it to a pod.
 */
export function addressProblem(address: string, site: SiteSpec | null): string | null {
  const ip = parseIpv4(address);
  if (ip === null) return null;
  for (const b of NOT_A_HOST)
    if (cidrContains(b.cidr, ip)) return `${b.why}: give the robot's own address on the site network`;
  for (const r of K3S_RESERVED) {
    const c = parseCidr(r.cidr);
    if (c.ok && cidrContains(c.cidr, ip))
      return `is in ${r.cidr}, ${r.why}, so pods and services would shadow the robot: give the robot an address outside it`;
  }
  const at = site?.networks.findIndex((n) => poolContains(n, ip)) ?? -1;
  if (at >= 0)
    return `is in the pool of site.networks[${at}] (${site!.networks[at]!.name}), so Whereabouts could hand the robot's address to a pod: add "${address}" to its exclude, or move the pool with rangeStart/rangeEnd`;
  return null;
}

function addressProblems(robots: readonly Robot[], site: SiteSpec | null): string[] {
  return robots.flatMap((r, i) => {
    const p = addressProblem(r.address, site);
    return p ? [`robots[${i}].address: ${r.address} ${p}`] : [];
  });
}

/** A host-name address that is not an IPv4 address: resolved when the plan is made. */
export function isHostName(address: string): boolean {
  return parseIpv4(address) === null;
}

/** Where k3s settings need an address and a host name has not been resolved yet (TEST-NET-1). */
const UNRESOLVED_PLACEHOLDER = '192.0.2.1';

/**
 * k3sSettingsProblems: each robot's k3s settings as the agent's config carries them, judged by
 * k3s's own schema (agent/k3s/settings.ts), so validate refuses what the plan would.
 */
function k3sSettingsProblems(inv: Inventory): string[] {
  if (inv.controlPlane.runtime !== 'k3s') return [];
  return inv.robots.flatMap((r, i) => {
    const cp = renderControlPlane(
      inv,
      r.ip || !isHostName(r.address) ? r : { ...r, ip: UNRESOLVED_PLACEHOLDER },
    );
    const parsed = K3sSettingsSchema.safeParse((cp as { k3s?: unknown }).k3s);
    return parsed.success
      ? []
      : parsed.error.issues.map(
          (e) => `robots[${i}] (${r.name}) k3s settings: ${formatPath(e.path)}: ${e.message}`,
        );
  });
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
    ...(inv.witnesses.length ? { witnesses: [...inv.witnesses] } : {}),
    // The site's membership as installed: the leader heartbeats these robots and no advertised one.
    workers: inv.robots
      .map((x) => x.name)
      .filter((n) => !inv.voters.includes(n) && !inv.witnesses.includes(n)),
    profile: inv.profile,
    timing: inv.timing,
    network: {
      interfaces: [r.wifiInterface],
      bindAddress: '0.0.0.0',
      port: inv.discovery.port,
      mdns: inv.discovery.mdns,
      seeds: seedRobots(inv, robot).map((s) => ({
        node: s.name,
        host: robotIp(s),
        port: inv.discovery.port,
      })),
    },
    stateDir: installPath(inv, robot, '/var/lib/edgectl'),
    siteKeyFile: installPath(inv, robot, '/etc/edgectl/site-keys.json'),
    // In the lab, the host polls every robot's status over the lab bridge.
    status: { listen: inv.controlPlane.runtime === 'lab' ? `${robotIp(r)}:7947` : '127.0.0.1:7947' },
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
  if (inv.witnesses.includes(r.name)) return { runtime: 'none' };
  if (inv.controlPlane.runtime === 'lab')
    return { runtime: 'lab', identityDir: inv.controlPlane.identityDir, address: robotIp(r), ...common };
  return {
    runtime: 'k3s',
    ...common,
    k3s: {
      nodeIp: robotIp(r),
      flannelIface: r.wifiInterface,
      serverCapable: r.serverCapable,
      labels: { ...r.labels }, // a copy: a shared object would print as a YAML alias
    },
  };
}

/** What a site of `voters` (that may lead) and `witnesses` survives, said for people. */
export interface QuorumAdvice {
  readonly votes: number;
  /** Voters (of any kind) the site can lose and still elect. */
  readonly survives: number;
  readonly summary: string;
  /** Warnings worth printing where a site is defined. */
  readonly warnings: readonly string[];
  /** Two voters and no witness: losing either leaves a site that can never elect. */
  readonly refused: boolean;
}

/**
 * failoverRefusal: the reason `inventory validate` and `bootstrap site` refuse a site that can
 * never fail over (two voters, no witness), unless the inventory accepts it; null when fine.
 */
export function failoverRefusal(inv: Inventory): string | null {
  const advice = quorumAdvice(inv.voters.length, inv.witnesses.length);
  if (!advice.refused || inv.allowNoFailover) return null;
  return `voters: ${advice.summary}: if either robot loses power, the other can never be elected. Add a witness (witnesses: [<a small box, or a robot that is not server-capable>]) or a third voter, or set allowNoFailover: true to accept a site without failover`;
}

export function quorumAdvice(voters: number, witnesses: number): QuorumAdvice {
  const votes = voters + witnesses;
  const survives = votes - (Math.floor(votes / 2) + 1);
  const what = `${voters} voter${voters === 1 ? '' : 's'}${witnesses ? ` + ${witnesses} witness${witnesses === 1 ? '' : 'es'}` : ''}`;
  const summary =
    survives === 0
      ? `${what}: survives no voter loss`
      : `${what}: survives the loss of ${survives} voter${survives === 1 ? '' : 's'}`;
  const warnings: string[] = [];
  if (votes % 2 === 0)
    warnings.push(
      `${votes} votes is an even count: it survives no more losses than ${votes - 1} would; add a witness or drop a voter`,
    );
  if (voters === 1 && witnesses === 0)
    warnings.push('1 voter: the site has no failover; it re-forms only when that robot returns');
  return { votes, survives, summary, warnings, refused: votes === 2 && voters === 2 && witnesses === 0 };
}
