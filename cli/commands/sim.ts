/** The yargs adapter for `edgectl sim`; the work is in cli/ops/sim.ts. */
import type { Argv, CommandModule } from 'yargs';
import { TIMING_PROFILES, type TimingProfileName } from '../../statecharts/timing.ts';
import type { GlobalArgs } from '../main.ts';
import type { Io } from '../output.ts';

export const simCommand = (io: Io): CommandModule<GlobalArgs, GlobalArgs> => ({
  command: 'sim',
  describe: 'Simulate a site election in-process with faults, and check its safety',
  builder: (y: Argv<GlobalArgs>) =>
    y
      .option('nodes', {
        requiresArg: true,
        type: 'string',
        default: '5',
        describe: 'Robots in the site (r1..rN)',
      })
      .option('voters', {
        requiresArg: true,
        type: 'string',
        describe: 'Server-capable voters: the first N robots (default: min(nodes, 5))',
      })
      .option('witnesses', {
        type: 'number',
        default: 0,
        describe: 'Witness voters w1..wN beside the robots: they vote but never lead',
      })
      .option('seed', {
        requiresArg: true,
        type: 'string',
        default: '1',
        describe: 'Seed of every random choice (0..4294967295): same seed, same run',
      })
      .option('duration', {
        requiresArg: true,
        type: 'string',
        default: '60s',
        describe: 'Simulated time to run, with its unit (at most 24h)',
      })
      .option('profile', {
        requiresArg: true,
        choices: Object.keys(TIMING_PROFILES),
        default: 'fleet',
        describe: 'Timing profile',
      })
      .option('loss', {
        requiresArg: true,
        type: 'string',
        default: '0',
        describe: 'Independent loss per datagram (0..1)',
      })
      .option('delay', {
        requiresArg: true,
        type: 'string',
        default: '2ms-10ms',
        describe: 'One-way delay range per datagram',
      })
      .option('dup', {
        requiresArg: true,
        type: 'string',
        default: '0',
        describe: 'Probability a datagram arrives twice',
      })
      .option('burst', {
        requiresArg: true,
        type: 'string',
        array: true,
        default: [] as string[],
        describe: 'Loss burst on every link: <length>@<start>[/<every>]',
      })
      .option('fault', {
        requiresArg: true,
        type: 'string',
        array: true,
        default: [] as string[],
        describe: 'Timed fault <fault>@<time> (docs/faults.md)',
      })
      .option('propose-every', {
        requiresArg: true,
        type: 'string',
        default: '5s',
        describe: 'Propose a site log entry this often (0: never)',
      })
      .option('trace', {
        type: 'boolean',
        default: false,
        describe: 'Include every election step in the output',
      })
      .example(
        '$0 sim --nodes 5 --seed 42 --duration 120s --loss 0.1 --burst 1.5s@30s --fault kill-leader@20s',
        'Kill the leader at 20 s with 10% loss and a 1.5 s loss burst at 30 s',
      )
      .example(
        '$0 sim --fault partition:r1,r2/r3,r4,r5@60s --fault heal@80s --output json',
        'Partition 2/3 and heal; print JSON',
      )
      .example(
        '$0 sim --nodes 2 --voters 2 --witnesses 1 --fault kill-leader@20s',
        'Two robots and a witness: the other robot takes over',
      )
      .example(
        '$0 sim --nodes 200 --voters 5 --duration 10m --loss 0.1',
        'A 200-robot site with 5 voters',
      ) as unknown as Argv<GlobalArgs>,
  handler: async (argv) => {
    const { runSim, wholeNumber, fraction, MAX_SEED } = await import('../ops/sim.ts');
    const a = argv as unknown as Record<string, unknown>;
    runSim(
      {
        nodes: wholeNumber(a.nodes, '--nodes', 1, 1000, 'a number of robots'),
        voters:
          a.voters === undefined
            ? undefined
            : wholeNumber(a.voters, '--voters', 0, 1000, 'a number of voters'),
        witnesses: wholeNumber(a.witnesses, '--witnesses', 0, 6, 'a number of witnesses'),
        seed: wholeNumber(a.seed, '--seed', 0, MAX_SEED, 'a 32-bit seed'),
        duration: a.duration as string,
        loss: fraction(a.loss, '--loss'),
        delay: a.delay as string,
        dup: fraction(a.dup, '--dup'),
        burst: a.burst as string[],
        fault: a.fault as string[],
        profile: a.profile as TimingProfileName,
        proposeEvery: a.proposeEvery as string,
        trace: a.trace as boolean,
        output: argv.output,
      },
      io,
    );
  },
});
