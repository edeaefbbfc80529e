/** The yargs adapter for `edgectl agent run`. */
import type { Argv, CommandModule } from 'yargs';
import type { GlobalArgs } from '../main.ts';
import type { Io } from '../output.ts';

export const agentCommand = (_io: Io): CommandModule<GlobalArgs, GlobalArgs> => ({
  command: 'agent <action>',
  describe: 'Run the robot agent (the daemon systemd starts)',
  builder: (y: Argv<GlobalArgs>) =>
    y
      .positional('action', { choices: ['run'] as const, describe: 'run: start the agent in the foreground' })
      .option('config', {
        type: 'string',
        default: '/etc/edgectl/agent.yaml',
        describe: 'Agent config file (templates/agent.yaml)',
      })
      .example(
        '$0 agent run --config /etc/edgectl/agent.yaml',
        'Run the agent; SIGTERM hands leadership over and stops it',
      ) as unknown as Argv<GlobalArgs>,
  handler: async (argv) => {
    const [{ runAgent }, { ROBOT_RUNTIMES }, { loadAgentConfig }] = await Promise.all([
      import('../../agent/run.ts'),
      import('../../agent/runtimes.ts'),
      import('../../agent/config.ts'),
    ]);
    // The robot's agent, with the robot's runtimes (agent/main.ts from the sources).
    await runAgent({
      config: (argv as unknown as { config: string }).config,
      loadConfig: loadAgentConfig,
      runtimes: ROBOT_RUNTIMES,
      entryName: 'edgectl agent run',
    });
  },
});

/** `edgectl witness run`: the agent as a witness, which votes but never leads or runs k3s. */
export const witnessCommand = (_io: Io): CommandModule<GlobalArgs, GlobalArgs> => ({
  command: 'witness <action>',
  describe: "Run a witness: a voter that breaks ties (a two-robot site's third vote) and runs no k3s",
  builder: (y: Argv<GlobalArgs>) =>
    y
      .positional('action', {
        choices: ['run'] as const,
        describe: 'run: start the witness in the foreground',
      })
      .option('config', {
        type: 'string',
        default: '/etc/edgectl/agent.yaml',
        describe: 'Agent config file whose node is listed in witnesses (controlPlane.runtime: none)',
      })
      .example(
        '$0 witness run --config /etc/edgectl/agent.yaml',
        "Run this box as the site's witness",
      ) as unknown as Argv<GlobalArgs>,
  handler: async (argv) => {
    const [{ runAgent }, { ROBOT_RUNTIMES }, { loadWitnessConfig }] = await Promise.all([
      import('../../agent/run.ts'),
      import('../../agent/runtimes.ts'),
      import('../../agent/config.ts'),
    ]);
    await runAgent({
      config: (argv as unknown as { config: string }).config,
      loadConfig: loadWitnessConfig,
      runtimes: ROBOT_RUNTIMES,
      entryName: 'edgectl witness run',
    });
  },
});
