/** The yargs adapter for `edgectl lab` (stub: replaced by the issue that builds it). */
import type { Argv, CommandModule } from 'yargs';
import { UsageError } from '../../agent/errors.ts';
import type { GlobalArgs } from '../main.ts';
import type { Io } from '../output.ts';

export const labCommand = (_io: Io): CommandModule<GlobalArgs, GlobalArgs> => ({
  command: 'lab',
  describe: false,
  builder: (y: Argv<GlobalArgs>) => y,
  handler: () => {
    throw new UsageError('NOT_BUILT', 'edgectl lab is not built yet');
  },
});
