/**
 * How a plan is shown: as text for people (`--dry-run`), and as a JSON artifact for machines
 * (`--dry-run --output json`). Pure. Secret content never appears: only its SHA-256.
 */
import { shellQuote } from '../../agent/exec/posix.ts';
import { UsageError } from '../../agent/errors.ts';
import { table } from '../output.ts';
import { sha256Hex, type BootstrapPlan, type BootstrapStep, type Phase } from './plan.ts';

const octal = (mode: number) => `0${(mode & 0o7777).toString(8).padStart(3, '0')}`;

/** What a step does, as the command or file operation the executor performs (with sudo). */
export function stepDetail(step: BootstrapStep): string {
  switch (step.kind) {
    case 'run':
      return `${step.sudo ? 'sudo ' : ''}${shellQuote(step.argv)}${step.unless ? `   (unless: ${shellQuote(step.unless)})` : ''}`;
    case 'writeFile':
      return `${step.path}  ${octal(step.mode)} ${step.owner ?? 'root:root'}  sha256:${sha256Hex(step.content).slice(0, 16)}${step.secret ? ' (secret: content not shown)' : ''}`;
    case 'upload':
      return `${step.localPath} -> ${step.path}  ${octal(step.mode)} root:root  sha256:${step.sha256.slice(0, 16)}`;
    case 'remove':
      return `rm -${step.recursive ? 'r' : ''}f -- ${step.path}`;
    case 'systemd':
      return `systemctl ${step.action === 'enable-now' ? 'enable --now' : step.action === 'disable-now' ? 'disable --now' : step.action}${step.unit ? ` ${step.unit}` : ''}${step.onlyIfChanged ? `   (only if changed: ${step.onlyIfChanged.join(', ')})` : ''}`;
  }
}

function kindLabel(step: BootstrapStep): string {
  if (step.check) return 'check';
  return step.kind === 'writeFile' ? 'write' : step.kind;
}

/** formatPlanText renders a plan per robot: every step, its kind, and what exactly it does. */
export function formatPlanText(plan: BootstrapPlan): string {
  const out: string[] = [`${plan.kind} plan for site ${plan.site}: ${plan.robots.length} robot(s)`];
  for (const r of plan.robots) {
    out.push('', `${r.target} (${r.address}${r.ip ? `, ${r.ip}` : ''}), ${r.steps.length} steps:`);
    const idW = Math.max(...r.steps.map((s) => s.id.length));
    const n = String(r.steps.length).length;
    r.steps.forEach((s, i) => {
      out.push(
        `  ${String(i + 1).padStart(n)}  ${s.id.padEnd(idW)}  ${kindLabel(s).padEnd(7)}  ${s.description}`,
      );
      out.push(`  ${' '.repeat(n)}  ${' '.repeat(idW)}  ${' '.repeat(7)}  ${stepDetail(s)}`);
    });
  }
  return out.join('\n');
}

const PHASE_ORDER: readonly Phase[] = [
  'preflight',
  'dirs',
  'bundle',
  'config',
  'secret',
  'runtime',
  'service',
  'remove',
];

/**
 * formatPlanSummary renders a plan as one table, robots × phases, each cell the number of steps,
 * for a site with more robots than a screen holds steps: `--robot NAME` then shows one robot's
 * steps in full (formatPlanText), and `--output json` the whole plan.
 */
export function formatPlanSummary(plan: BootstrapPlan): string {
  const phases = PHASE_ORDER.filter((p) => plan.robots.some((r) => r.steps.some((s) => s.phase === p)));
  const rows = plan.robots.map((r) => [
    r.target,
    // A host name shows the address it resolved to, as the detailed plan does.
    r.ip !== undefined ? `${r.address} (${r.ip})` : r.address,
    ...phases.map((p) => r.steps.filter((s) => s.phase === p).length || '-'),
    r.steps.length,
  ]);
  const total = plan.robots.reduce((n, r) => n + r.steps.length, 0);
  return [
    `${plan.kind} plan for site ${plan.site}: ${plan.robots.length} robot(s), ${total} steps`,
    '',
    table(['robot', 'address', ...phases, 'steps'], rows),
  ].join('\n');
}

/** selectRobot keeps one robot of a plan (for `--robot NAME`), or says which robots there are. */
export function selectRobot(plan: BootstrapPlan, robot: string): BootstrapPlan {
  const r = plan.robots.find((x) => x.target === robot);
  if (!r)
    throw new UsageError('NO_SUCH_ROBOT', `the plan has no robot named ${robot}`, {
      hint: `use one of ${plan.robots.map((x) => x.target).join(', ')}`,
      path: '--robot',
    });
  return { ...plan, robots: [r] };
}

/** The JSON form of a step: modes as octal strings, secret content as a digest only. */
export function stepArtifact(step: BootstrapStep): Record<string, unknown> {
  const out: Record<string, unknown> = { ...step };
  if ('mode' in step) out.mode = octal(step.mode);
  if (step.kind === 'writeFile') {
    out.sha256 = sha256Hex(step.content);
    if (step.secret) delete out.content;
  }
  return out;
}

/** planArtifact is the plan as JSON-ready data (`--dry-run --output json`). */
export function planArtifact(plan: BootstrapPlan): Record<string, unknown> {
  return {
    kind: plan.kind,
    site: plan.site,
    robots: plan.robots.map((r) => ({
      target: r.target,
      address: r.address,
      ...(r.ip ? { ip: r.ip } : {}),
      steps: r.steps.map(stepArtifact),
    })),
  };
}
