/**
 * The yargs adapters for `edgectl bootstrap site`, `edgectl reset robot <name>` and
 * `edgectl uninstall site`; the work is in cli/ops/bootstrap.ts.
 */
import type { Argv, CommandModule } from 'yargs';
import type { GlobalArgs } from '../main.ts';
import type { Io } from '../output.ts';

interface PlanArgs extends GlobalArgs {
  file: string;
  'dry-run': boolean;
  'accept-new-host-keys': boolean;
  parallel: number;
  'site-dir'?: string;
  'sudo-password-file'?: string;
  recheck: boolean;
  yes?: boolean;
  robot?: string;
}

/** The options every plan-then-apply command shares. */
function planOptions<T>(y: Argv<T>): Argv<T> {
  return y
    .option('file', { alias: 'f', type: 'string', demandOption: true, describe: 'The inventory (site.yaml)' })
    .option('dry-run', {
      type: 'boolean',
      default: false,
      describe: 'Print the plan and touch nothing: no SSH, no site directory',
    })
    .option('accept-new-host-keys', {
      type: 'boolean',
      default: false,
      describe: "Record the host key of a robot the site's known_hosts has never seen (trust on first use)",
    })
    .option('parallel', { type: 'number', default: 4, describe: 'How many robots to work on at once' })
    .option('site-dir', {
      type: 'string',
      describe:
        'The local site directory (site key, known_hosts, state); default .edgectl/<site-id> beside the inventory',
    })
    .option('sudo-password-file', {
      type: 'string',
      describe: 'Read the sudo password (robots with sudo: password) from this file; default: prompt',
    })
    .option('recheck', {
      type: 'boolean',
      default: false,
      describe: 'Check every step on the robots again, even those recorded as done',
    }) as Argv<T>;
}

function options(a: PlanArgs) {
  return {
    file: a.file,
    dryRun: a['dry-run'],
    acceptNewHostKeys: a['accept-new-host-keys'],
    parallel: a.parallel,
    siteDir: a['site-dir'],
    sudoPasswordFile: a['sudo-password-file'],
    recheck: a.recheck,
    output: a.output,
  };
}

export const bootstrapCommand = (io: Io): CommandModule<GlobalArgs, GlobalArgs> => ({
  command: 'bootstrap <what>',
  describe: 'Install a site over SSH from an inventory: offline, host keys verified, resumable',
  builder: (y: Argv<GlobalArgs>) =>
    planOptions(y)
      .positional('what', { choices: ['site'] as const, describe: 'site: every robot of the inventory' })
      .example('$0 bootstrap site -f site.yaml --dry-run', 'Every file, command and service, per robot')
      .example('$0 bootstrap site -f site.yaml --dry-run --output json', 'The plan as a JSON artifact')
      .example(
        '$0 bootstrap site -f site.yaml --accept-new-host-keys',
        'First install: record the robots’ host keys',
      )
      .example(
        '$0 bootstrap site -f site.yaml --parallel 8 --output json',
        'Apply; NDJSON progress events',
      ) as unknown as Argv<GlobalArgs>,
  handler: async (argv) => {
    const { runBootstrapSite } = await import('../ops/bootstrap.ts');
    await runBootstrapSite(options(argv as unknown as PlanArgs), io);
  },
});

/** `edgectl reset robot <name>`: register in cli/main.ts next to bootstrapCommand. */
export const resetCommand = (io: Io): CommandModule<GlobalArgs, GlobalArgs> => ({
  command: 'reset robot <robot>',
  describe: 'Remove what bootstrap installed from one robot (agent, config, site key, state)',
  builder: (y: Argv<GlobalArgs>) =>
    planOptions(y)
      .positional('robot', { type: 'string', describe: 'The robot, by its inventory name' })
      .option('yes', { type: 'boolean', default: false, describe: 'Really do it (without --dry-run)' })
      .example('$0 reset robot vac-1 -f site.yaml --dry-run', 'What would be removed')
      .example('$0 reset robot vac-1 -f site.yaml --yes', 'Remove it') as unknown as Argv<GlobalArgs>,
  handler: async (argv) => {
    const a = argv as unknown as PlanArgs;
    const { runResetRobot } = await import('../ops/bootstrap.ts');
    await runResetRobot({ ...options(a), robot: a.robot!, yes: a.yes ?? false }, io);
  },
});

/** `edgectl uninstall site`: register in cli/main.ts next to bootstrapCommand. */
export const uninstallCommand = (io: Io): CommandModule<GlobalArgs, GlobalArgs> => ({
  command: 'uninstall site',
  describe: 'Remove what bootstrap installed from every robot of the inventory',
  builder: (y: Argv<GlobalArgs>) =>
    planOptions(y)
      .option('yes', { type: 'boolean', default: false, describe: 'Really do it (without --dry-run)' })
      .example('$0 uninstall site -f site.yaml --dry-run', 'What would be removed, per robot')
      .example(
        '$0 uninstall site -f site.yaml --yes --output json',
        'Remove it; NDJSON progress',
      ) as unknown as Argv<GlobalArgs>,
  handler: async (argv) => {
    const a = argv as unknown as PlanArgs;
    const { runUninstallSite } = await import('../ops/bootstrap.ts');
    await runUninstallSite({ ...options(a), yes: a.yes ?? false }, io);
  },
});
