/**
 * executePlan runs a plan's steps, in order, through a CommandRunner: the only place in agent/k3s/
 * that acts on a plan. formatPlan prints one (goldens, --dry-run), secrets as digests.
 *
 * Step semantics (agent/plan/plan.ts): a `run` step with `unless` is skipped when that check exits
 * 0; `remove` and `systemd stop` succeed on what is already absent or stopped; the first failing
 * step stops the plan with an EdgeError naming the step, its exit code and its stderr.
 */
import { sha256Digest } from '../sha256.ts';
import { EdgeError, InternalError } from '../errors.ts';
import type { CommandRunner, RunResult } from '../exec/runner.ts';
import type { Plan, PlanStep } from '../plan/plan.ts';

export interface ExecutedStep {
  readonly id: string;
  readonly outcome: 'done' | 'skipped';
}

export interface PlanReport {
  readonly target: string;
  readonly steps: readonly ExecutedStep[];
}

export interface ExecuteOptions {
  /**
   * Checked before every step: true stops the plan with EDGE_K3S_SUPERSEDED. The runtime uses it so
   * a demotion arriving mid-start stops the start plan at its next step.
   */
  readonly cancelled?: () => boolean;
}

export async function executePlan(
  runner: CommandRunner,
  plan: Plan,
  opts: ExecuteOptions = {},
): Promise<PlanReport> {
  const steps: ExecutedStep[] = [];
  for (const step of plan.steps) {
    if (opts.cancelled?.()) {
      throw new EdgeError(
        'K3S_SUPERSEDED',
        `${plan.target}: plan stopped before step ${step.id}: a later operation superseded it`,
      );
    }
    steps.push({ id: step.id, outcome: await executeStep(runner, plan.target, step) });
  }
  return { target: plan.target, steps };
}

async function executeStep(
  runner: CommandRunner,
  target: string,
  step: PlanStep,
): Promise<'done' | 'skipped'> {
  switch (step.kind) {
    case 'writeFile':
      await runner.writeFile(step.path, step.content, {
        mode: step.mode,
        ...(step.owner === undefined ? {} : { owner: step.owner }),
      });
      return 'done';
    case 'upload': {
      await runner.upload(step.localPath, step.path, { mode: step.mode });
      const argv = ['sha256sum', step.path];
      const r = await runner.run(argv);
      check(target, step, argv, r);
      if (!r.stdout.startsWith(`${step.sha256} `)) {
        throw new EdgeError(
          'K3S_STEP_FAILED',
          `${target}: step ${step.id}: ${step.path} does not have the expected SHA-256 after upload`,
          {
            hint: `check ${step.localPath} is the file the plan names`,
          },
        );
      }
      return 'done';
    }
    case 'run': {
      if (step.unless) {
        const check = await runner.run(step.unless);
        if (check.code === 0) return 'skipped';
      }
      const opts = step.timeoutMs === undefined ? {} : { timeoutMs: step.timeoutMs };
      check(target, step, step.argv, await runner.run(step.argv, opts));
      return 'done';
    }
    case 'remove': {
      const argv = ['rm', step.recursive ? '-rf' : '-f', '--', step.path];
      check(target, step, argv, await runner.run(argv));
      return 'done';
    }
    case 'systemd': {
      const argv = systemctlArgv(step.action, step.unit);
      check(target, step, argv, await runner.run(argv));
      return 'done';
    }
  }
}

/** systemctlArgv: the systemctl command of a systemd plan step. */
export function systemctlArgv(
  action: Extract<PlanStep, { kind: 'systemd' }>['action'],
  unit: string | undefined,
): string[] {
  if (action === 'daemon-reload') return ['systemctl', 'daemon-reload'];
  if (!unit) throw new InternalError(`systemctl ${action} needs a unit`);
  if (action === 'enable-now') return ['systemctl', 'enable', '--now', unit];
  if (action === 'disable-now') return ['systemctl', 'disable', '--now', unit];
  return ['systemctl', action, unit];
}

function check(target: string, step: PlanStep, argv: readonly string[], r: RunResult): void {
  if (r.code === 0) return;
  const stderr = r.stderr.trim().slice(-800);
  throw new EdgeError(
    'K3S_STEP_FAILED',
    `${target}: step ${step.id} (${step.description}) failed: \`${argv.join(' ')}\` exited ${r.code}${stderr ? `: ${stderr}` : ''}`,
    {
      hint: `run \`journalctl -u k3s -u k3s-agent -n 100\` on ${target}; the plan resumes where it stopped when re-run`,
    },
  );
}

/**
 * formatPlan renders a plan as text, one step a line, for goldens and --dry-run. File content is
 * shown as its SHA-256 (the renderers' own goldens show the content); secret content only ever so.
 */
export function formatPlan(title: string, plan: Plan): string {
  const lines = [`# ${title} (target ${plan.target})`];
  plan.steps.forEach((s, i) => {
    lines.push(`${String(i + 1).padStart(2)}. ${s.id}: ${describeStep(s)}`);
    lines.push(`      # ${s.description}`);
  });
  return `${lines.join('\n')}\n`;
}

function describeStep(s: PlanStep): string {
  switch (s.kind) {
    case 'writeFile':
      return `write ${s.path} mode ${s.mode.toString(8).padStart(4, '0')}${s.owner ? ` owner ${s.owner}` : ''} ${s.secret ? 'secret ' : ''}sha256:${digest(s.content)}`;
    case 'upload':
      return `upload ${s.localPath} -> ${s.path} mode ${s.mode.toString(8).padStart(4, '0')} sha256:${s.sha256.slice(0, 12)}`;
    case 'run':
      return `run ${s.argv.join(' ')}${s.unless ? ` unless ${s.unless.join(' ')}` : ''}${s.timeoutMs ? ` timeout ${s.timeoutMs / 1000}s` : ''}`;
    case 'remove':
      return `remove ${s.path}${s.recursive ? ' (recursive)' : ''}`;
    case 'systemd':
      return systemctlArgv(s.action, s.unit).join(' ');
  }
}

function digest(content: string): string {
  return Buffer.from(sha256Digest(Buffer.from(content, 'utf8')))
    .toString('hex')
    .slice(0, 12);
}
