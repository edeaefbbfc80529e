/**
 * The local site directory (default `.edgectl/<site-id>/` beside the inventory, or --site-dir):
 * everything `edgectl bootstrap site` keeps on the operator's machine. The directory is 0700 and
 * every file 0600.
 *
 *   site.key            the site master secret: 32 random bytes (hex), made once. It never leaves
 *                       this directory: each robot gets keys derived from it (agent/site-key.ts)
 *   keys.json           which key generation robots use, a rotation in progress, refused robots
 *                       (edgectl site rotate-keys, edgectl robot remove)
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
import type { SiteIdentity, SiteKeyUse } from './plan.ts';

export interface SiteDir {
  readonly root: string;
  readonly siteKey: string;
  readonly keys: string;
  readonly knownHosts: string;
  readonly stateDir: string;
}

/** siteDirFor: --site-dir, or `.edgectl/<site-id>` beside the inventory file. */
export function siteDirFor(siteId: string, inventoryPath: string, override?: string): SiteDir {
  const root = override ? resolve(override) : join(dirname(resolve(inventoryPath)), '.edgectl', siteId);
  return {
    root,
    siteKey: join(root, 'site.key'),
    keys: join(root, 'keys.json'),
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
    problems.push('not 64 hex digits: restore it from a backup of the site directory');
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
  return { ...readSiteKeyFile(dir.siteKey), keys: keyUse(loadKeyState(dir)) };
}

/**
 * KeyState: the site's key generations, kept in keys.json. A rotation to `generation + 1` goes
 * through three phases, each pushed to every robot before the next: `accept` (robots accept the
 * new generation, still send the old), `send` (they send the new, still accept the old), `retire`
 * (the old is gone; then generation moves on and the refused list is cleared: a removed robot has
 * no key of the new generation).
 */
export interface KeyState {
  readonly generation: number;
  readonly rotation: { readonly to: number; readonly phase: RotationPhase } | null;
  /** Removed robots, refused by the voters until the next rotation retires their keys. */
  readonly refused: readonly string[];
}
export type RotationPhase = 'accept' | 'send' | 'retire';

export const INITIAL_KEY_STATE: KeyState = { generation: 1, rotation: null, refused: [] };

/** keyUse: what robots hold in a key state: the generation they send with, those they accept. */
export function keyUse(s: KeyState): SiteKeyUse {
  const g = s.generation;
  const r = s.rotation;
  if (!r) return { send: g, accept: [g], refused: s.refused };
  if (r.phase === 'accept') return { send: g, accept: [g, r.to], refused: s.refused };
  if (r.phase === 'send') return { send: r.to, accept: [r.to, g], refused: s.refused };
  return { send: r.to, accept: [r.to], refused: [] };
}

/** nextKeyState: the state after the current rotation phase was pushed to every robot. */
export function nextKeyState(s: KeyState): KeyState {
  const r = s.rotation;
  if (!r) return { ...s, rotation: { to: s.generation + 1, phase: 'accept' } };
  if (r.phase === 'accept') return { ...s, rotation: { to: r.to, phase: 'send' } };
  if (r.phase === 'send') return { ...s, rotation: { to: r.to, phase: 'retire' } };
  return { generation: r.to, rotation: null, refused: [] };
}

/** loadKeyState reads keys.json; a site directory made before it existed is at generation 1. */
export function loadKeyState(dir: SiteDir): KeyState {
  let text: string;
  try {
    text = readFileSync(dir.keys, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return INITIAL_KEY_STATE;
    throw new EdgeError('SITE_DIR', `cannot read ${dir.keys}: ${(e as Error).message}`, { cause: e });
  }
  const problems: string[] = [];
  let raw: Partial<KeyState> = {};
  try {
    raw = JSON.parse(text) as Partial<KeyState>;
  } catch {
    problems.push('not JSON');
  }
  const gen = (x: unknown) => Number.isSafeInteger(x) && (x as number) >= 1;
  if (!gen(raw.generation)) problems.push('generation: must be an integer ≥ 1');
  const r = raw.rotation;
  if (
    r !== null &&
    (typeof r !== 'object' ||
      r.to !== (raw.generation ?? 0) + 1 ||
      !['accept', 'send', 'retire'].includes(r.phase))
  )
    problems.push('rotation: must be null or {to: generation + 1, phase: accept | send | retire}');
  if (!Array.isArray(raw.refused) || !raw.refused.every((x) => typeof x === 'string'))
    problems.push('refused: must list robot names');
  if (problems.length)
    throw new ConfigError(dir.keys, problems, {
      hint: 'restore keys.json from a backup of the site directory; the robots key files show the generation in use',
    });
  return raw as KeyState;
}

/** saveKeyState writes keys.json atomically (temp, fsync, rename), 0600. */
export function saveKeyState(dir: SiteDir, s: KeyState): void {
  mkdirSync(dir.root, { recursive: true, mode: 0o700 });
  const tmp = `${dir.keys}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeFileSync(fd, `${JSON.stringify(s, null, 2)}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, dir.keys);
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
  const keys = keyUse(loadKeyState(dir));
  const siteKeyHex = random(32).toString('hex');
  let fd: number;
  try {
    fd = openSync(dir.siteKey, 'wx', 0o600);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST')
      return { identity: { ...readSiteKeyFile(dir.siteKey), keys }, created: false };
    throw new EdgeError('SITE_DIR', `cannot create ${dir.siteKey}: ${(e as Error).message}`, { cause: e });
  }
  try {
    writeFileSync(fd, `${siteKeyHex}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return { identity: { siteKeyHex, keys }, created: true };
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
