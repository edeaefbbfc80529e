/**
 * The inventory's I/O: reading site.yaml, resolving the paths it names (relative to the file,
 * `~` for the operator's home, edgectl's own bundle by default), and checking that every file is
 * there and readable. All of it runs before any robot is touched, and reports every problem at once.
 */
import { constants, accessSync, readFileSync, statSync } from 'node:fs';
import { lookup as dnsLookup } from 'node:dns/promises';
import ssh2 from 'ssh2';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readYamlFile } from '../../agent/input-file.ts';
import { ConfigError, EdgeError } from '../../agent/errors.ts';
import { agentChunks } from './bundle.ts';
import { remapIndexes } from '../../agent/partial-parse.ts';
import type { SiteSpec } from '../../agent/site/spec.ts';
import {
  addressProblem,
  checkInventory,
  isHostName,
  parseInventory,
  type Inventory,
  type Robot,
} from './inventory.ts';
import { PINNED_NODE_RUNTIME } from './node-runtime.ts';

/** The edgectl checkout or package this CLI runs from: the default bundle comes from here. */
export const EDGECTL_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Bundle files, resolved to absolute local paths. */
export interface ResolvedBundle {
  /** The agent's entry file; its chunks are beside it (bundle.ts agentChunks). */
  readonly agent: string;
  readonly node: string;
  /**
   * The SHA-256 the Node binary must have: edgectl's pin for its own runtime (node-runtime.ts),
   * or the inventory's bundle.nodeSha256 for another one. Absent: not checked.
   */
  readonly nodeSha256?: string;
  readonly k3s?: string;
  readonly airgapImages?: string;
  readonly etcd?: string;
  readonly etcdctl?: string;
  readonly etcdRevisionBump?: string;
}

/** LoadedInventory is an inventory plus the local paths it names, resolved. */
export interface LoadedInventory {
  readonly inventory: Inventory;
  /** The inventory file, absolute. */
  readonly path: string;
  readonly bundle: ResolvedBundle;
  /** Private key files by robot name (absent for robots that use ssh-agent). */
  readonly keyFiles: ReadonlyMap<string, string>;
}

export function expandPath(p: string, baseDir: string, home = homedir()): string {
  if (p === '~') return home;
  if (p.startsWith('~/')) return join(home, p.slice(2));
  return isAbsolute(p) ? p : resolve(baseDir, p);
}

/** readInventoryFile reads and parses (pure checks only) an inventory file. */
/** readInventoryDocument reads an inventory file as YAML, unchecked. */
function readInventoryDocument(path: string): unknown {
  return readYamlFile(path, {
    missingHint: 'write one with `edgectl inventory init --out site.yaml`, or pass -f <path>',
  });
}

/** readInventoryFile reads and parses (pure checks only) an inventory file. */
export function readInventoryFile(path: string): Inventory {
  return parseInventory(readInventoryDocument(path), path);
}

/** resolveInventoryPaths turns the inventory's relative paths into absolute local ones. Pure. */
export function resolveInventoryPaths(
  inv: Pick<Inventory, 'robots' | 'bundle'>,
  inventoryPath: string,
  home = homedir(),
): Omit<LoadedInventory, 'inventory' | 'path'> {
  const base = dirname(resolve(inventoryPath));
  const bundle: { -readonly [K in keyof ResolvedBundle]: ResolvedBundle[K] } = {
    agent: inv.bundle.agent
      ? expandPath(inv.bundle.agent, base, home)
      : join(EDGECTL_ROOT, 'agent/bundle/edgectl-agent.mjs'),
    node: inv.bundle.node
      ? expandPath(inv.bundle.node, base, home)
      : join(EDGECTL_ROOT, 'node_modules/node/bin/node'),
  };
  const nodeSha256 = inv.bundle.nodeSha256 ?? (inv.bundle.node ? undefined : PINNED_NODE_RUNTIME.sha256);
  if (nodeSha256) bundle.nodeSha256 = nodeSha256;
  if (inv.bundle.k3s) bundle.k3s = expandPath(inv.bundle.k3s, base, home);
  if (inv.bundle.airgapImages) bundle.airgapImages = expandPath(inv.bundle.airgapImages, base, home);
  for (const k of ['etcd', 'etcdctl', 'etcdRevisionBump'] as const) {
    const v = inv.bundle[k];
    if (v) bundle[k] = expandPath(v, base, home);
  }
  const keyFiles = new Map<string, string>();
  for (const r of inv.robots) if (r.ssh.keyFile) keyFiles.set(r.name, expandPath(r.ssh.keyFile, base, home));
  return { bundle, keyFiles };
}

function fileProblem(path: string, field: string, fix: string, mode = constants.R_OK): string | null {
  try {
    const st = statSync(path);
    if (!st.isFile()) return `${field}: ${path} is not a regular file: ${fix}`;
    accessSync(path, mode);
    return null;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return `${field}: ${path} does not exist: ${fix}`;
    if (code === 'EACCES') return `${field}: ${path} is not readable by this user: fix its permissions`;
    return `${field}: ${path}: ${code ?? (e as Error).message}`;
  }
}

/**
 * checkInventoryFiles lists every local file problem: private keys (present, readable, not
 * readable by others, which OpenSSH would refuse), an ssh-agent socket where a robot asks for
 * one, and the bundle files, with every chunk the agent imports. Empty when all is well.
 */
export function checkInventoryFiles(
  loaded: Omit<LoadedInventory, 'path' | 'inventory'> & { readonly inventory: Pick<Inventory, 'robots'> },
  env: NodeJS.ProcessEnv = process.env,
): string[] {
  const problems: string[] = [];
  loaded.inventory.robots.forEach((r, i) => {
    const key = loaded.keyFiles.get(r.name);
    if (key) {
      const p = fileProblem(
        key,
        `robots[${i}].ssh.keyFile`,
        'create it with ssh-keygen -t ed25519, or fix the path (relative paths start at the inventory file)',
      );
      if (p) problems.push(p);
      else if ((statSync(key).mode & 0o077) !== 0)
        problems.push(`robots[${i}].ssh.keyFile: ${key} is readable by other users: run chmod 600 ${key}`);
      else {
        const unusable = keyFileProblem(key);
        if (unusable) problems.push(`robots[${i}].ssh.keyFile: ${key} ${unusable}`);
      }
    }
    if (r.ssh.agent && !env.SSH_AUTH_SOCK)
      problems.push(
        `robots[${i}].ssh.agent: SSH_AUTH_SOCK is not set: start ssh-agent and ssh-add the key, or use keyFile`,
      );
  });
  const b = loaded.bundle;
  const build = 'run npm run build:agent, or set bundle.agent to the bundled agent';
  const checks: [string | undefined, string, string][] = [
    [b.agent, 'bundle.agent', build],
    [b.node, 'bundle.node', 'set bundle.node to a Linux Node 24 binary for the robots (npm ci installs one)'],
    [b.k3s, 'bundle.k3s', 'download the k3s binary for the robots, or remove bundle.k3s'],
    [b.airgapImages, 'bundle.airgapImages', 'download the k3s air-gap images, or remove bundle.airgapImages'],
    [
      b.etcd,
      'bundle.etcd',
      "extract usr/bin/etcd from Debian's etcd-server package for the robots' architecture",
    ],
    [
      b.etcdctl,
      'bundle.etcdctl',
      "extract usr/bin/etcdctl from Debian's etcd-client package for the robots' architecture",
    ],
    [b.etcdRevisionBump, 'bundle.etcdRevisionBump', 'build it with tools/etcd-revision-bump/build.sh'],
  ];
  const etcdSet = [b.etcd, b.etcdctl, b.etcdRevisionBump].filter((x) => x !== undefined).length;
  if (etcdSet > 0 && etcdSet < 3)
    problems.push(
      'bundle.etcd, bundle.etcdctl, bundle.etcdRevisionBump: set all three (the voters run etcd with its tools) or none (they are already on the voters)',
    );
  for (const [path, field, fix] of checks) {
    if (path === undefined) continue;
    const p = fileProblem(path, field, fix);
    if (p) problems.push(p);
  }
  if (!fileProblem(b.agent, 'bundle.agent', build))
    try {
      agentChunks(b.agent);
    } catch (e) {
      if (!(e instanceof EdgeError)) throw e;
      problems.push(`bundle.agent: ${e.message}: ${e.hint}`);
    }
  return problems;
}

/**
 * keyFileProblem: why bootstrap could not log in with this private key file, or null. SSH would only
 * say "authentication failed" at connect time, after the other robots' work began.
 */
export function keyFileProblem(path: string): string | null {
  let key: ReturnType<typeof ssh2.utils.parseKey>;
  try {
    key = ssh2.utils.parseKey(readFileSync(path));
  } catch (e) {
    return `cannot be read: ${(e as Error).message}: check the path`;
  }
  if (key instanceof Error) {
    if (/passphrase/i.test(key.message))
      return 'is protected by a passphrase, which bootstrap cannot type: ssh-add it and set ssh.agent: true instead of keyFile';
    return `is not a private key SSH can use (${key.message}): point keyFile at the private key ssh-keygen wrote (id_ed25519, not a certificate or other file)`;
  }
  const first = Array.isArray(key) ? key[0] : key;
  if (!first?.isPrivateKey())
    return `is a public key: point keyFile at the private key${path.endsWith('.pub') ? ` (${path.slice(0, -4)})` : ''}`;
  return null;
}

/**
 * loadInventory reads, validates and resolves an inventory, and checks its files: one ConfigError
 * with every problem, before anything connects anywhere.
 */
export function loadInventory(path: string, env: NodeJS.ProcessEnv = process.env): LoadedInventory {
  const { checked, problems } = collectInventory(path, env);
  if (problems.length || !checked.inventory) throw new ConfigError(path, problems);
  return finish(checked.inventory, path, env);
}

function finish(inventory: Inventory, path: string, env: NodeJS.ProcessEnv): LoadedInventory {
  return { inventory, path: resolve(path), ...resolveInventoryPaths(inventory, path, env.HOME ?? homedir()) };
}

/** Every problem of the file, its files included, and what parsed of it. */
function collectInventory(path: string, env: NodeJS.ProcessEnv) {
  const checked = checkInventory(readInventoryDocument(path));
  const problems = [...checked.problems];
  // The files of whatever parsed are checked even when the rest has problems: one run, every fix.
  if (checked.partial) {
    const resolved = resolveInventoryPaths(checked.partial, path, env.HOME ?? homedir());
    const fileProblems = checkInventoryFiles({ inventory: checked.partial, ...resolved }, env);
    problems.push(...remapIndexes(fileProblems, 'robots', checked.partial.robotIndex));
  }
  return { checked, problems };
}

/** Lookup resolves a host name to one IPv4 address. */
export type Lookup = (host: string) => Promise<string>;

/** The system's resolver (getaddrinfo: /etc/hosts, DNS, mDNS where nss-mdns is installed). */
export const systemLookup: Lookup = async (host) => (await dnsLookup(host, { family: 4 })).address;

/**
 * resolveRobots resolves every host-name address once, in parallel, and records the IPv4 address
 * on the robot (Robot.ip). A name that does not resolve, resolves to an address no robot can have,
 * or to another robot's address, is a problem naming the robot's field.
 */
export async function resolveRobots(
  robots: readonly Robot[],
  site: SiteSpec | null,
  lookup: Lookup = systemLookup,
): Promise<{ robots: Robot[]; problems: string[] }> {
  const problems: string[] = [];
  const resolved = await Promise.all(
    robots.map(async (r, i): Promise<Robot> => {
      if (!isHostName(r.address)) return { ...r, ip: r.address };
      let ip: string;
      try {
        ip = await lookup(r.address);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
        problems.push(
          `robots[${i}].address: ${r.address} does not resolve to an IPv4 address (${code}): check the name and its DNS or /etc/hosts entry on this machine, or write the robot's IPv4 address`,
        );
        return r;
      }
      const why = addressProblem(ip, site);
      if (why) problems.push(`robots[${i}].address: ${r.address} resolves to ${ip}, which ${why}`);
      return { ...r, ip };
    }),
  );
  const byIp = new Map<string, number>();
  resolved.forEach((r, i) => {
    if (r.ip === undefined) return;
    const first = byIp.get(`${r.ip}:${r.ssh.port}`);
    // Two IPv4 literals alike are the cross-field rule's; a name that lands on another robot is this one's.
    if (first !== undefined && (isHostName(r.address) || isHostName(resolved[first]!.address)))
      problems.push(
        `robots[${i}].address: ${r.address}${isHostName(r.address) ? ` resolves to ${r.ip},` : ' is'} the address of robots[${first}] (${resolved[first]!.address}): give every robot its own address`,
      );
    else if (first === undefined) byIp.set(`${r.ip}:${r.ssh.port}`, i);
  });
  return { robots: resolved, problems };
}

/**
 * loadInventoryResolved is loadInventory plus the host names resolved (resolveRobots): what every
 * command that plans or reaches robots uses, so a name is resolved once per run, before any robot
 * is touched, and its problems come with every other one.
 */
export async function loadInventoryResolved(
  path: string,
  env: NodeJS.ProcessEnv = process.env,
  lookup: Lookup = systemLookup,
): Promise<LoadedInventory> {
  const { checked, problems } = collectInventory(path, env);
  let robots: Robot[] = [];
  if (checked.partial) {
    const site = checked.inventory?.site ?? null;
    const r = await resolveRobots(checked.partial.robots, site, lookup);
    robots = r.robots;
    problems.push(...remapIndexes(r.problems, 'robots', checked.partial.robotIndex));
  }
  if (problems.length || !checked.inventory) throw new ConfigError(path, problems);
  return finish({ ...checked.inventory, robots }, path, env);
}

/**
 * loadInventoryForPlan is loadInventory for a dry run: the inventory itself must be valid, but
 * what only a real run needs (the bundle's files, key files, an SSH agent) is returned as `needs`
 * rather than refused, so the plan can be shown right after `inventory init`.
 */
export async function loadInventoryForPlan(
  path: string,
  env: NodeJS.ProcessEnv = process.env,
  lookup: Lookup = systemLookup,
): Promise<{ loaded: LoadedInventory; needs: string[] }> {
  const parsed = readInventoryFile(path);
  // Host names are resolved as for a real run: the plan carries and shows the addresses.
  const r = await resolveRobots(parsed.robots, parsed.site, lookup);
  if (r.problems.length) throw new ConfigError(path, r.problems);
  const inventory = { ...parsed, robots: r.robots };
  const resolved = resolveInventoryPaths(inventory, path, env.HOME ?? homedir());
  const loaded = { inventory, path: resolve(path), ...resolved };
  return { loaded, needs: checkInventoryFiles(loaded, env) };
}
