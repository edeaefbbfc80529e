/**
 * `edgectl site <command>`: `ready` (cli/commands/bootstrap.ts), `apply` and `history`
 * (cli/ops/site-spec.ts). One yargs command with subcommands, so the three share the word `site`.
 */
import type { Argv, CommandModule } from 'yargs';
import type { GlobalArgs } from '../main.ts';
import type { Io } from '../output.ts';
import { siteReadyCommand, siteRotateKeysCommand } from './bootstrap.ts';

const addrOption = <T>(y: Argv<T>): Argv<T> =>
  y.option('addr', {
    type: 'string',
    default: '127.0.0.1:7947',
    describe: "Any robot agent's status endpoint (status.listen); a follower names the leader",
  }) as Argv<T>;

const siteApplyCommand = (io: Io): CommandModule<GlobalArgs, GlobalArgs> => ({
  command: 'apply',
  describe:
    'Propose a new site spec to the running site through its leader; it is committed in the site log and applied',
  builder: (y: Argv<GlobalArgs>) =>
    addrOption(y)
      .option('file', {
        alias: 'f',
        type: 'string',
        demandOption: true,
        describe: 'The inventory (its site: section) or a site spec file',
      })
      .option('dry-run', {
        type: 'boolean',
        default: false,
        describe: 'Show the diff against the committed spec and propose nothing',
      })
      .option('site-key', {
        type: 'string',
        describe: 'The site key that signs the request (default: <site dir>/site.key of the inventory)',
      })
      .option('site-dir', {
        type: 'string',
        describe: 'The local site directory; default .edgectl/<site-id> beside the inventory',
      })
      .example('$0 site apply -f site.yaml --dry-run', 'What would change, against the committed spec')
      .example(
        '$0 site apply -f site.yaml --addr 127.0.0.1:17947',
        'Through an SSH tunnel to a robot (ssh -L 17947:127.0.0.1:7947 robot)',
      ) as unknown as Argv<GlobalArgs>,
  handler: async (argv) => {
    const a = argv as unknown as GlobalArgs & {
      file: string;
      addr: string;
      'dry-run': boolean;
      'site-key'?: string;
      'site-dir'?: string;
    };
    const { runSiteApply } = await import('../ops/site-spec.ts');
    await runSiteApply(
      {
        file: a.file,
        addr: a.addr,
        dryRun: a['dry-run'],
        siteKey: a['site-key'],
        siteDir: a['site-dir'],
        output: a.output,
      },
      io,
    );
  },
});

const siteHistoryCommand = (io: Io): CommandModule<GlobalArgs, GlobalArgs> => ({
  command: 'history',
  describe: 'List the site spec versions committed in the site log, with what changed',
  builder: (y: Argv<GlobalArgs>) =>
    addrOption(y)
      .example('$0 site history', 'Through the local agent')
      .example('$0 site history --output json', 'As JSON') as unknown as Argv<GlobalArgs>,
  handler: async (argv) => {
    const a = argv as unknown as GlobalArgs & { addr: string };
    const { runSiteHistory } = await import('../ops/site-spec.ts');
    await runSiteHistory({ addr: a.addr, output: a.output }, io);
  },
});

export const siteCommand = (io: Io): CommandModule<GlobalArgs, GlobalArgs> => ({
  command: 'site <command>',
  describe:
    'A running site: wait for it (ready), change its spec (apply), list spec versions (history), rotate its keys (rotate-keys)',
  builder: (y: Argv<GlobalArgs>) =>
    y
      .command(siteReadyCommand(io))
      .command(siteApplyCommand(io))
      .command(siteHistoryCommand(io))
      .command(siteRotateKeysCommand(io))
      .demandCommand(
        1,
        'Name a site command: ready, apply, history or rotate-keys.',
      ) as unknown as Argv<GlobalArgs>,
  handler: () => {},
});
