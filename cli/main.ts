/**
 * The edgectl command line. This is the one place where errors become exit codes and messages
 * (docs/operations.md lists the codes): commands throw EdgeError subclasses and never exit.
 */
import yargs from 'yargs';
import { EdgeError, InternalError, UsageError, type ErrorDetail } from '../agent/errors.ts';
import { agentCommand, witnessCommand } from './commands/agent.ts';
import { bootstrapCommand, resetCommand, robotCommand, uninstallCommand } from './commands/bootstrap.ts';
import { completionCommand } from './commands/completion.ts';
import { dashboardCommand } from './commands/dashboard.ts';
import { inventoryCommand } from './commands/inventory.ts';
import { labCommand } from './commands/lab.ts';
import { renderCommand } from './commands/render.ts';
import { simCommand } from './commands/sim.ts';
import { siteCommand } from './commands/site.ts';
import { statusCommand } from './commands/status.ts';
import { OUTPUT_FORMATS, processIo, type Io, type OutputFormat } from './output.ts';

export interface GlobalArgs {
  output: OutputFormat;
  quiet: boolean;
}

export const VERSION = '0.1.0';

/**
 * normalizeArgs spells the output flag the one way yargs reads it: `-ojson` and `-o=json` (which
 * yargs would split into the short flags -o -j -s -o -n) become `--output json`.
 */
export function normalizeArgs(args: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--') return [...out, ...args.slice(i)];
    const m = /^-o=?(.+)$/.exec(a);
    out.push(...(m ? ['--output', m[1]!] : [a]));
  }
  return out;
}

/** outputFromArgs: the format errors are printed in, known before (and even if) parsing fails. */
function outputFromArgs(args: readonly string[]): OutputFormat {
  let output: OutputFormat = 'table';
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--') break;
    const value = a === '--output' || a === '-o' ? args[i + 1] : /^--output=(.*)$/.exec(a)?.[1];
    if (value === 'json' || value === 'table') output = value;
  }
  return output;
}

/** ArgumentsError: yargs refused the command line; each unknown flag is its own entry in JSON. */
class ArgumentsError extends UsageError {
  constructor(message: string) {
    super('BAD_ARGUMENTS', message, { hint: 'run the command with --help to see its options and examples' });
  }

  override details(): ErrorDetail[] {
    const unknown = /^Unknown arguments?: (.+)$/.exec(this.message);
    if (!unknown) return super.details();
    return unknown[1]!.split(', ').map((name) => ({
      path: name.length === 1 ? `-${name}` : `--${name}`,
      message: `unknown flag`,
      hint: this.hint!,
    }));
  }
}

/** main runs the CLI and returns the process exit code. */
export async function main(rawArgs: readonly string[], io: Io = processIo): Promise<number> {
  const args = normalizeArgs(rawArgs);
  const output = outputFromArgs(args);
  let quiet = args.includes('--quiet') || args.includes('-q');
  // Commands write through this: --quiet silences their progress and notes, never main's errors.
  const commandIo: Io = {
    out: (t) => io.out(t),
    err: (t) => {
      if (!quiet) io.err(t);
    },
    get live() {
      return quiet ? null : (io.live ?? null);
    },
  };
  const cli = yargs([...args])
    .scriptName('edgectl')
    .usage(
      '$0 <command> [options]\n$0 --version\n\nTurn a fleet of robots at a site into a self-healing k3s cluster.',
    )
    .option('output', {
      alias: 'o',
      choices: OUTPUT_FORMATS,
      default: 'table' as OutputFormat,
      global: true,
      describe: 'Output format (also -ojson)',
    })
    .option('quiet', {
      alias: 'q',
      type: 'boolean',
      default: false,
      global: true,
      describe: 'Print only results and errors: no progress, no notes',
    })
    .middleware((argv) => {
      quiet = argv.quiet as boolean;
    })
    .command(agentCommand(commandIo))
    .command(witnessCommand(commandIo))
    .command(simCommand(commandIo))
    .command(statusCommand(commandIo))
    .command(labCommand(commandIo))
    .command(renderCommand(commandIo))
    .command(inventoryCommand(commandIo))
    .command(bootstrapCommand(commandIo))
    .command(resetCommand(commandIo))
    .command(uninstallCommand(commandIo))
    .command(siteCommand(commandIo))
    .command(robotCommand(commandIo))
    .command(dashboardCommand(commandIo))
    .command(completionCommand(commandIo))
    .demandCommand(1, 'Name a command: the commands are listed above.')
    .strict()
    .recommendCommands()
    // The version is edgectl's, not a subcommand's: `edgectl --version` only (handled below).
    .version(false)
    .help()
    .alias('h', 'help')
    .wrap(Math.min(110, process.stdout.columns || 110))
    .exitProcess(false)
    // yargs's own errors (unknown flag, bad choice) become a UsageError; throwing stops the handler.
    .fail((msg, err) => {
      if (err) throw err;
      throw new ArgumentsError(msg);
    });
  try {
    if (
      args.some((a) => a === '--version' || a === '-V') &&
      args.every((a) => a === '--version' || a === '-V' || /^--output$|^json$|^table$/.test(a))
    ) {
      io.out(output === 'json' ? JSON.stringify({ version: VERSION }) : VERSION);
      return 0;
    }
    if (args.filter((a) => !/^(--output|json|table|--quiet|-q)$/.test(a)).length === 0) {
      // No command at all: show the list the message points to.
      io.err(await cli.getHelp());
      io.err('');
    }
    // yargs hands its own output (--help) to this callback rather than printing it, so it goes
    // through io like everything else.
    await cli.parseAsync(args, {}, (_err, _argv, text) => {
      if (text) io.out(text);
    });
    return 0;
  } catch (e) {
    // yargs's own parse errors (YError: a flag without its value, …) are the user's, like .fail's.
    const err = e instanceof Error && e.name === 'YError' ? new ArgumentsError(e.message) : toEdgeError(e);
    if (output === 'json') io.err(JSON.stringify({ error: err.toJSON() }));
    else {
      io.err(`edgectl: ${err.message}${err.hint ? `\n  hint: ${err.hint}` : ''}`);
      if (err instanceof InternalError && e instanceof Error && e.stack) io.err(e.stack);
    }
    return err.exitCode;
  }
}

/**
 * toEdgeError: what a command threw, as the error the CLI reports. A failed system call is what
 * the machine refused (exit 1, naming the path), not a bug; anything else unexpected is one (70).
 */
export function toEdgeError(e: unknown): EdgeError {
  if (e instanceof EdgeError) return e;
  if (isSystemError(e)) return systemError(e);
  return new InternalError(e instanceof Error ? e.message : String(e), { cause: e });
}

/** A failed system call (a file, a socket): what the machine refused, not a bug in edgectl. */
function isSystemError(e: unknown): e is NodeJS.ErrnoException & { syscall: string; dest?: string } {
  return (
    e instanceof Error &&
    typeof (e as NodeJS.ErrnoException).code === 'string' &&
    /^E[A-Z0-9]+$/.test((e as NodeJS.ErrnoException).code!) &&
    typeof (e as NodeJS.ErrnoException).syscall === 'string'
  );
}

function systemError(e: NodeJS.ErrnoException & { syscall: string; dest?: string }): EdgeError {
  const where = e.path ? ` ${e.path}${e.dest ? ` -> ${e.dest}` : ''}` : '';
  return new EdgeError('SYSTEM', `${e.syscall}${where} failed: ${e.code}`, {
    hint: e.path
      ? `check ${e.path}: that it exists, is what the command expects, and that this user may use it`
      : 'check the machine (free ports, file handles, permissions) and run the command again',
    cause: e,
  });
}
