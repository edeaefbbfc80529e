/** The yargs adapter for `edgectl status`. */
import type { Argv, CommandModule } from 'yargs';
import type { GlobalArgs } from '../main.ts';
import type { Io } from '../output.ts';

export const statusCommand = (io: Io): CommandModule<GlobalArgs, GlobalArgs> => ({
  command: 'status',
  describe: "Show this robot's agent: role, term, leader, members and control plane",
  builder: (y: Argv<GlobalArgs>) =>
    y
      .option('addr', {
        type: 'string',
        default: '127.0.0.1:7947',
        describe: "The agent's status endpoint (status.listen)",
      })
      .example('$0 status', 'The local agent, as a table')
      .example(
        '$0 status --addr 10.20.0.12:7947 --output json',
        'Another agent, as JSON',
      ) as unknown as Argv<GlobalArgs>,
  handler: async (argv) => {
    const { runStatus } = await import('../ops/status.ts');
    await runStatus({ addr: (argv as unknown as { addr: string }).addr, output: argv.output }, io);
  },
});
