/**
 * startHelperChild: one of the agent's short-lived helper processes (the Kubernetes client's, the
 * snapshot cipher's), run with this process's Node, its three streams piped. Their errors quote
 * the end of what the child wrote on stderr, where a crash's message is; the rest is dropped. A
 * write to a child that has died fails: the caller learns why from the child's exit, so the stdin
 * error is not an error of its own.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';

/** How much of a child's stderr is kept for an error message. */
export const STDERR_TAIL_CHARS = 2_000;

export function startHelperChild(
  script: string,
  args: readonly string[],
): { readonly proc: ChildProcessWithoutNullStreams; stderr(): string } {
  const proc = spawn(process.execPath, [script, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  let tail = '';
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (d: string) => (tail = (tail + d).slice(-STDERR_TAIL_CHARS)));
  proc.stdin.on('error', () => undefined);
  return { proc, stderr: () => tail.trim() };
}
