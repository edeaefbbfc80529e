/** The yargs adapter for `edgectl render`; the work is in cli/ops/render.ts. */
import type { Argv, CommandModule } from 'yargs';
import { UsageError } from '../../agent/errors.ts';
import type { GlobalArgs } from '../main.ts';
import type { Io } from '../output.ts';

interface RenderArgs extends GlobalArgs {
  what: 'site';
  file: string;
  out?: string;
  epoch: number;
  addons: boolean;
}

export const renderCommand = (io: Io): CommandModule<GlobalArgs, GlobalArgs> => ({
  command: 'render <what>',
  describe: 'Write the manifests edgectl would apply, without touching any cluster (review, GitOps)',
  builder: (y: Argv<GlobalArgs>) =>
    y
      .positional('what', {
        choices: ['site'] as const,
        describe: "site: the site's namespace, policies, quota, RBAC, networks, and the addons they need",
      })
      .option('file', {
        alias: 'f',
        type: 'string',
        demandOption: true,
        describe: 'The site spec (YAML), like templates/site/site.example.yaml',
      })
      .option('out', {
        type: 'string',
        describe:
          'Write one numbered file per object here (addons in <out>/addons/); default: print a YAML stream',
      })
      .option('epoch', {
        type: 'number',
        default: 0,
        describe: 'The edgectl.io/epoch label to write (the leader uses its control-plane epoch)',
      })
      .option('addons', {
        type: 'boolean',
        default: true,
        describe: 'Also write the CRDs, Multus and Whereabouts (--no-addons: only the site)',
      })
      .example(
        '$0 render site -f site.yaml --out manifests/',
        'Write 00-namespace.yaml, 01-networkpolicy-… and addons/…',
      )
      .example(
        '$0 render site -f site.yaml --no-addons | kubectl diff -f -',
        'Compare the site with a cluster',
      )
      .example(
        '$0 render site -f site.yaml --out manifests/ --output json',
        'List the files and objects as JSON',
      )
      .check((a) => {
        if (!Number.isSafeInteger(a.epoch) || (a.epoch as number) < 0)
          throw new UsageError(
            'BAD_EPOCH',
            `--epoch must be a whole number >= 0 (got ${Number.isNaN(a.epoch) ? 'not a number' : String(a.epoch)})`,
            {
              hint: 'pass the control-plane epoch the leader would use, like --epoch 3',
            },
          );
        return true;
      }) as unknown as Argv<GlobalArgs>,
  handler: async (argv) => {
    const a = argv as unknown as RenderArgs;
    const { runRenderSite } = await import('../ops/render.ts');
    await runRenderSite(
      {
        file: a.file,
        ...(a.out === undefined ? {} : { out: a.out }),
        epoch: a.epoch,
        addons: a.addons,
        output: a.output,
      },
      io,
    );
  },
});
