/**
 * The yargs adapter for `edgectl inventory init|validate`; the work is in cli/ops/inventory.ts.
 * Each action is its own subcommand, so its --help lists only its own flags.
 */
import type { Argv, CommandModule } from 'yargs';
import type { GlobalArgs } from '../main.ts';
import type { Io } from '../output.ts';

const initCommand = (io: Io): CommandModule<GlobalArgs, GlobalArgs> => ({
  command: 'init',
  describe: 'Write a commented example inventory',
  builder: (y: Argv<GlobalArgs>) =>
    y
      .option('out', { type: 'string', describe: 'The file to write (default: print it)' })
      .option('force', { type: 'boolean', default: false, describe: 'Replace an existing --out file' })
      .example(
        '$0 inventory init --out site.yaml',
        'Start an inventory from the commented example',
      ) as unknown as Argv<GlobalArgs>,
  handler: async (argv) => {
    const a = argv as unknown as GlobalArgs & { out?: string; force: boolean };
    const { runInventoryInit } = await import('../ops/inventory.ts');
    runInventoryInit(
      { ...(a.out === undefined ? {} : { out: a.out }), force: a.force, output: a.output },
      io,
    );
  },
});

const validateCommand = (io: Io): CommandModule<GlobalArgs, GlobalArgs> => ({
  command: 'validate',
  describe: 'Check an inventory, its key files and its bundle: every problem at once',
  builder: (y: Argv<GlobalArgs>) =>
    y
      .option('file', { alias: 'f', type: 'string', demandOption: true, describe: 'The inventory to check' })
      .example('$0 inventory validate -f site.yaml', 'Check it: every problem at once, each with its fix')
      .example(
        '$0 inventory validate -f site.yaml --output json',
        'The robots and their roles, as JSON',
      ) as unknown as Argv<GlobalArgs>,
  handler: async (argv) => {
    const a = argv as unknown as GlobalArgs & { file: string };
    const { runInventoryValidate } = await import('../ops/inventory.ts');
    await runInventoryValidate({ file: a.file, output: a.output }, io);
  },
});

export const inventoryCommand = (io: Io): CommandModule<GlobalArgs, GlobalArgs> => ({
  command: 'inventory',
  describe: 'Write or check a site inventory (site.yaml): the robots and how to reach them',
  builder: (y: Argv<GlobalArgs>) =>
    y
      .command(initCommand(io))
      .command(validateCommand(io))
      .demandCommand(1, 'Name the action: init or validate') as unknown as Argv<GlobalArgs>,
  handler: () => {},
});
