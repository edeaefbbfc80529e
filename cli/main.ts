/**
 * The edgectl command line. This is the one place where errors become exit codes and messages
 * (docs/operations.md lists the codes): commands throw EdgeError subclasses and never exit.
 */
import yargs from 'yargs';
import { EdgeError, InternalError, UsageError } from '../agent/errors.ts';
import { agentCommand, witnessCommand } from './commands/agent.ts';
import { bootstrapCommand, resetCommand, robotCommand, uninstallCommand } from './commands/bootstrap.ts';
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
}

export const VERSION = '0.1.0';

/** main runs the CLI and returns the process exit code. */
export async function main(args: readonly string[], io: Io = processIo): Promise<number> {
  let output: OutputFormat =
    args.includes('json') && args.some((a) => a === '--output' || a === '-o') ? 'json' : 'table';
  try {
    await yargs([...args])
      .scriptName('edgectl')
      .usage('$0 <command> [options]\n\nTurn a fleet of robots at a site into a self-healing k3s cluster.')
      .option('output', {
        alias: 'o',
        choices: OUTPUT_FORMATS,
        default: 'table' as OutputFormat,
        global: true,
        describe: 'Output format',
      })
      .middleware((argv) => {
        output = argv.output as OutputFormat;
      })
      .command(agentCommand(io))
      .command(witnessCommand(io))
      .command(simCommand(io))
      .command(statusCommand(io))
      .command(labCommand(io))
      .command(renderCommand(io))
      .command(inventoryCommand(io))
      .command(bootstrapCommand(io))
      .command(resetCommand(io))
      .command(uninstallCommand(io))
      .command(siteCommand(io))
      .command(robotCommand(io))
      .command(dashboardCommand(io))
      .demandCommand(1, 'Name a command; see the list above.')
      .strict()
      .recommendCommands()
      .version(VERSION)
      .help()
      .alias('h', 'help')
      .wrap(Math.min(110, process.stdout.columns || 110))
      .exitProcess(false)
      // yargs's own errors (unknown flag, bad choice) become a UsageError; throwing stops the handler.
      .fail((msg, err) => {
        if (err) throw err;
        throw new UsageError('BAD_ARGUMENTS', msg, {
          hint: 'run the command with --help to see its options and examples',
        });
      })
      .parseAsync();
    return 0;
  } catch (e) {
    const err = toEdgeError(e);
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
