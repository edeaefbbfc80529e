/** The yargs adapter for `edgectl lab`: a robot site in network namespaces on this machine. */
import type { Argv, CommandModule } from 'yargs';
import type { GlobalArgs } from '../main.ts';
import type { Io } from '../output.ts';

interface LabArgs extends GlobalArgs {
  action: 'up' | 'down' | 'status' | 'fault' | 'run';
  words: string[];
  site: string;
  robots: string;
  voters: string;
  runtime: 'apiserver' | 'k3s';
  seed: string;
  subnet?: string;
  wait: boolean;
  report?: string;
  keep: boolean;
}

export const labCommand = (io: Io): CommandModule<GlobalArgs, GlobalArgs> => ({
  command: 'lab <action> [words..]',
  describe: 'A robot site in network namespaces: real agents, a real kube-apiserver, real faults (root)',
  builder: (y: Argv<GlobalArgs>) =>
    y
      .positional('action', {
        choices: ['up', 'down', 'status', 'fault', 'run'] as const,
        describe:
          'up: build the site and start every robot; down: remove everything the lab made; status: robots, roles and readiness; fault: inject a fault; run: run a scenario file',
      })
      .positional('words', { type: 'string', array: true, describe: 'fault words, or the scenario file' })
      .option('site', {
        type: 'string',
        default: 'lab',
        describe: 'Lab (site) name; several labs can run at once',
      })
      .option('robots', {
        type: 'string',
        requiresArg: true,
        default: '5',
        describe: 'up: number of robots (r1..rN)',
      })
      .option('voters', {
        type: 'string',
        requiresArg: true,
        default: '3',
        describe: 'up: voters among them (r1..rK)',
      })
      .option('runtime', {
        choices: ['apiserver', 'k3s'] as const,
        default: 'apiserver' as const,
        describe: 'up: control plane a leader runs (k3s needs a k3s binary on PATH)',
      })
      .option('seed', {
        type: 'string',
        requiresArg: true,
        default: '1',
        describe: 'up: seed recorded with the lab',
      })
      .option('subnet', {
        type: 'string',
        describe: 'up/run: first three octets of the site subnet (default 10.77.1)',
      })
      .option('wait', {
        type: 'boolean',
        default: true,
        describe: 'up: wait until one leader serves and every robot is Ready',
      })
      .option('report', {
        type: 'string',
        describe: 'run: write report.json, report.md, timeline.svg and logs here',
      })
      .option('keep', { type: 'boolean', default: false, describe: 'run: leave the lab up afterwards' })
      .example('$0 lab up --robots 3 --voters 3', 'Three robots; waits for the site to form')
      .example('$0 lab status', 'Roles, term, control plane and Node readiness per robot')
      .example('$0 lab fault power-off leader', 'Power loss of whichever robot leads now')
      .example('$0 lab fault loss all 10', '10% random loss on every link (nftables numgen)')
      .example('$0 lab fault partition r1,r2/r3,r4,r5', 'Split the Wi-Fi in two')
      .example('$0 lab fault heal', 'Undo network faults and bring every link back')
      .example(
        '$0 lab run lab/scenarios/leader-power-loss.yaml --report /tmp/report',
        'Run a scenario and write its report',
      )
      .example(
        '$0 lab down',
        'Remove every namespace, link, nft table and process of the lab',
      ) as unknown as Argv<GlobalArgs>,
  handler: async (argv) => {
    const a = argv as unknown as LabArgs;
    const [{ runLab }, { wholeNumber }] = await Promise.all([import('../ops/lab.ts'), import('../flags.ts')]);
    await runLab(
      {
        action: a.action,
        words: (a.words ?? []).map(String),
        site: a.site,
        robots: wholeNumber(a.robots, '--robots', 1, 20, 'a number of robots'),
        voters: wholeNumber(a.voters, '--voters', 1, 7, 'a number of voters'),
        runtime: a.runtime,
        seed: wholeNumber(a.seed, '--seed', 0, 0xffff_ffff, 'a 32-bit seed'),
        subnet: a.subnet,
        wait: a.wait,
        report: a.report,
        keep: a.keep,
        output: a.output,
      },
      io,
    );
  },
});
