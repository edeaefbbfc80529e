/** The yargs adapter for `edgectl completion bash|zsh`; the scripts are made in cli/completion.ts. */
import type { Argv, CommandModule } from 'yargs';
import type { GlobalArgs } from '../main.ts';
import type { Io } from '../output.ts';

export const completionCommand = (io: Io): CommandModule<GlobalArgs, GlobalArgs> => ({
  command: 'completion <shell>',
  describe: 'Print a shell completion script for edgectl',
  builder: (y: Argv<GlobalArgs>) =>
    y
      .positional('shell', { choices: ['bash', 'zsh'] as const, describe: 'The shell to complete in' })
      .example('source <($0 completion bash)', 'Complete edgectl in this bash')
      .example(
        '$0 completion zsh > "${fpath[1]}/_edgectl"',
        'Install it for zsh',
      ) as unknown as Argv<GlobalArgs>,
  handler: async (argv) => {
    const [{ main }, { completionTree, bashScript, zshScript }] = await Promise.all([
      import('../main.ts'),
      import('../completion.ts'),
    ]);
    const tree = await completionTree(async (args) => {
      const text: string[] = [];
      await main([...args, '--help'], { out: (t) => text.push(t), err: (t) => text.push(t) });
      return text.join('\n');
    });
    const shell = (argv as unknown as { shell: 'bash' | 'zsh' }).shell;
    io.out(shell === 'bash' ? bashScript(tree) : zshScript(tree));
  },
});
