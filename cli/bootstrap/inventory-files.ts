/**
 * The inventory's I/O: reading site.yaml, resolving the paths it names (relative to the file,
 * `~` for the operator's home, edgectl's own bundle by default), and checking that every file is
 * there and readable. All of it runs before any robot is touched, and reports every problem at once.
 */
import { constants, accessSync, readFileSync, statSync } from 'node:fs';
import ssh2 from 'ssh2';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readYamlFile } from '../../agent/input-file.ts';
import { ConfigError, EdgeError } from '../../agent/errors.ts';
import { agentChunks } from './bundle.ts';
import { parseInventory, type Inventory } from './inventory.ts';

/** The edgectl checkout or package this CLI runs from: the default bundle comes from here. */
export const EDGECTL_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Bundle files, resolved to absolute local paths. */
export interface ResolvedBundle {
  /** The agent's entry file; its chunks are beside it (bundle.ts agentChunks). */
  readonly agent: string;
  readonly node: string;
  readonly k3s?: string;
  readonly airgapImages?: string;
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
export function readInventoryFile(path: string): Inventory {
  const raw = readYamlFile(path, {
    missingHint: 'write one with `edgectl inventory init --out site.yaml`, or pass -f <path>',
  });
  return parseInventory(raw, path);
}

/** resolveInventoryPaths turns the inventory's relative paths into absolute local ones. Pure. */
export function resolveInventoryPaths(
  inv: Inventory,
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
  if (inv.bundle.k3s) bundle.k3s = expandPath(inv.bundle.k3s, base, home);
  if (inv.bundle.airgapImages) bundle.airgapImages = expandPath(inv.bundle.airgapImages, base, home);
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
  loaded: Omit<LoadedInventory, 'path'>,
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
  ];
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
  const inventory = readInventoryFile(path);
  const resolved = resolveInventoryPaths(inventory, path, env.HOME ?? homedir());
  const loaded = { inventory, path: resolve(path), ...resolved };
  const problems = checkInventoryFiles(loaded, env);
  if (problems.length) throw new ConfigError(path, problems);
  return loaded;
}

/**
 * loadInventoryForPlan is loadInventory for a dry run: the inventory itself must be valid, but
 * what only a real run needs (the bundle's files, key files, an SSH agent) is returned as `needs`
 * rather than refused, so the plan can be shown right after `inventory init`.
 */
export function loadInventoryForPlan(
  path: string,
  env: NodeJS.ProcessEnv = process.env,
): { loaded: LoadedInventory; needs: string[] } {
  const inventory = readInventoryFile(path);
  const resolved = resolveInventoryPaths(inventory, path, env.HOME ?? homedir());
  const loaded = { inventory, path: resolve(path), ...resolved };
  return { loaded, needs: checkInventoryFiles(loaded, env) };
}
