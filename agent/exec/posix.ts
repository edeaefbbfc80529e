/**
 * The part of a CommandRunner that is the same on this machine and over SSH: argv quoting, sudo
 * (with its password on stdin, only when sudo asks for it), atomic file writes by a small sh
 * script fed through stdin, timeouts and line streaming. LocalCommandRunner and SshCommandRunner
 * differ only in how they start a process (a `Spawn`).
 *
 * sudo protocol. `sudo -S -k -p <prompt marker>` writes its prompt to stderr and reads the password
 * from stdin; `-k` ignores cached credentials so the prompt comes every time. The command runs
 * under `sh -c 'printf <ready marker> >&2; exec "$@"'`, so the runner knows exactly when sudo is
 * done: the password is written only after the prompt marker is seen (never into a command that
 * sudo did not stop for, e.g. with a NOPASSWD rule), and the caller's stdin only after the ready
 * marker. Both markers carry a random nonce and are removed from stderr.
 */
import { randomBytes } from '../random.ts';
import { createReadStream } from 'node:fs';
import { posix } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { EdgeError } from '../errors.ts';
import type { CommandRunner, RunOptions, RunResult, WriteFileOptions } from './runner.ts';

/** How a runner becomes root: it is root, passwordless sudo, or sudo with a password. */
export type SudoMode = 'none' | 'nopasswd' | 'password';

const SAFE_WORD = /^[A-Za-z0-9_/.:=@%+,-]+$/;

/** shellQuote quotes one argument for a POSIX shell: plain words stay readable, the rest single-quoted. */
export function shellQuoteArg(arg: string): string {
  if (arg !== '' && SAFE_WORD.test(arg)) return arg;
  return `'${arg.replaceAll("'", `'\\''`)}'`;
}

/** shellQuote joins an argv into one command line a POSIX shell splits back into the same argv. */
export function shellQuote(argv: readonly string[]): string {
  return argv.map(shellQuoteArg).join(' ');
}

/** The markers of one sudo invocation (random per command). */
export interface SudoMarkers {
  readonly prompt: string;
  readonly ready: string;
}

export function newMarkers(nonce = randomBytes(8).toString('hex')): SudoMarkers {
  return { prompt: `[edgectl-sudo-${nonce}]`, ready: `edgectl-ready-${nonce}` };
}

/**
 * wrapArgv is the argv that actually runs: `argv` in `cwd`, through sudo when `sudo` names a mode
 * other than none. Pure.
 */
export function wrapArgv(
  argv: readonly string[],
  opts: {
    sudo: SudoMode | false;
    cwd?: string | undefined;
    markers: SudoMarkers;
    /** Kill the command on the target after this long (coreutils timeout: TERM, then KILL 2 s later). */
    remoteTimeoutMs?: number | undefined;
  },
): string[] {
  let inner = [...argv];
  if (opts.remoteTimeoutMs !== undefined)
    inner = ['timeout', '-k', '2', (opts.remoteTimeoutMs / 1000).toFixed(3), ...inner];
  if (opts.cwd !== undefined) inner = ['sh', '-c', 'cd -- "$0" && exec "$@"', opts.cwd, ...inner];
  if (opts.sudo === false || opts.sudo === 'none') return inner;
  const announce = ['sh', '-c', 'printf "%s\\n" "$0" >&2; exec "$@"', opts.markers.ready, ...inner];
  return opts.sudo === 'password'
    ? ['sudo', '-S', '-k', '-p', opts.markers.prompt, '--', ...announce]
    : ['sudo', '-n', '--', ...announce];
}

/**
 * The script writeFile and upload run: stdin to a 0600 temp file in the target's directory, fsync,
 * mode and owner, then rename over the target. On any failure the temp file is removed.
 * Arguments: $1 temp file, $2 octal mode, $3 user:group or empty, $4 target.
 */
export const WRITE_SCRIPT = [
  'set -e',
  'umask 077',
  `trap 'rm -f -- "$1"' EXIT`,
  'cat > "$1"',
  'sync "$1" 2>/dev/null || sync',
  'chmod "$2" "$1"',
  'if [ -n "$3" ]; then chown "$3" "$1"; fi',
  'mv -f -- "$1" "$4"',
  'trap - EXIT',
].join('\n');

/** Exit code readFile's script uses for "no such file" (EX_NOINPUT). */
export const READ_MISSING = 66;
export const READ_SCRIPT = `if [ -e "$1" ]; then exec cat -- "$1"; else exit ${READ_MISSING}; fi`;

/** tempPathFor is a temp file beside `path`, so the final rename stays on one file system. */
export function tempPathFor(path: string, nonce: string): string {
  return posix.join(posix.dirname(path), `.${posix.basename(path)}.edgectl-${nonce}`);
}

/** A started process, local or remote. */
export interface Proc {
  readonly stdin: Writable;
  readonly stdout: Readable;
  readonly stderr: Readable;
  /** Resolves when the process is gone; `lost` when the transport dropped before it said how. */
  readonly exited: Promise<{ code: number | null; signal: string | null; lost?: boolean }>;
  kill(): void;
}

/** Spawn starts an argv (already wrapped) and returns its streams. */
export type Spawn = (argv: readonly string[]) => Promise<Proc>;

export type StdinSource = string | Buffer | { readonly file: string } | undefined;

interface DriveResult {
  code: number;
  stdout: Buffer;
  stderr: string;
}

const SIGNALS: Record<string, number> = { HUP: 1, INT: 2, KILL: 9, PIPE: 13, TERM: 15 };

/** LineSplitter turns chunks into complete lines, keeping the tail for the next chunk. */
class LineSplitter {
  private readonly decoder = new StringDecoder('utf8');
  private tail = '';
  push(chunk: Buffer, emit: (line: string) => void): void {
    const text = this.tail + this.decoder.write(chunk);
    const lines = text.split('\n');
    this.tail = lines.pop() ?? '';
    for (const l of lines) emit(l);
  }
  flush(emit: (line: string) => void): void {
    const rest = this.tail + this.decoder.end();
    this.tail = '';
    if (rest !== '') emit(rest);
  }
}

export interface PosixRunnerOptions {
  /** How this runner becomes root when a command asks for sudo. */
  readonly sudo: SudoMode;
  /** The sudo password (sudo: password). Written to sudo's stdin only; never logged. */
  readonly sudoPassword?: string | undefined;
  /** Called with every command line before it runs, for debug logs. Never sees stdin or passwords. */
  readonly log?: ((line: string) => void) | undefined;
  /** Default per-command timeout. */
  readonly timeoutMs?: number | undefined;
  /**
   * Enforce timeouts on the target too (coreutils `timeout` around the command), for transports
   * that cannot kill what they started: an SSH channel close does not stop a remote command.
   */
  readonly remoteTimeout?: boolean | undefined;
}

/**
 * PosixRunner implements CommandRunner over any Spawn that runs argv on a POSIX system with
 * sh, cat, chmod, chown, mv and sudo.
 */
export class PosixRunner implements CommandRunner {
  readonly target: string;
  private readonly spawn: Spawn;
  private readonly opts: PosixRunnerOptions;
  private readonly onClose: () => Promise<void>;

  constructor(target: string, spawn: Spawn, opts: PosixRunnerOptions, onClose: () => Promise<void>) {
    this.target = target;
    this.spawn = spawn;
    this.opts = opts;
    this.onClose = onClose;
    if (opts.sudo === 'password' && !opts.sudoPassword)
      throw new EdgeError('SUDO_PASSWORD_MISSING', `${target} needs a sudo password and none was given`, {
        hint: 'pass --sudo-password-file <file>, or answer the prompt on a terminal',
      });
  }

  async run(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    const r = await this.exec(argv, {
      sudo: opts.sudo ?? false,
      cwd: opts.cwd,
      stdin: opts.stdin,
      timeoutMs: opts.timeoutMs,
      onLine: opts.onLine,
    });
    return { code: r.code, stdout: r.stdout.toString('utf8'), stderr: r.stderr };
  }

  async writeFile(path: string, content: string | Buffer, opts: WriteFileOptions): Promise<void> {
    await this.install(path, content, opts);
  }

  async upload(localPath: string, path: string, opts: WriteFileOptions): Promise<void> {
    await this.install(path, { file: localPath }, opts);
  }

  async readFile(path: string, opts: { sudo?: boolean } = {}): Promise<Buffer | null> {
    const r = await this.exec(['sh', '-c', READ_SCRIPT, 'edgectl-read', path], { sudo: opts.sudo ?? false });
    if (r.code === READ_MISSING) return null;
    if (r.code !== 0)
      throw new EdgeError('READ_FAILED', `${this.target}: cannot read ${path}: ${r.stderr.trim()}`, {
        hint: opts.sudo ? undefined : 'read it with sudo, or fix its permissions',
      });
    return r.stdout;
  }

  async close(): Promise<void> {
    await this.onClose();
  }

  private async install(path: string, stdin: StdinSource, opts: WriteFileOptions): Promise<void> {
    if (!posix.isAbsolute(path))
      throw new EdgeError('BAD_PATH', `${this.target}: ${path} is not an absolute path`);
    const tmp = tempPathFor(path, randomBytes(6).toString('hex'));
    const mode = (opts.mode & 0o7777).toString(8).padStart(4, '0');
    const r = await this.exec(
      ['sh', '-c', WRITE_SCRIPT, 'edgectl-write', tmp, mode, opts.owner ?? '', path],
      {
        sudo: opts.sudo ?? false,
        stdin,
      },
    );
    if (r.code !== 0)
      throw new EdgeError('WRITE_FAILED', `${this.target}: cannot write ${path}: ${r.stderr.trim()}`, {
        hint: 'does the directory exist (the plan creates it), and is the write done with sudo?',
      });
  }

  private async exec(
    argv: readonly string[],
    o: {
      sudo: boolean;
      cwd?: string | undefined;
      stdin?: StdinSource;
      timeoutMs?: number | undefined;
      onLine?: RunOptions['onLine'];
    },
  ): Promise<DriveResult> {
    if (argv.length === 0) throw new EdgeError('BAD_ARGV', 'run needs a command');
    const sudo = o.sudo ? this.opts.sudo : false;
    const markers = newMarkers();
    const timeoutMs = o.timeoutMs ?? this.opts.timeoutMs;
    const remote = this.opts.remoteTimeout === true && timeoutMs !== undefined;
    const full = wrapArgv(argv, {
      sudo,
      cwd: o.cwd,
      markers,
      remoteTimeoutMs: remote ? timeoutMs : undefined,
    });
    this.opts.log?.(`${this.target}$ ${shellQuote(full)}`);
    const proc = await this.spawn(full);
    return drive(proc, {
      target: this.target,
      command: shellQuote(argv),
      sudo,
      markers,
      password: this.opts.sudoPassword,
      stdin: o.stdin,
      timeoutMs,
      remoteTimeout: remote,
      onLine: o.onLine,
    });
  }
}

/** drive feeds a started process (sudo protocol, stdin), collects its output and waits for it. */
function drive(
  proc: Proc,
  o: {
    target: string;
    command: string;
    sudo: SudoMode | false;
    markers: SudoMarkers;
    password: string | undefined;
    stdin: StdinSource;
    timeoutMs: number | undefined;
    remoteTimeout: boolean;
    onLine: RunOptions['onLine'];
  },
): Promise<DriveResult> {
  const wrapped = o.sudo === 'nopasswd' || o.sudo === 'password';
  const stdout: Buffer[] = [];
  let stderrRaw = '';
  const outLines = new LineSplitter();
  const errLines = new LineSplitter();
  // Where the command's own stderr starts: what sudo says before the ready marker (a lecture,
  // "unable to resolve host") is kept only for the error when sudo fails.
  let commandStderrAt = wrapped ? -1 : 0;
  let prompts = 0;
  // A process that exits early closes its stdin: writing then fails with EPIPE, which is no error of ours.
  proc.stdin.on('error', () => {});

  const sendStdin = () => {
    const s = o.stdin;
    if (s === undefined) proc.stdin.end();
    else if (typeof s === 'string' || Buffer.isBuffer(s)) proc.stdin.end(s);
    else {
      const file = createReadStream(s.file);
      file.on('error', () => proc.kill());
      file.pipe(proc.stdin);
    }
  };

  proc.stdout.on('data', (c: Buffer) => {
    stdout.push(c);
    if (o.onLine) outLines.push(c, (l) => o.onLine?.('stdout', l));
  });
  proc.stderr.on('data', (c: Buffer) => {
    if (commandStderrAt >= 0) {
      stderrRaw += c.toString('utf8');
      if (o.onLine) errLines.push(c, (l) => o.onLine?.('stderr', l));
      return;
    }
    stderrRaw += c.toString('utf8');
    const seen = stderrRaw.split(o.markers.prompt).length - 1;
    if (seen > prompts) {
      prompts = seen;
      // The first prompt gets the password; a second means sudo refused it: give up, don't retry.
      if (prompts === 1 && o.password !== undefined) proc.stdin.write(`${o.password}\n`);
      else proc.stdin.end();
    }
    const at = stderrRaw.indexOf(`${o.markers.ready}\n`);
    if (at >= 0) {
      commandStderrAt = at + o.markers.ready.length + 1;
      const rest = stderrRaw.slice(commandStderrAt);
      if (o.onLine && rest) errLines.push(Buffer.from(rest), (l) => o.onLine?.('stderr', l));
      sendStdin();
    }
  });
  if (commandStderrAt === 0) sendStdin();

  return new Promise<DriveResult>((resolve, reject) => {
    const timeoutError = () =>
      new EdgeError('COMMAND_TIMEOUT', `${o.target}: ${o.command} ran over ${o.timeoutMs} ms`, {
        hint: 'the command was killed; run it by hand on the robot to see why it hangs',
      });
    let settled = false;
    // With a remote timeout the target kills the command itself; this timer is the backstop for a
    // target that does not answer at all, and it does not wait for the process to report back.
    const timer =
      o.timeoutMs !== undefined
        ? setTimeout(
            () => {
              settled = true;
              proc.kill();
              reject(timeoutError());
            },
            o.timeoutMs + (o.remoteTimeout ? 5_000 : 0),
          )
        : undefined;
    proc.exited.then(
      (exit) => {
        if (timer) clearTimeout(timer);
        if (settled) return;
        if (o.onLine) {
          outLines.flush((l) => o.onLine?.('stdout', l));
          errLines.flush((l) => o.onLine?.('stderr', l));
        }
        const ready = commandStderrAt >= 0;
        const stderr = ready
          ? stderrRaw.slice(commandStderrAt)
          : stderrRaw.replaceAll(o.markers.prompt, '\n');
        // coreutils timeout exits 124 when it had to stop the command.
        if (o.remoteTimeout && ready && exit.code === 124) return reject(timeoutError());
        if (exit.lost)
          return reject(
            new EdgeError(
              'SSH_DISCONNECTED',
              `${o.target}: the connection dropped while running ${o.command}`,
              {
                hint: 'is the robot up and in Wi-Fi range? Run the command again; every step is idempotent',
              },
            ),
          );
        if (!ready)
          return reject(
            new EdgeError(
              'SUDO_FAILED',
              `${o.target}: sudo refused to run ${o.command}${prompts > 1 ? ' (wrong password)' : ''}: ${stderr.trim()}`,
              {
                hint:
                  o.sudo === 'password'
                    ? 'check the sudo password (--sudo-password-file), and that the user may use sudo'
                    : 'give the user passwordless sudo (/etc/sudoers.d), or set sudo: password in the inventory',
              },
            ),
          );
        const code = exit.code ?? 128 + (SIGNALS[exit.signal?.replace(/^SIG/, '') ?? ''] ?? 127);
        resolve({ code, stdout: Buffer.concat(stdout), stderr });
      },
      (e: unknown) => {
        if (timer) clearTimeout(timer);
        if (!settled) reject(e);
      },
    );
  });
}
