/**
 * EdgeError is the one base class for every error edgectl expects. It carries a stable `code`
 * (documented in docs/operations.md; scripts may match on it), a `hint` that names the fix, and the
 * standard `cause`. Only the entries turn errors into exit codes and messages: cli/main.ts for
 * edgectl, agentMain (agent/run.ts) for the agent's entries. Commands and the agent's parts throw;
 * they never call process.exit.
 */
export class EdgeError extends Error {
  readonly code: string;
  readonly hint: string | undefined;
  /** Process exit code the CLI uses for this error class. */
  readonly exitCode: number;

  constructor(
    code: string,
    message: string,
    opts: { hint?: string; cause?: unknown; exitCode?: number } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    this.code = code.startsWith('EDGE_') ? code : `EDGE_${code}`;
    this.hint = opts.hint;
    this.exitCode = opts.exitCode ?? 1;
  }

  /** toJSON is what `--output json` prints for an error. */
  toJSON(): { code: string; message: string; hint?: string; cause?: string } {
    const out: { code: string; message: string; hint?: string; cause?: string } = {
      code: this.code,
      message: this.message,
    };
    if (this.hint) out.hint = this.hint;
    if (this.cause !== undefined)
      out.cause = this.cause instanceof Error ? this.cause.message : String(this.cause);
    return out;
  }
}

/** UsageError: the command line or an input file is wrong. Exit code 2, like most Unix tools. */
export class UsageError extends EdgeError {
  constructor(code: string, message: string, opts: { hint?: string; cause?: unknown } = {}) {
    super(code, message, { ...opts, exitCode: 2 });
  }
}

/** ConfigError: a config or inventory failed validation. `problems` lists every field at fault. */
export class ConfigError extends EdgeError {
  /** The file or input at fault, as the message names it. */
  readonly source: string;
  readonly problems: readonly string[];
  constructor(source: string, problems: readonly string[], opts: { hint?: string } = {}) {
    super('CONFIG_INVALID', `${source} is invalid:\n  - ${problems.join('\n  - ')}`, {
      hint: opts.hint ?? `fix the fields listed above in ${source} and run the command again`,
      exitCode: 2,
    });
    this.source = source;
    this.problems = problems;
  }
}

/** SafetyViolationError: the simulator or the lab saw an invariant break. Exit code 3. */
export class SafetyViolationError extends EdgeError {
  constructor(message: string, opts: { hint?: string; cause?: unknown } = {}) {
    super('SAFETY_VIOLATION', message, { ...opts, exitCode: 3 });
  }
}

/** InternalError: a bug in edgectl. Exit code 70 (EX_SOFTWARE). */
export class InternalError extends EdgeError {
  constructor(message: string, opts: { cause?: unknown } = {}) {
    super('INTERNAL', message, {
      ...opts,
      hint: 'this is a bug in edgectl: please report it with the command and its --output json',
      exitCode: 70,
    });
  }
}
