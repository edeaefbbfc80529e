/** The yargs adapter for `edgectl inventory` (stub: replaced by the issue that builds it). */
import type { Argv, CommandModule } from 'yargs';
import { UsageError } from '../../agent/errors.ts';
import type { GlobalArgs } from '../main.ts';
import type { Io } from '../output.ts';

export const inventoryCommand = (_io: Io): CommandModule<GlobalArgs, GlobalArgs> => ({
  command: 'inventory',
  describe: false,
  builder: (y: Argv<GlobalArgs>) => y,
  handler: () => {
    throw new UsageError('NOT_BUILT', 'edgectl inventory is not built yet');
  },
});
