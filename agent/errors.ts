/**
 * EdgeError is the one base class for every error edgectl expects. It carries a stable `code`
 * (documented in docs/operations.md; scripts may match on it), a `hint` that names the fix, and the
 * standard `cause`. Errors become exit codes and messages in two places only: cli/main.ts for
 * commands, and agentMain (agent/run.ts) for the agent's entries. Everything else throws and never
 * calls process.exit.
 */
export class EdgeError extends Error {
  readonly code: string;
  readonly hint: string | undefined;
  /** Process exit code the CLI uses for this error class. */
  readonly exitCode: number;
  /** The field or flag at fault, when there is one (`--duration`, `robots[2].address`). */
  readonly path: string | null;

  constructor(
    code: string,
    message: string,
    opts: { hint?: string; cause?: unknown; exitCode?: number; path?: string } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    this.code = code.startsWith('EDGE_') ? code : `EDGE_${code}`;
    this.hint = opts.hint;
    this.exitCode = opts.exitCode ?? 1;
    this.path = opts.path ?? null;
  }

  /**
   * details lists what is wrong, one entry per problem: `path` names the field or flag at fault
   * (null when the error is about no one field), `hint` the fix. Subclasses with several problems
   * override it.
   */
  details(): ErrorDetail[] {
    return [{ path: this.path, message: this.message, ...(this.hint ? { hint: this.hint } : {}) }];
  }

  /** toJSON is what `--output json` prints for an error: `errors` is for scripts to walk. */
  toJSON(): ErrorJson {
    const out: ErrorJson = { code: this.code, message: this.message, errors: this.details() };
    if (this.hint) out.hint = this.hint;
    if (this.cause !== undefined)
      out.cause = this.cause instanceof Error ? this.cause.message : String(this.cause);
    return out;
  }
}

/** One problem of an error, as `--output json` lists it. */
export interface ErrorDetail {
  readonly path: string | null;
  readonly message: string;
  readonly hint?: string;
}

export interface ErrorJson {
  code: string;
  message: string;
  hint?: string;
  cause?: string;
  errors: ErrorDetail[];
}

// A problem reads `<path>: <what is wrong>[: <the fix>]`, e.g.
// `robots[1].ssh.keyFile: cannot read it: check the path`. The path is a dotted field path, maybe
// with indexes and a parenthesised note (`robots[0] (vac-1) agent config`); the fix, when there is
// one, is the last clause and starts with a verb that tells the user what to do.
const PROBLEM_PATH =
  /^((?:\(top level\)|[A-Za-z_$][\w$-]*(?:\[\d+\])*(?:\.[A-Za-z_$][\w$-]*(?:\[\d+\])*)*)(?: \([^)]*\))*(?: agent config)?): /;
const FIX =
  /: ((?:add|remove|set|use|write|list|fix|give|rename|change|run|make|create|pick|choose|put|raise|lower|drop|move|delete|quote|replace|split|check|keep|name|point|install|free|shorten|spell|mark|declare|leave|pass|start) .*)$/s;

/** splitProblem turns one problem line into {path, message, hint}. */
export function splitProblem(problem: string, fallbackHint?: string): ErrorDetail {
  const p = PROBLEM_PATH.exec(problem);
  const path = p ? p[1]! : null;
  let message = p ? problem.slice(p[0].length) : problem;
  const f = FIX.exec(message);
  const hint = f ? f[1]! : fallbackHint;
  if (f) message = message.slice(0, f.index);
  return { path, message, ...(hint ? { hint } : {}) };
}

/** UsageError: the command line or an input file is wrong. Exit code 2, like most Unix tools. */
export class UsageError extends EdgeError {
  constructor(code: string, message: string, opts: { hint?: string; cause?: unknown; path?: string } = {}) {
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

  override details(): ErrorDetail[] {
    return this.problems.map((p) => splitProblem(p, this.hint));
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
