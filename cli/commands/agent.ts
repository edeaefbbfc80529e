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
    const [{ runAgent }, { loadAgentConfig }] = await Promise.all([
      import('../../agent/run.ts'),
      import('../../agent/config.ts'),
    ]);
    // The robot's agent: the k3s runtime only, as agent/main.ts registers it.
    await runAgent({
      config: (argv as unknown as { config: string }).config,
      loadConfig: loadAgentConfig,
      entryName: 'edgectl agent run',
      runtimes: {
        k3s: async (ctx) =>
          (await import('../../agent/control-plane/k3s-runtime.ts')).makeK3sControlPlane(ctx),
      },
    });
  },
});
