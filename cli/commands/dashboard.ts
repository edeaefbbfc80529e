/** The yargs adapter for `edgectl dashboard`: a live web page of a site. */
import type { Argv, CommandModule } from 'yargs';
import type { GlobalArgs } from '../main.ts';
import type { Io } from '../output.ts';

interface DashboardArgs extends GlobalArgs {
  lab: boolean;
  file?: string;
  siteDir?: string;
  site: string;
  listen: string;
  faults: boolean;
  remote: boolean;
  tokenFile?: string;
}

export const dashboardCommand = (io: Io): CommandModule<GlobalArgs, GlobalArgs> => ({
  command: 'dashboard',
  describe: 'Serve a live web page of a site: robots, leader, links, timeline, workloads',
  builder: (y: Argv<GlobalArgs>) =>
    y
      .option('lab', { type: 'boolean', default: false, describe: 'Show a lab site on this machine' })
      .option('site', { type: 'string', default: 'lab', describe: 'With --lab: the lab (site) name' })
      .option('file', {
        alias: 'f',
        type: 'string',
        describe: "A bootstrapped site's inventory: its robots are asked over SSH, as edgectl status -f does",
      })
      .option('site-dir', { type: 'string', describe: 'With -f: the site directory (known_hosts)' })
      .option('listen', {
        type: 'string',
        default: '127.0.0.1:7950',
        describe: 'host:port to serve on (loopback unless --remote)',
      })
      .option('faults', {
        type: 'boolean',
        default: false,
        describe: "With --lab: offer the lab's faults on the page (power, Wi-Fi, loss, partition, heal)",
      })
      .option('remote', {
        type: 'boolean',
        default: false,
        describe: 'Allow a non-loopback --listen address (needs --token-file)',
      })
      .option('token-file', {
        type: 'string',
        describe: 'A file holding the token every data request must carry (/?token=…)',
      })
      .example('$0 dashboard --lab', 'The lab site "lab", on http://127.0.0.1:7950/')
      .example('$0 dashboard -f site.yaml', 'A bootstrapped site, its robots asked over SSH')
      .example('sudo $0 dashboard --lab --faults', 'The same, with buttons that drive lab faults')
      .example(
        '$0 dashboard --lab --listen 0.0.0.0:7950 --remote --token-file ~/.edgectl/dashboard.token',
        'Reachable from other machines, with a token',
      ) as unknown as Argv<GlobalArgs>,
  handler: async (argv) => {
    const { runDashboard } = await import('../ops/dashboard.ts');
    const a = argv as unknown as DashboardArgs;
    await runDashboard(
      {
        lab: a.lab,
        site: a.site,
        file: a.file,
        siteDir: a.siteDir,
        listen: a.listen,
        faults: a.faults,
        remote: a.remote,
        tokenFile: a.tokenFile,
        output: a.output,
      },
      io,
    );
  },
});
