/**
 * CommandRunner is how edgectl runs commands and writes files on a machine: the operator's own
 * (LocalCommandRunner), a robot over SSH (SshCommandRunner), or an in-memory twin in tests. Plans
 * (agent/plan/plan.ts) are executed only through this interface.
 *
 * Contract (shared contract test: agent/exec/runner.contract.ts):
 * - `run` takes an argv, never a shell string; arguments are quoted by the runner where a shell is
 *   unavoidable (SSH). A non-zero exit is a result, not a rejection; only transport failures reject.
 * - Secrets never appear in an argv or an environment: they travel as file content or stdin.
 * - `writeFile` is atomic (temp file + rename in the same directory) and sets mode (and owner)
 *   before the rename, so a reader never sees a half-written or world-readable secret.
 * - `readFile` resolves null for a missing file.
 */
export interface RunOptions {
  readonly stdin?: string | Buffer;
  /** Run as root through sudo (SSH runners as a non-root user). */
  readonly sudo?: boolean;
  /** Over this, the command is killed and `run` rejects with EDGE_COMMAND_TIMEOUT. */
  readonly timeoutMs?: number;
  readonly cwd?: string;
  /** Called with each complete line of output as it arrives (progress, logs); never with stdin. */
  readonly onLine?: (stream: 'stdout' | 'stderr', line: string) => void;
}

export interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export interface WriteFileOptions {
  /** Octal file mode, e.g. 0o600 for secrets. */
  readonly mode: number;
  /** user:group, e.g. root:root. */
  readonly owner?: string;
  readonly sudo?: boolean;
}

export interface CommandRunner {
  /** What this runner reaches, for logs and errors: "local" or a robot name. */
  readonly target: string;
  run(argv: readonly string[], opts?: RunOptions): Promise<RunResult>;
  writeFile(path: string, content: string | Buffer, opts: WriteFileOptions): Promise<void>;
  /**
   * upload copies a local file to `path` like writeFile (atomic, mode and owner set before the
   * rename), streaming it: bundles and air-gap images are too big to hold in memory.
   */
  upload(localPath: string, path: string, opts: WriteFileOptions): Promise<void>;
  readFile(path: string, opts?: { sudo?: boolean }): Promise<Buffer | null>;
  close(): Promise<void>;
}
