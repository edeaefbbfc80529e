/** The yargs adapter for `edgectl inventory init|validate`; the work is in cli/ops/inventory.ts. */
import type { Argv, CommandModule } from 'yargs';
import { UsageError } from '../../agent/errors.ts';
import type { GlobalArgs } from '../main.ts';
import type { Io } from '../output.ts';

export const inventoryCommand = (io: Io): CommandModule<GlobalArgs, GlobalArgs> => ({
  command: 'inventory <action>',
  describe: 'Write or check a site inventory (site.yaml): the robots and how to reach them',
  builder: (y: Argv<GlobalArgs>) =>
    y
      .positional('action', {
        choices: ['init', 'validate'] as const,
        describe: 'init: write a commented example; validate: check one (and its key and bundle files)',
      })
      .option('out', { type: 'string', describe: 'init: the file to write (default: print it)' })
      .option('force', { type: 'boolean', default: false, describe: 'init: replace an existing --out file' })
      .option('file', { alias: 'f', type: 'string', describe: 'validate: the inventory to check' })
      .example('$0 inventory init --out site.yaml', 'Start an inventory from the commented example')
      .example('$0 inventory validate -f site.yaml', 'Check it: every problem at once, each with its fix')
      .example('$0 inventory validate -f site.yaml --output json', 'The robots and their roles, as JSON')
      .check((a) => {
        if (a.action === 'validate' && !a.file)
          throw new UsageError('BAD_ARGUMENTS', 'inventory validate needs -f <site.yaml>', {
            hint: 'name the inventory to check: edgectl inventory validate -f site.yaml',
          });
        return true;
      }) as unknown as Argv<GlobalArgs>,
  handler: async (argv) => {
    const a = argv as unknown as GlobalArgs & {
      action: 'init' | 'validate';
      out?: string;
      force: boolean;
      file?: string;
    };
    const { runInventoryInit, runInventoryValidate } = await import('../ops/inventory.ts');
    if (a.action === 'init')
      runInventoryInit(
        { ...(a.out === undefined ? {} : { out: a.out }), force: a.force, output: a.output },
        io,
      );
    else await runInventoryValidate({ file: a.file!, output: a.output }, io);
  },
});
