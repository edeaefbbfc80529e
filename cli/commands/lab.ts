/**
 * The yargs adapter for `edgectl lab`: a robot site in network namespaces on this machine. Each
 * action is its own subcommand, so its --help lists only its own flags.
 */
import type { Argv, CommandModule } from 'yargs';
import type { GlobalArgs } from '../main.ts';
import type { Io } from '../output.ts';

type Action = 'up' | 'down' | 'status' | 'fault' | 'run';

interface LabArgs extends GlobalArgs {
  words?: string[];
  file?: string;
  site: string;
  robots?: string;
  voters?: string;
  witnesses?: string;
  allowNoFailover?: boolean;
  runtime?: 'apiserver' | 'k3s';
  node?: 'real' | 'lite';
  seed?: string;
  subnet?: string;
  wait?: boolean;
  report?: string;
  keep?: boolean;
}

function site<T>(y: Argv<T>): Argv<T> {
  return y.option('site', {
    type: 'string',
    requiresArg: true,
    default: 'lab',
    describe: 'Lab (site) name; several labs can run at once',
  }) as Argv<T>;
}

function subnet<T>(y: Argv<T>): Argv<T> {
  return y.option('subnet', {
    type: 'string',
    requiresArg: true,
    describe: 'First three octets of the site subnet (default 10.77.1)',
  }) as Argv<T>;
}

function action(
  io: Io,
  name: Action,
  command: string,
  describe: string,
  builder: (y: Argv<GlobalArgs>) => Argv<GlobalArgs>,
): CommandModule<GlobalArgs, GlobalArgs> {
  return {
    command,
    describe,
    builder: (y) => builder(site(y)),
    handler: async (argv) => {
      const a = argv as unknown as LabArgs;
      const [{ runLab }, { wholeNumber }] = await Promise.all([
        import('../ops/lab.ts'),
        import('../flags.ts'),
      ]);
      await runLab(
        {
          action: name,
          words: (a.file !== undefined ? [a.file] : (a.words ?? [])).map(String),
          site: a.site,
          robots: wholeNumber(a.robots ?? '5', '--robots', 1, 20, 'a number of robots'),
          voters: wholeNumber(a.voters ?? '3', '--voters', 1, 7, 'a number of voters'),
          witnesses: wholeNumber(a.witnesses ?? '0', '--witnesses', 0, 6, 'a number of witnesses'),
          allowNoFailover: a.allowNoFailover ?? false,
          runtime: a.runtime ?? 'apiserver',
          node: a.node ?? 'real',
          seed: wholeNumber(a.seed ?? '1', '--seed', 0, 0xffff_ffff, 'a 32-bit seed'),
          subnet: a.subnet,
          wait: a.wait ?? true,
          report: a.report,
          keep: a.keep ?? false,
          output: a.output,
        },
        io,
      );
    },
  };
}

export const labCommand = (io: Io): CommandModule<GlobalArgs, GlobalArgs> => ({
  command: 'lab',
  describe: 'A robot site in network namespaces: real agents, a real kube-apiserver, real faults (root)',
  builder: (y: Argv<GlobalArgs>) =>
    y
      .command(
        action(io, 'up', 'up', 'Build the site and start every robot', (u) =>
          subnet(u)
            .option('robots', {
              type: 'string',
              requiresArg: true,
              default: '5',
              describe: 'Robots (r1..rN)',
            })
            .option('voters', {
              type: 'string',
              requiresArg: true,
              default: '3',
              describe: 'Voters among them (r1..rK)',
            })
            .option('witnesses', {
              type: 'string',
              requiresArg: true,
              default: '0',
              describe: 'Witnesses w1..wN beside the robots, each in its own namespace (vote, never lead)',
            })
            .option('allow-no-failover', {
              type: 'boolean',
              default: false,
              describe: 'Accept 2 voters without a witness (the site cannot survive losing either)',
            })
            .option('runtime', {
              choices: ['apiserver', 'k3s'] as const,
              default: 'apiserver' as const,
              describe: 'Control plane a leader runs (k3s needs a k3s binary on PATH)',
            })
            .option('node', {
              choices: ['real', 'lite'] as const,
              default: 'real' as const,
              describe:
                'What each robot runs: real = containerd + kubelet + Multus/Whereabouts (needs sudo bash lab/node/build.sh once); lite = the lab kubelet, no pods (big sites, fast tests)',
            })
            .option('seed', {
              type: 'string',
              requiresArg: true,
              default: '1',
              describe: 'Seed recorded with the lab',
            })
            .option('wait', {
              type: 'boolean',
              default: true,
              describe: 'Wait until one leader serves and every robot is Ready',
            })
            .example('$0 lab up --robots 3 --voters 3', 'Three robots; waits for the site to form')
            .example('$0 lab up --robots 2 --voters 2 --witnesses 1', 'Two robots and a witness')
            .example('$0 lab up --robots 12 --node lite', 'A big site of lab kubelets (no pods)'),
        ),
      )
      .command(
        action(
          io,
          'down',
          'down',
          'Remove every namespace, link, nft table and process of the lab',
          (d) => d,
        ),
      )
      .command(
        action(io, 'status', 'status', 'Robots, roles, term, control plane and Node readiness', (s) =>
          s.example('$0 lab status', 'Roles, term, control plane and Node readiness per robot'),
        ),
      )
      .command(
        action(io, 'fault', 'fault <words..>', 'Inject a fault now', (f) =>
          f
            .positional('words', {
              type: 'string',
              array: true,
              describe: 'The fault, e.g. power-off leader',
            })
            .example('$0 lab fault power-off leader', 'Power loss of whichever robot leads now')
            .example('$0 lab fault loss all 10', '10% random loss on every link (nftables numgen)')
            .example('$0 lab fault partition r1,r2/r3,r4,r5', 'Split the Wi-Fi in two')
            .example('$0 lab fault heal', 'Undo network faults and bring every link back'),
        ),
      )
      .command(
        action(io, 'run', 'run <file>', 'Run a scenario file and judge it', (r) =>
          subnet(r)
            .positional('file', { type: 'string', describe: 'The scenario (lab/scenarios/*.yaml)' })
            .option('seed', {
              type: 'string',
              requiresArg: true,
              default: '1',
              describe: 'Seed recorded with the run',
            })
            .option('report', {
              type: 'string',
              requiresArg: true,
              describe: 'Write report.json, report.md, timeline.svg and logs here',
            })
            .option('keep', { type: 'boolean', default: false, describe: 'Leave the lab up afterwards' })
            .example(
              '$0 lab run lab/scenarios/leader-power-loss.yaml --report /tmp/report',
              'Run a scenario and write its report',
            ),
        ),
      )
      .demandCommand(1, 'Name the action: up, down, status, fault or run') as unknown as Argv<GlobalArgs>,
  handler: () => {},
});
