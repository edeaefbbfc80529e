/**
 * The local site directory (default `.edgectl/<site-id>/` beside the inventory, or --site-dir):
 * everything `edgectl bootstrap site` keeps on the operator's machine. The directory is 0700 and
 * every file 0600.
 *
 *   site.key            32 random bytes (hex), made once; every robot gets a copy
 *   known_hosts         robots' SSH host keys recorded on first use (--accept-new-host-keys)
 *   state/<robot>.json  the steps done on each robot, by content hash: re-runs skip them, an
 *                       interrupted run resumes after the last one
 *
 * The k3s identity (CA set, tokens) will live beside them (cli/bootstrap/identity-files.ts).
 */
import { randomBytes } from 'node:crypto';
import {
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
  closeSync,
  fsyncSync,
} from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { ConfigError, EdgeError } from '../../agent/errors.ts';
import type { SiteIdentity } from './plan.ts';

export interface SiteDir {
  readonly root: string;
  readonly siteKey: string;
  readonly knownHosts: string;
  readonly stateDir: string;
}

/** siteDirFor: --site-dir, or `.edgectl/<site-id>` beside the inventory file. */
export function siteDirFor(siteId: string, inventoryPath: string, override?: string): SiteDir {
  const root = override ? resolve(override) : join(dirname(resolve(inventoryPath)), '.edgectl', siteId);
  return {
    root,
    siteKey: join(root, 'site.key'),
    knownHosts: join(root, 'known_hosts'),
    stateDir: join(root, 'state'),
  };
}

const SITE_KEY_HEX = /^[0-9a-f]{64}$/;

function readSiteKeyFile(path: string): SiteIdentity {
  const mode = statSync(path).mode;
  const text = readFileSync(path, 'utf8').trim();
  const problems: string[] = [];
  if ((mode & 0o077) !== 0) problems.push(`mode is ${(mode & 0o777).toString(8)}: run chmod 600 ${path}`);
  if (!SITE_KEY_HEX.test(text))
    problems.push('not 64 hex digits: restore it from a backup (robots hold copies)');
  if (problems.length) throw new ConfigError(path, problems);
  return { siteKeyHex: text };
}

/** loadSiteIdentity reads the site's identity, or null when it was never made (a dry run makes none). */
export function loadSiteIdentity(dir: SiteDir): SiteIdentity | null {
  try {
    statSync(dir.siteKey);
  } catch {
    return null;
  }
  return readSiteKeyFile(dir.siteKey);
}

/**
 * ensureSiteIdentity returns the site's identity, making it the first time: the directory 0700,
 * the key 0600, created exclusively so two concurrent runs cannot make two keys.
 */
export function ensureSiteIdentity(
  dir: SiteDir,
  random: (n: number) => Buffer = randomBytes,
): { identity: SiteIdentity; created: boolean } {
  mkdirSync(dir.root, { recursive: true, mode: 0o700 });
  const existing = loadSiteIdentity(dir);
  if (existing) return { identity: existing, created: false };
  const siteKeyHex = random(32).toString('hex');
  let fd: number;
  try {
    fd = openSync(dir.siteKey, 'wx', 0o600);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST')
      return { identity: readSiteKeyFile(dir.siteKey), created: false };
    throw new EdgeError('SITE_DIR', `cannot create ${dir.siteKey}: ${(e as Error).message}`, { cause: e });
  }
  try {
    writeFileSync(fd, `${siteKeyHex}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return { identity: { siteKeyHex }, created: true };
}

/** What the executor remembers of one robot between runs. */
export interface RobotState {
  /** Step id → the step's hash (plan.ts stepHash) when it last completed. */
  readonly done: Readonly<Record<string, string>>;
  /**
   * Steps that changed something in a run that has not finished yet: a resumed run still owes
   * the restarts that depend on them.
   */
  readonly pendingChanged: readonly string[];
}

export const EMPTY_STATE: RobotState = { done: {}, pendingChanged: [] };

/** StateStore keeps RobotState per robot: a directory of files, or an in-memory twin. */
export interface StateStore {
  load(robot: string): Promise<RobotState>;
  save(robot: string, state: RobotState): Promise<void>;
  clear(robot: string): Promise<void>;
}

export class InMemoryStateStore implements StateStore {
  readonly states = new Map<string, RobotState>();
  async load(robot: string): Promise<RobotState> {
    return this.states.get(robot) ?? EMPTY_STATE;
  }
  async save(robot: string, state: RobotState): Promise<void> {
    this.states.set(robot, structuredClone(state) as RobotState);
  }
  async clear(robot: string): Promise<void> {
    this.states.delete(robot);
  }
}

/** FileStateStore: state/<robot>.json, written atomically (temp + fsync + rename), 0600. */
export class FileStateStore implements StateStore {
  readonly dir: string;
  constructor(dir: string) {
    this.dir = dir;
  }
  private path(robot: string): string {
    return join(this.dir, `${robot}.json`);
  }
  async load(robot: string): Promise<RobotState> {
    let text: string;
    try {
      text = readFileSync(this.path(robot), 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return EMPTY_STATE;
      throw e;
    }
    try {
      const raw = JSON.parse(text) as Partial<RobotState>;
      return { done: raw.done ?? {}, pendingChanged: raw.pendingChanged ?? [] };
    } catch {
      // A state file is only an optimization: without it every step is checked on the robot again.
      return EMPTY_STATE;
    }
  }
  async save(robot: string, state: RobotState): Promise<void> {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const tmp = `${this.path(robot)}.tmp-${process.pid}`;
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeFileSync(fd, `${JSON.stringify(state, null, 2)}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.path(robot));
  }
  async clear(robot: string): Promise<void> {
    rmSync(this.path(robot), { force: true });
  }
}
