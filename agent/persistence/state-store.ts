/**
 * StateStore keeps a robot's durable election state (term, vote, site log) in its state directory.
 *
 * Contract (docs/protocol.md §6): the agent calls save*() for the statechart's persist effects
 * before it sends any message of the same step; each save is synchronous and returns once the file
 * is durable, so nothing of the step can overtake it. Each file is replaced atomically:
 * write a temp file, fsync it, rename it over the old one, fsync the directory. Power loss at any
 * point leaves either the old or the new file, never a torn one. Each file carries a SHA-256 of its
 * content, so a file damaged later (bad flash, a manual edit) is refused with the file named, never
 * silently reset: a robot that forgot its vote could vote twice in one term.
 */
import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import type { DurableState } from '../../statecharts/election.ts';
import type { LogEntry, NodeId } from '../../statecharts/messages.ts';
import { EdgeError } from '../errors.ts';
import { sha256Digest } from '../sha256.ts';

export const HARD_STATE_FILE = 'hardstate.json';
export const LOG_FILE = 'sitelog.json';
const FORMAT = 1;

/** StateCorruptError: a state file exists but cannot be trusted. The agent refuses to start. */
export class StateCorruptError extends EdgeError {
  readonly file: string;
  constructor(file: string, why: string) {
    super('STATE_CORRUPT', `state file ${file} cannot be trusted: ${why}`, {
      hint:
        `inspect ${file}. If this robot's state is truly lost, move the state directory aside and restart: ` +
        `the robot rejoins as a fresh follower. Do that on at most a minority of voters, or committed site entries may be lost.`,
      exitCode: 4,
    });
    this.file = file;
  }
}

interface Envelope<T> {
  format: number;
  sha256: string;
  body: T;
}

/** digest is the hex SHA-256 of the body's JSON (the same hash the wire codec uses, agent/sha256.ts). */
function digest(body: unknown): string {
  return Buffer.from(sha256Digest(Buffer.from(JSON.stringify(body), 'utf8'))).toString('hex');
}

export class StateStore {
  readonly dir: string;

  constructor(dir: string) {
    this.dir = dir;
  }

  /**
   * load returns the durable state, or the empty state on a first boot (no files at all). Leftover
   * temp files are the remains of writes cut short before their rename: the old file is still the
   * truth, so they are deleted.
   */
  load(): DurableState {
    try {
      mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    } catch (e) {
      throw new EdgeError(
        'STATE_DIR',
        `cannot create the state directory ${this.dir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
        {
          hint: 'set stateDir in agent.yaml to a directory this agent may create and write (default /var/lib/edgectl)',
          cause: e,
        },
      );
    }
    for (const f of readdirSync(this.dir))
      if (f.includes('.tmp-')) rmSync(join(this.dir, f), { force: true });
    const hard = this.read<{ term: number; votedFor: NodeId | null }>(HARD_STATE_FILE);
    const log = this.read<{ entries: LogEntry[] }>(LOG_FILE);
    if (!hard && !log) return { term: 0, votedFor: null, log: [] };
    if (!hard)
      throw new StateCorruptError(join(this.dir, HARD_STATE_FILE), `it is missing while ${LOG_FILE} exists`);
    const entries = log?.entries ?? [];
    if (!Number.isInteger(hard.term) || hard.term < 0)
      throw new StateCorruptError(join(this.dir, HARD_STATE_FILE), 'term is not a non-negative integer');
    const last = entries.length ? entries[entries.length - 1]!.term : 0;
    if (last > hard.term)
      throw new StateCorruptError(
        join(this.dir, LOG_FILE),
        `its last entry has term ${last}, above the persisted term ${hard.term}`,
      );
    return { term: hard.term, votedFor: hard.votedFor, log: entries };
  }

  saveHardState(term: number, votedFor: NodeId | null): void {
    this.write(HARD_STATE_FILE, { term, votedFor });
  }

  /** saveLog writes the whole log. The site log is small (a few entries a day), so whole-file replacement is simplest and safe. */
  saveLog(entries: readonly LogEntry[]): void {
    this.write(LOG_FILE, { entries });
  }

  private read<T>(name: string): T | null {
    const file = join(this.dir, name);
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw new StateCorruptError(file, `cannot read it: ${(e as Error).message}`);
    }
    let env: Envelope<T>;
    try {
      env = JSON.parse(text) as Envelope<T>;
    } catch {
      throw new StateCorruptError(file, 'it is not valid JSON');
    }
    if (env === null || typeof env !== 'object' || env.format !== FORMAT) {
      throw new StateCorruptError(
        file,
        `unknown format ${JSON.stringify((env as { format?: unknown } | null)?.format)}`,
      );
    }
    if (digest(env.body) !== env.sha256)
      throw new StateCorruptError(file, 'its checksum does not match its content');
    return env.body;
  }

  private write(name: string, body: unknown): void {
    const file = join(this.dir, name);
    const tmp = join(this.dir, `${name}.tmp-${process.pid}`);
    const data = Buffer.from(
      JSON.stringify({ format: FORMAT, sha256: digest(body), body } satisfies Envelope<unknown>),
    );
    const fd = openSync(tmp, 'w', 0o600);
    try {
      let off = 0;
      while (off < data.length) off += writeSync(fd, data, off);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
    // The rename itself must reach the disk before we tell anyone our new vote.
    const dfd = openSync(this.dir, 'r');
    try {
      fsyncSync(dfd);
    } finally {
      closeSync(dfd);
    }
  }
}
