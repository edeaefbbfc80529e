/**
 * LocalCommandRunner runs commands on this machine with child_process (argv, no shell). As root,
 * `sudo: true` runs the command directly; otherwise through passwordless sudo.
 */
import { spawn } from 'node:child_process';
import { PosixRunner, type Proc, type Spawn } from './posix.ts';

export const spawnLocal: Spawn = async (argv) => {
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'], detached: true });
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
  exited.catch(() => {});
  // A command that does not exist is a result (127, like a shell), not a transport failure.
  const started = await new Promise<Error | null>((resolve) => {
    child.once('spawn', () => resolve(null));
    child.once('error', (e) => resolve(e));
  });
  if (started) {
    const { PassThrough } = await import('node:stream');
    const stderr = new PassThrough();
    const stdout = new PassThrough();
    const stdin = new PassThrough();
    queueMicrotask(() => {
      stderr.end(`${argv[0]}: ${(started as NodeJS.ErrnoException).code ?? started.message}\n`);
      stdout.end();
    });
    return {
      stdin,
      stdout,
      stderr,
      exited: Promise.resolve({ code: 127, signal: null }),
      kill: () => {},
    } satisfies Proc;
  }
  return {
    stdin: child.stdin,
    stdout: child.stdout,
    stderr: child.stderr,
    exited,
    kill: () => {
      try {
        // The whole process group: a timed-out sh -c must not leave its children behind.
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
    },
  } satisfies Proc;
};

/** LocalCommandRunner: a CommandRunner (agent/exec/runner.ts) for this machine. */
export class LocalCommandRunner extends PosixRunner {
  constructor(opts: { timeoutMs?: number; log?: (line: string) => void } = {}) {
    const root = typeof process.getuid === 'function' && process.getuid() === 0;
    super('local', spawnLocal, { sudo: root ? 'none' : 'nopasswd', ...opts }, async () => {});
  }
}
