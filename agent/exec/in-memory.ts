/**
 * InMemoryCommandRunner is the CommandRunner twin for tests: a robot as a small in-memory file
 * system (files with mode and owner, directories) and a handful of built-in commands (printf, cat,
 * echo, true, false, id, pwd, sha256sum, stat -c, mkdir, install -d, rm, test, ls -A, chmod, sleep), plus
 * scripted results for everything else (systemctl, uname, ...). It records every call, and can be
 * told to drop the connection after N operations, which is how tests interrupt a bootstrap.
 *
 * It passes the same contract (runner.contract.ts) as the local and SSH runners.
 */
import { readFileSync } from 'node:fs';
import { sha256Hex } from '../sha256.ts';
import { posix } from 'node:path';
import { EdgeError } from '../errors.ts';
import type { CommandRunner, RunOptions, RunResult, WriteFileOptions } from './runner.ts';

export interface MemFile {
  content: Buffer;
  mode: number;
  owner: string;
}

export interface MemDir {
  mode: number;
  owner: string;
}

/** A recorded call. Stdin is recorded as its length only: tests check secrets never leak into argv. */
export type RecordedCall =
  | {
      readonly op: 'run';
      readonly argv: readonly string[];
      readonly sudo: boolean;
      readonly stdinBytes: number;
    }
  | {
      readonly op: 'writeFile' | 'upload';
      readonly path: string;
      readonly mode: number;
      readonly owner?: string;
    }
  | { readonly op: 'readFile'; readonly path: string };

/** A scripted command: gets the argv and stdin, returns the result (or throws to fail the transport). */
export type CommandHandler = (
  argv: readonly string[],
  ctx: { readonly stdin: Buffer; readonly sudo: boolean; readonly runner: InMemoryCommandRunner },
) => RunResult;

export interface InMemoryRunnerOptions {
  /** The SSH user; root means every command runs as root. Default root. */
  readonly user?: string;
  /** Directories that exist from the start (with their parents), owned by root, mode 0755. */
  readonly dirs?: readonly string[];
  /** Scripted commands by name (argv[0]); they take precedence over the built-ins. */
  readonly handlers?: Readonly<Record<string, CommandHandler>>;
}

const ok = (stdout = ''): RunResult => ({ code: 0, stdout, stderr: '' });
const fail = (code: number, stderr: string): RunResult => ({ code, stdout: '', stderr });

export class InMemoryCommandRunner implements CommandRunner {
  readonly target: string;
  readonly files = new Map<string, MemFile>();
  readonly dirs = new Map<string, MemDir>([['/', { mode: 0o755, owner: 'root:root' }]]);
  readonly calls: RecordedCall[] = [];
  readonly user: string;
  private readonly handlers = new Map<string, CommandHandler>();
  private opsLeft = Infinity;
  private closed = false;

  constructor(target: string, opts: InMemoryRunnerOptions = {}) {
    this.target = target;
    this.user = opts.user ?? 'root';
    for (const d of opts.dirs ?? []) this.mkdirP(d, 0o755, 'root:root');
    for (const [name, h] of Object.entries(opts.handlers ?? {})) this.handlers.set(name, h);
  }

  /** handle scripts a command by name, replacing any built-in of that name. */
  handle(name: string, h: CommandHandler): this {
    this.handlers.set(name, h);
    return this;
  }

  /** disconnectAfter makes every operation after the next `n` reject, as if the robot went away. */
  disconnectAfter(n: number): void {
    this.opsLeft = n;
  }

  /** reopen makes a closed runner usable again (a new connection to the same robot). */
  reopen(): this {
    this.closed = false;
    return this;
  }

  /** reconnect undoes disconnectAfter: the robot is back. */
  reconnect(): void {
    this.opsLeft = Infinity;
    this.closed = false;
  }

  /** runs lists the argv of every run call, joined by spaces, for assertions. */
  runs(): string[] {
    return this.calls.flatMap((c) => (c.op === 'run' ? [c.argv.join(' ')] : []));
  }

  async run(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    this.tick();
    const stdin = opts.stdin === undefined ? Buffer.alloc(0) : Buffer.from(opts.stdin);
    const sudo = opts.sudo ?? false;
    this.calls.push({ op: 'run', argv: [...argv], sudo, stdinBytes: stdin.length });
    const cwd = opts.cwd ?? '/';
    const r = this.exec(argv, { stdin, sudo, cwd, timeoutMs: opts.timeoutMs });
    if (opts.onLine) {
      for (const [stream, text] of [
        ['stdout', r.stdout],
        ['stderr', r.stderr],
      ] as const)
        for (const line of text.split('\n').slice(0, text.endsWith('\n') ? -1 : undefined))
          if (text !== '') opts.onLine(stream, line);
    }
    return r;
  }

  async writeFile(path: string, content: string | Buffer, opts: WriteFileOptions): Promise<void> {
    this.tick();
    this.calls.push({ op: 'writeFile', path, mode: opts.mode, ...(opts.owner ? { owner: opts.owner } : {}) });
    this.put(path, Buffer.from(content), opts);
  }

  async upload(localPath: string, path: string, opts: WriteFileOptions): Promise<void> {
    this.tick();
    this.calls.push({ op: 'upload', path, mode: opts.mode, ...(opts.owner ? { owner: opts.owner } : {}) });
    this.put(path, readFileSync(localPath), opts);
  }

  async readFile(path: string, opts: { sudo?: boolean } = {}): Promise<Buffer | null> {
    this.tick();
    this.calls.push({ op: 'readFile', path });
    const f = this.files.get(path);
    if (!f) return null;
    if (!this.canRead(f, opts.sudo ?? false))
      throw new EdgeError('READ_FAILED', `${this.target}: cannot read ${path}: Permission denied`);
    return Buffer.from(f.content);
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  /** mkdirP creates a directory and its parents (as `mkdir -p`). */
  mkdirP(path: string, mode: number, owner: string): void {
    const parts = posix.normalize(path).split('/').filter(Boolean);
    let cur = '';
    for (const p of parts) {
      cur = `${cur}/${p}`;
      if (!this.dirs.has(cur)) this.dirs.set(cur, { mode, owner });
    }
  }

  private tick(): void {
    if (this.closed || this.opsLeft <= 0)
      throw new EdgeError('SSH_DISCONNECTED', `${this.target}: the connection dropped`, {
        hint: 'is the robot up and in Wi-Fi range?',
      });
    this.opsLeft--;
  }

  private identity(sudo: boolean): string {
    return sudo || this.user === 'root' ? 'root:root' : `${this.user}:${this.user}`;
  }

  private canRead(f: MemFile, sudo: boolean): boolean {
    const me = this.identity(sudo);
    if (me === 'root:root') return true;
    return f.owner === me ? (f.mode & 0o400) !== 0 : (f.mode & 0o004) !== 0;
  }

  private put(path: string, content: Buffer, opts: WriteFileOptions): void {
    const dir = this.dirs.get(posix.dirname(path));
    if (!dir)
      throw new EdgeError(
        'WRITE_FAILED',
        `${this.target}: cannot write ${path}: ${posix.dirname(path)}: Directory nonexistent`,
      );
    const me = this.identity(opts.sudo ?? false);
    if (me !== 'root:root' && dir.owner !== me)
      throw new EdgeError('WRITE_FAILED', `${this.target}: cannot write ${path}: Permission denied`);
    this.files.set(path, { content, mode: opts.mode & 0o7777, owner: opts.owner ?? me });
  }

  private exec(
    argv: readonly string[],
    ctx: { stdin: Buffer; sudo: boolean; cwd: string; timeoutMs: number | undefined },
  ): RunResult {
    const [cmd, ...args] = argv;
    if (cmd === undefined) throw new EdgeError('BAD_ARGV', 'run needs a command');
    const scripted = this.handlers.get(cmd);
    if (scripted) return scripted(argv, { stdin: ctx.stdin, sudo: ctx.sudo, runner: this });
    const abs = (p: string) => posix.resolve(ctx.cwd, p);
    const operands = args.filter((a) => !a.startsWith('-') || a === '-');
    switch (cmd) {
      case 'true':
        return ok();
      case 'false':
        return fail(1, '');
      case 'echo':
        return ok(`${args.join(' ')}\n`);
      case 'pwd':
        return ok(`${ctx.cwd}\n`);
      case 'printf': {
        const [fmt = '', ...vals] = args;
        return ok(printf(fmt, vals));
      }
      case 'id':
        return args.includes('-u')
          ? ok(`${this.identity(ctx.sudo) === 'root:root' ? 0 : 1000}\n`)
          : ok(`uid=${this.identity(ctx.sudo) === 'root:root' ? 0 : 1000}\n`);
      case 'sleep': {
        const ms = Number(args[0]) * 1000;
        if (ctx.timeoutMs !== undefined && ms > ctx.timeoutMs)
          throw new EdgeError(
            'COMMAND_TIMEOUT',
            `${this.target}: ${argv.join(' ')} ran over ${ctx.timeoutMs} ms`,
          );
        return ok();
      }
      case 'cat': {
        if (operands.length === 0) return ok(ctx.stdin.toString('utf8'));
        let out = '';
        for (const p of operands) {
          const f = this.files.get(abs(p));
          if (!f) return { code: 1, stdout: out, stderr: `cat: ${p}: No such file or directory\n` };
          if (!this.canRead(f, ctx.sudo))
            return { code: 1, stdout: out, stderr: `cat: ${p}: Permission denied\n` };
          out += f.content.toString('utf8');
        }
        return ok(out);
      }
      case 'sha256sum': {
        let out = '';
        for (const p of operands.filter((o) => o !== '--')) {
          const f = this.files.get(abs(p));
          if (!f) return { code: 1, stdout: out, stderr: `sha256sum: ${p}: No such file or directory\n` };
          if (!this.canRead(f, ctx.sudo))
            return { code: 1, stdout: out, stderr: `sha256sum: ${p}: Permission denied\n` };
          out += `${sha256Hex(f.content)}  ${p}\n`;
        }
        return ok(out);
      }
      case 'stat': {
        const ci = args.indexOf('-c');
        const fmt = ci >= 0 ? (args[ci + 1] ?? '') : '%n';
        const paths = args.filter((a, i) => i !== ci && i !== ci + 1 && a !== '--');
        let out = '';
        for (const p of paths) {
          const file = this.files.get(abs(p));
          const node: MemFile | MemDir | undefined = file ?? this.dirs.get(abs(p));
          if (!node)
            return { code: 1, stdout: out, stderr: `stat: cannot statx '${p}': No such file or directory\n` };
          const [user, group] = node.owner.split(':');
          out += `${fmt
            .replaceAll('%a', node.mode.toString(8))
            .replaceAll('%U', user ?? '')
            .replaceAll('%G', group ?? '')
            .replaceAll('%s', String(file ? file.content.length : 4096))
            .replaceAll('%n', p)}\n`;
        }
        return ok(out);
      }
      case 'test': {
        const [flag, p] = args;
        const path = abs(p ?? '');
        const is =
          flag === '-e'
            ? this.files.has(path) || this.dirs.has(path)
            : flag === '-f'
              ? this.files.has(path)
              : flag === '-d'
                ? this.dirs.has(path)
                : false;
        return is ? ok() : fail(1, '');
      }
      case 'ls': {
        const dir = abs(operands[0] ?? '.');
        if (!this.dirs.has(dir))
          return fail(2, `ls: cannot access '${operands[0]}': No such file or directory\n`);
        const names = [...this.files.keys(), ...this.dirs.keys()]
          .filter((p) => p !== dir && posix.dirname(p) === dir)
          .map((p) => posix.basename(p))
          .sort();
        return ok(names.map((n) => `${n}\n`).join(''));
      }
      case 'mkdir': {
        const mi = args.indexOf('-m');
        const mode = mi >= 0 ? parseInt(args[mi + 1] ?? '755', 8) : 0o755;
        const paths = args.filter((a, i) => !a.startsWith('-') && !(mi >= 0 && i === mi + 1));
        for (const p of paths) {
          const path = abs(p);
          if (!args.includes('-p') && !this.dirs.has(posix.dirname(path)))
            return fail(1, `mkdir: cannot create directory '${p}': No such file or directory\n`);
          this.mkdirP(path, mode, this.identity(ctx.sudo));
          this.dirs.get(path)!.mode = mode;
        }
        return ok();
      }
      case 'install': {
        // Only `install -d [-m mode] [-o user] [-g group] dir...`: what plans use to make directories.
        if (!args.includes('-d')) return fail(1, 'install: only -d is modelled\n');
        let mode = 0o755;
        let user = 'root';
        let group = 'root';
        const dirs: string[] = [];
        for (let i = 0; i < args.length; i++) {
          const a = args[i]!;
          if (a === '-m') mode = parseInt(args[++i] ?? '755', 8);
          else if (a === '-o') user = args[++i] ?? user;
          else if (a === '-g') group = args[++i] ?? group;
          else if (!a.startsWith('-')) dirs.push(abs(a));
        }
        if (this.identity(ctx.sudo) !== 'root:root') return fail(1, 'install: Operation not permitted\n');
        for (const d of dirs) {
          this.mkdirP(d, 0o755, 'root:root');
          this.dirs.set(d, { mode, owner: `${user}:${group}` });
        }
        return ok();
      }
      case 'chmod': {
        const [mode, ...paths] = operands;
        for (const p of paths) {
          const node = this.files.get(abs(p)) ?? this.dirs.get(abs(p));
          if (!node) return fail(1, `chmod: cannot access '${p}': No such file or directory\n`);
          node.mode = parseInt(mode ?? '0', 8);
        }
        return ok();
      }
      case 'rm': {
        const recursive = args.some((a) => /^-[a-zA-Z]*r/.test(a));
        const force = args.some((a) => /^-[a-zA-Z]*f/.test(a));
        for (const p of operands.filter((o) => o !== '--')) {
          const path = abs(p);
          if (this.files.delete(path)) continue;
          if (this.dirs.has(path)) {
            if (!recursive) return fail(1, `rm: cannot remove '${p}': Is a directory\n`);
            for (const k of [...this.files.keys()]) if (k.startsWith(`${path}/`)) this.files.delete(k);
            for (const k of [...this.dirs.keys()])
              if (k === path || k.startsWith(`${path}/`)) this.dirs.delete(k);
            continue;
          }
          if (!force) return fail(1, `rm: cannot remove '${p}': No such file or directory\n`);
        }
        return ok();
      }
      default:
        return fail(127, `sh: 1: ${cmd}: not found\n`);
    }
  }
}

/** printf with the subset tests use: %s, %%, \n, \t and \\; the format repeats for extra values. */
function printf(fmt: string, vals: readonly string[]): string {
  const unescape = (s: string) =>
    s.replace(/\\(n|t|\\)/g, (_, c: string) => (c === 'n' ? '\n' : c === 't' ? '\t' : '\\'));
  const f = unescape(fmt);
  const slots = (f.match(/%s/g) ?? []).length;
  let out = '';
  let i = 0;
  do {
    out += f.replace(/%(s|%)/g, (_, c: string) => (c === '%' ? '%' : (vals[i++] ?? '')));
  } while (slots > 0 && i < vals.length);
  return out;
}
