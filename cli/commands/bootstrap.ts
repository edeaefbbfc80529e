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
  wait?: boolean;
  'wait-timeout'?: number;
  kubeconfig?: string;
  'merge-kubeconfig'?: boolean;
}

/** The options of waiting for the site and writing its kubeconfig (bootstrap and site ready). */
function readyOptions<T>(y: Argv<T>): Argv<T> {
  return y
    .option('wait-timeout', {
      type: 'number',
      default: 300,
      describe: 'Seconds to wait for a leader and every robot Ready',
    })
    .option('kubeconfig', {
      type: 'string',
      describe: "Write the site's kubeconfig here (default <site dir>/kubeconfig)",
    })
    .option('merge-kubeconfig', {
      type: 'boolean',
      default: false,
      describe: 'Also merge it into ~/.kube/config (or $KUBECONFIG) as context edgectl-<site>',
    }) as Argv<T>;
}

function readyArgs(a: PlanArgs) {
  return {
    timeoutMs: (a['wait-timeout'] ?? 300) * 1000,
    kubeconfig: a.kubeconfig,
    mergeKubeconfig: a['merge-kubeconfig'] ?? false,
  };
}

/** The options every plan-then-apply command shares; `site ready` records no steps, so no --recheck. */
function planOptions<T>(y: Argv<T>, o: { recheck: boolean } = { recheck: true }): Argv<T> {
  const common = y
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
        'The local site directory (master secret, keys, known_hosts, state); default .edgectl/<site-id> beside the inventory',
    })
    .option('sudo-password-file', {
      type: 'string',
      describe: 'Read the sudo password (robots with sudo: password) from this file; default: prompt',
    });
  if (!o.recheck) return common as Argv<T>;
  return common.option('recheck', {
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
    readyOptions(planOptions(y))
      .option('wait', {
        type: 'boolean',
        default: true,
        describe:
          'After installing, wait for a leader and every robot Ready, and write the kubeconfig (systemd installs; --no-wait skips)',
      })
      .positional('what', { choices: ['site'] as const, describe: 'site: every robot of the inventory' })
      .option('robot', {
        type: 'string',
        describe:
          '--dry-run: show every step of this robot (all: of every robot); default: a table of robots × phases',
      })
      .example('$0 bootstrap site -f site.yaml --dry-run', 'The plan: robots × phases, with step counts')
      .example(
        '$0 bootstrap site -f site.yaml --dry-run --robot spot-1',
        'Every file, command and service of one robot',
      )
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
    const a = argv as unknown as PlanArgs;
    const { runBootstrapSite } = await import('../ops/bootstrap.ts');
    await runBootstrapSite({ ...options(a), showRobot: a.robot, wait: a.wait ?? true, ...readyArgs(a) }, io);
  },
});

/** `edgectl site rotate-keys`: every robot to the next key generation, with no restart. */
export const siteRotateKeysCommand = (io: Io): CommandModule<GlobalArgs, GlobalArgs> => ({
  command: 'rotate-keys',
  describe:
    'Move every robot to the next generation of its keys: three phases (accept, send, retire), agents reload, the leader stays',
  builder: (y: Argv<GlobalArgs>) =>
    planOptions(y)
      .example('$0 site rotate-keys -f site.yaml --dry-run', 'The three phases, per robot')
      .example(
        '$0 site rotate-keys -f site.yaml',
        'Rotate; a run that stops resumes at its phase',
      ) as unknown as Argv<GlobalArgs>,
  handler: async (argv) => {
    const a = argv as unknown as PlanArgs;
    const { runRotateKeys } = await import('../ops/bootstrap.ts');
    await runRotateKeys(options(a), io);
  },
});

/** `edgectl site ready`: wait for a bootstrapped site and write its kubeconfig (under cli/commands/site.ts). */
export const siteReadyCommand = (io: Io): CommandModule<GlobalArgs, GlobalArgs> => ({
  command: 'ready',
  describe: 'Wait until a bootstrapped site has a leader and every robot Ready; write its kubeconfig',
  builder: (y: Argv<GlobalArgs>) =>
    readyOptions(planOptions(y, { recheck: false }))
      .example('$0 site ready -f site.yaml', 'Wait, then write .edgectl/<site>/kubeconfig')
      .example('$0 site ready -f site.yaml --dry-run', 'What it would do, touching no robot')
      .example(
        '$0 site ready -f site.yaml --merge-kubeconfig',
        'Also add context edgectl-<site> to ~/.kube/config',
      ) as unknown as Argv<GlobalArgs>,
  handler: async (argv) => {
    const a = argv as unknown as PlanArgs;
    const { runSiteReady } = await import('../ops/bootstrap.ts');
    await runSiteReady(
      {
        file: a.file,
        siteDir: a['site-dir'],
        acceptNewHostKeys: a['accept-new-host-keys'],
        sudoPasswordFile: a['sudo-password-file'],
        dryRun: a['dry-run'],
        parallel: a.parallel,
        output: a.output,
        ...readyArgs(a),
      },
      io,
    );
  },
});

/** `edgectl reset robot <name>`: register in cli/main.ts next to bootstrapCommand. */
export const resetCommand = (io: Io): CommandModule<GlobalArgs, GlobalArgs> => ({
  command: 'reset robot <robot>',
  describe: 'Remove what bootstrap installed from one robot (agent, config, keys, state)',
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
      .option('robot', {
        type: 'string',
        describe:
          '--dry-run: show every step of this robot (all: of every robot); default: a table of robots × phases',
      })
      .example('$0 uninstall site -f site.yaml --dry-run', 'What would be removed, per robot')
      .example(
        '$0 uninstall site -f site.yaml --yes --output json',
        'Remove it; NDJSON progress',
      ) as unknown as Argv<GlobalArgs>,
  handler: async (argv) => {
    const a = argv as unknown as PlanArgs;
    const { runUninstallSite } = await import('../ops/bootstrap.ts');
    await runUninstallSite({ ...options(a), showRobot: a.robot, yes: a.yes ?? false }, io);
  },
});

/**
 * `edgectl robot add|remove <robot>`: change a running site by one learner. Each action is its own
 * subcommand, so its --help lists only its own flags.
 */
export const robotCommand = (io: Io): CommandModule<GlobalArgs, GlobalArgs> => ({
  command: 'robot',
  describe: 'Add a robot (a learner) to a running site, or remove one',
  builder: (y: Argv<GlobalArgs>) =>
    y
      .command({
        command: 'add <robot>',
        describe: 'Install a learner the inventory lists and wait until it is Ready',
        builder: (a: Argv<GlobalArgs>) =>
          readyOptions(planOptions(a))
            .positional('robot', { type: 'string', describe: 'The robot, as the inventory names it' })
            .option('wait', {
              type: 'boolean',
              default: true,
              describe: 'Wait until it is Ready (systemd installs; --no-wait skips)',
            })
            .example(
              '$0 robot add vac-2 -f site.yaml --accept-new-host-keys',
              'Install a new learner listed in site.yaml',
            ) as unknown as Argv<GlobalArgs>,
        handler: async (argv) => {
          const a = argv as unknown as PlanArgs;
          const ops = await import('../ops/bootstrap.ts');
          await ops.runRobotAdd(
            { ...options(a), robot: a.robot!, wait: a.wait ?? true, ...readyArgs(a) },
            io,
          );
        },
      })
      .command({
        command: 'remove <robot>',
        describe: 'Stop a learner and remove what bootstrap installed on it',
        builder: (a: Argv<GlobalArgs>) =>
          planOptions(a)
            .positional('robot', { type: 'string', describe: 'The robot, as the inventory names it' })
            .option('yes', { type: 'boolean', default: false, describe: 'Really do it (without --dry-run)' })
            .example(
              '$0 robot remove vac-2 -f site.yaml --yes',
              'Stop it and remove what bootstrap installed',
            ) as unknown as Argv<GlobalArgs>,
        handler: async (argv) => {
          const a = argv as unknown as PlanArgs;
          const ops = await import('../ops/bootstrap.ts');
          await ops.runRobotRemove({ ...options(a), robot: a.robot!, yes: a.yes ?? false }, io);
        },
      })
      .demandCommand(1, 'Name the action: add or remove') as unknown as Argv<GlobalArgs>,
  handler: () => {},
});
