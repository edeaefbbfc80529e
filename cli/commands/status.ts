/** The yargs adapter for `edgectl status`. */
import type { Argv, CommandModule } from 'yargs';
import type { GlobalArgs } from '../main.ts';
import type { Io } from '../output.ts';

export const statusCommand = (io: Io): CommandModule<GlobalArgs, GlobalArgs> => ({
  command: 'status',
  describe: "Show an agent's role, term, leader, members and control plane, or every robot of a site (-f)",
  builder: (y: Argv<GlobalArgs>) =>
    y
      .option('addr', {
        requiresArg: true,
        type: 'string',
        describe: "The agent's status endpoint (status.listen; default 127.0.0.1:7947)",
      })
      .option('file', {
        requiresArg: true,
        alias: 'f',
        type: 'string',
        describe:
          'Every robot of this inventory at once, asked over SSH (host keys as bootstrap verified them)',
      })
      .option('site-dir', {
        requiresArg: true,
        type: 'string',
        describe: "-f: the site directory with the site's known_hosts (default .edgectl/<site-id> beside it)",
      })
      .conflicts('file', 'addr')
      .example('$0 status', 'The local agent, as a table')
      .example('$0 status --addr 10.20.0.12:7947 --output json', 'Another agent, as JSON')
      .example(
        '$0 status -f site.yaml',
        'Every robot of the site, one line each',
      ) as unknown as Argv<GlobalArgs>,
  handler: async (argv) => {
    const a = argv as unknown as { addr?: string; file?: string; 'site-dir'?: string };
    const { runStatus, runSiteStatus } = await import('../ops/status.ts');
    if (a.file) await runSiteStatus({ file: a.file, siteDir: a['site-dir'], output: argv.output }, io);
    else await runStatus({ addr: a.addr ?? '127.0.0.1:7947', output: argv.output }, io);
  },
});
