/**
 * The executor: runs a bootstrap (or reset, uninstall) plan on every robot through
 * CommandRunners, at most `parallel` robots at a time. The imperative shell of plan.ts.
 *
 * - Idempotent steps: a file is written only if its SHA-256, mode or owner differ on the robot;
 *   an upload is verified after it lands; a `run` step with `unless` is skipped when the check
 *   exits 0; `remove` and systemd stop/disable succeed on what is already gone.
 * - Resumable: after each step the robot's state (site-dir.ts) records the step's hash. A re-run
 *   skips recorded steps without touching the robot (`recheck` checks them on the robot again),
 *   and a run interrupted after step k resumes at k+1. Steps that changed something in an
 *   unfinished run stay "pending", so the restart they call for still happens when it resumes.
 * - Isolated failures: a robot that fails stops at that step, reported with its stderr and the
 *   commands to recover by hand; the other robots carry on.
 */
import { EdgeError } from '../../agent/errors.ts';
import { shellQuote, shellQuoteArg } from '../../agent/exec/posix.ts';
import { HostKeyError } from './known-hosts.ts';
import type { CommandRunner } from '../../agent/exec/runner.ts';
import { sha256Hex, stepHash, type BootstrapPlan, type BootstrapStep, type RobotPlan } from './plan.ts';
import type { FailureReport, ProgressEvent, StepOutcome } from './progress.ts';
import type { StateStore } from './site-dir.ts';

export interface ApplyOptions {
  readonly plan: BootstrapPlan;
  /** Opens a runner to a robot (SSH in the CLI, in-memory twins in tests). Called only when applying. */
  readonly connect: (robot: RobotPlan) => Promise<CommandRunner>;
  readonly state: StateStore;
  /** How many robots at once. */
  readonly parallel: number;
  readonly emit: (e: ProgressEvent) => void;
  /** Check every step on the robot, ignoring what the state file says is done. */
  readonly recheck?: boolean;
  /** How to reach a robot by hand, for recovery commands (like `ssh -p 22 edgectl@10.0.0.1`). */
  readonly sshCommand?: (robot: RobotPlan) => string;
  /** The edgectl command that resumes this apply. */
  readonly resumeCommand?: string;
  /** Monotonic milliseconds, for event times. */
  readonly now?: () => number;
}

export interface RobotReport {
  readonly robot: string;
  readonly ok: boolean;
  readonly outcomes: Readonly<Record<StepOutcome, number>>;
  readonly failure?: FailureReport;
}

export interface ApplyReport {
  readonly kind: BootstrapPlan['kind'];
  readonly site: string;
  readonly robots: readonly RobotReport[];
}

/** StepFailed: a step's command ran and failed; it carries the command's stderr. */
export class StepFailed extends EdgeError {
  readonly stderr: string;
  constructor(message: string, stderr: string, hint?: string) {
    super('STEP_FAILED', message, hint === undefined ? {} : { hint });
    this.stderr = stderr;
  }
}

const SUDO = { sudo: true } as const;

function mustSucceed(
  step: BootstrapStep,
  argv: readonly string[],
  r: { code: number; stderr: string },
): void {
  if (r.code === 0) return;
  throw new StepFailed(
    `${step.description}: \`${shellQuote(argv)}\` exited ${r.code}${r.stderr.trim() ? `: ${lastLines(r.stderr, 1)}` : ''}`,
    r.stderr,
    step.hint,
  );
}

function lastLines(text: string, n: number): string {
  return text.trim().split('\n').slice(-n).join('\n');
}

/** fileMatches: the robot's file has this SHA-256, mode and owner. */
async function fileMatches(
  runner: CommandRunner,
  path: string,
  sha256: string,
  mode: number,
  owner: string,
): Promise<boolean> {
  const sum = await runner.run(['sha256sum', '--', path], SUDO);
  if (sum.code !== 0 || sum.stdout.split(/\s/)[0] !== sha256) return false;
  const st = await runner.run(['stat', '-c', '%a %U:%G', '--', path], SUDO);
  return st.code === 0 && st.stdout.trim() === `${(mode & 0o7777).toString(8)} ${owner}`;
}

async function systemctlIs(
  runner: CommandRunner,
  what: 'enabled' | 'active',
  unit: string,
): Promise<boolean> {
  return (await runner.run(['systemctl', `is-${what}`, '--quiet', unit], SUDO)).code === 0;
}

/** systemctlArgv: the systemctl command of a systemd step. */
export function systemctlArgv(step: Extract<BootstrapStep, { kind: 'systemd' }>): string[] {
  if (step.action === 'daemon-reload') return ['systemctl', 'daemon-reload'];
  const unit = step.unit ?? '';
  if (step.action === 'enable-now') return ['systemctl', 'enable', '--now', unit];
  if (step.action === 'disable-now') return ['systemctl', 'disable', '--now', unit];
  return ['systemctl', step.action, unit];
}

/** executeStep does one step, idempotently, and says whether it changed the robot. */
export async function executeStep(
  runner: CommandRunner,
  step: BootstrapStep,
  onLine?: (stream: 'stdout' | 'stderr', line: string) => void,
): Promise<StepOutcome> {
  switch (step.kind) {
    case 'run': {
      const sudo = step.sudo ?? false;
      if (step.unless && (await runner.run(step.unless, { sudo })).code === 0) return 'unchanged';
      const r = await runner.run(step.argv, {
        sudo,
        ...(step.timeoutMs === undefined ? {} : { timeoutMs: step.timeoutMs }),
        ...(onLine ? { onLine } : {}),
      });
      mustSucceed(step, step.argv, r);
      return step.check ? 'ok' : 'changed';
    }
    case 'writeFile': {
      const owner = step.owner ?? 'root:root';
      if (await fileMatches(runner, step.path, sha256Hex(step.content), step.mode, owner)) return 'unchanged';
      await runner.writeFile(step.path, step.content, { mode: step.mode, owner, sudo: true });
      return 'changed';
    }
    case 'upload': {
      if (await fileMatches(runner, step.path, step.sha256, step.mode, 'root:root')) return 'unchanged';
      await runner.upload(step.localPath, step.path, { mode: step.mode, owner: 'root:root', sudo: true });
      if (!(await fileMatches(runner, step.path, step.sha256, step.mode, 'root:root')))
        throw new StepFailed(
          `${step.description}: ${step.path} does not have sha256 ${step.sha256} after the upload`,
          '',
          'the file changed on the way or on the robot: check the robot’s disk (dmesg) and run again',
        );
      return 'changed';
    }
    case 'remove': {
      if ((await runner.run(['test', '-e', step.path], SUDO)).code !== 0) return 'unchanged';
      const argv = ['rm', step.recursive ? '-rf' : '-f', '--', step.path];
      mustSucceed(step, argv, await runner.run(argv, SUDO));
      return 'changed';
    }
    case 'systemd': {
      const unit = step.unit ?? '';
      if (
        step.action === 'enable-now' &&
        (await systemctlIs(runner, 'enabled', unit)) &&
        (await systemctlIs(runner, 'active', unit))
      )
        return 'unchanged';
      if (step.action === 'start' && (await systemctlIs(runner, 'active', unit))) return 'unchanged';
      if (step.action === 'stop' && !(await systemctlIs(runner, 'active', unit))) return 'unchanged';
      if (
        step.action === 'disable-now' &&
        !(await systemctlIs(runner, 'enabled', unit)) &&
        !(await systemctlIs(runner, 'active', unit))
      )
        return 'unchanged';
      const argv = systemctlArgv(step);
      mustSucceed(step, argv, await runner.run(argv, { ...SUDO, ...(onLine ? { onLine } : {}) }));
      return 'changed';
    }
  }
}

/** recoveryCommands: what an operator can run by hand for a failed step, then how to resume. */
export function recoveryCommands(step: BootstrapStep, ssh: string, resume: string | undefined): string[] {
  const remote = (argv: readonly string[], sudo: boolean) =>
    `${ssh} ${shellQuoteArg(`${sudo ? 'sudo ' : ''}${shellQuote(argv)}`)}`;
  const out: string[] = [];
  switch (step.kind) {
    case 'run':
      out.push(remote(step.argv, step.sudo ?? false));
      break;
    case 'systemd':
      out.push(remote(systemctlArgv(step), true));
      if (step.unit) out.push(remote(['journalctl', '-u', step.unit, '-n', '100', '--no-pager'], true));
      break;
    case 'remove':
      out.push(remote(['rm', step.recursive ? '-rf' : '-f', '--', step.path], true));
      break;
    case 'writeFile':
    case 'upload':
      out.push(remote(['ls', '-l', step.path.slice(0, step.path.lastIndexOf('/')) || '/'], true));
      break;
  }
  if (resume) out.push(`${resume}   # resumes at ${step.id}`);
  return out;
}

/**
 * connectRecovery: what recovers from a failed connection. Running the same command again does not
 * get past a refused host key, so those get the commands that do (after checking the key).
 */
export function connectRecovery(err: EdgeError, resume: string | undefined): string[] {
  const again = resume ? [resume] : [];
  if (!(err instanceof HostKeyError)) return again;
  const accepting = resume
    ? [
        `${resume.includes('--accept-new-host-keys') ? resume : `${resume} --accept-new-host-keys`}   # records ${err.robot}'s new key; the other robots' keys are known already`,
      ]
    : [];
  const check = `# first check the key on ${err.robot}'s console: ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`;
  if (err.pinnedAt) return [check, `# then put its fingerprint in ${err.pinnedAt}`, ...again];
  if (err.code === 'EDGE_HOST_KEY_UNKNOWN') return [check, ...accepting];
  // A changed (or revoked) key: the stale entry must go before the new key can be recorded.
  return [check, `ssh-keygen -R '${err.hostName}' -f ${err.knownHostsPath}`, ...accepting];
}

function emptyOutcomes(): Record<StepOutcome, number> {
  return { changed: 0, unchanged: 0, ok: 0, 'done-before': 0, 'not-needed': 0 };
}

/** applyPlan runs the plan on every robot, `parallel` at a time, and reports each robot. */
export async function applyPlan(opts: ApplyOptions): Promise<ApplyReport> {
  const start = (opts.now ?? (() => performance.now()))();
  const at = () => Math.round((opts.now ?? (() => performance.now()))() - start);
  const { plan } = opts;
  opts.emit({
    type: 'apply.start',
    at: at(),
    kind: plan.kind,
    site: plan.site,
    robots: plan.robots.map((r) => ({ name: r.target, steps: r.steps.length })),
  });
  const reports = new Map<string, RobotReport>();
  const queue = [...plan.robots];
  const worker = async () => {
    for (let r = queue.shift(); r; r = queue.shift()) reports.set(r.target, await applyRobot(opts, r, at));
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(opts.parallel, queue.length)) }, worker));
  const robots = plan.robots.map((r) => reports.get(r.target)!);
  opts.emit({
    type: 'apply.end',
    at: at(),
    ok: robots.filter((r) => r.ok).map((r) => r.robot),
    failed: robots.filter((r) => !r.ok).map((r) => r.robot),
  });
  return { kind: plan.kind, site: plan.site, robots };
}

async function applyRobot(opts: ApplyOptions, robot: RobotPlan, at: () => number): Promise<RobotReport> {
  const outcomes = emptyOutcomes();
  const name = robot.target;
  const ssh = opts.sshCommand?.(robot) ?? `ssh ${robot.address}`;
  const fail = (step: BootstrapStep | null, e: unknown): RobotReport => {
    const err =
      e instanceof EdgeError
        ? e
        : new EdgeError('STEP_FAILED', e instanceof Error ? e.message : String(e), { cause: e });
    const failure: FailureReport = {
      step: step?.id ?? 'connect',
      description: step?.description ?? `connect to ${robot.address}`,
      code: err.code,
      message: err.message,
      hint: err.hint,
      stderr: err instanceof StepFailed ? lastLines(err.stderr, 20) : '',
      recover: step
        ? recoveryCommands(step, ssh, opts.resumeCommand)
        : connectRecovery(err, opts.resumeCommand),
    };
    opts.emit({ type: 'robot.failed', at: at(), robot: name, failure });
    return { robot: name, ok: false, outcomes, failure };
  };

  opts.emit({ type: 'robot.start', at: at(), robot: name });
  let runner: CommandRunner;
  try {
    runner = await opts.connect(robot);
  } catch (e) {
    return fail(null, e);
  }
  opts.emit({ type: 'robot.connected', at: at(), robot: name, runner: runner.target });
  // Remove plans are not resumed from state: their steps are cheap to check, and the robot's
  // bootstrap record must go before the first file does, or a later bootstrap would skip steps.
  // Key plans share the bootstrap record: their key file step is bootstrap's own.
  const removing = opts.plan.kind === 'reset' || opts.plan.kind === 'uninstall';
  try {
    if (removing) await opts.state.clear(name);
    const prior = removing ? { done: {}, pendingChanged: [] } : await opts.state.load(name);
    const done: Record<string, string> = { ...prior.done };
    const changed = new Set(prior.pendingChanged);
    const total = robot.steps.length;
    for (const [i, step] of robot.steps.entries()) {
      const index = i + 1;
      const end = (outcome: StepOutcome) => {
        outcomes[outcome]++;
        opts.emit({
          type: 'step.end',
          at: at(),
          robot: name,
          step: step.id,
          description: step.description,
          index,
          total,
          outcome,
        });
      };
      const hash = stepHash(step);
      if (step.onlyIfChanged) {
        if (!step.onlyIfChanged.some((id) => changed.has(id))) {
          end('not-needed');
          continue;
        }
      } else if (!opts.recheck && done[step.id] === hash) {
        end('done-before');
        continue;
      }
      opts.emit({
        type: 'step.start',
        at: at(),
        robot: name,
        step: step.id,
        description: step.description,
        index,
        total,
      });
      let outcome: StepOutcome;
      try {
        outcome = await executeStep(runner, step, (stream, line) =>
          opts.emit({ type: 'step.output', at: at(), robot: name, step: step.id, stream, line }),
        );
      } catch (e) {
        if (!removing) await opts.state.save(name, { done, pendingChanged: [...changed] });
        return fail(step, e);
      }
      if (outcome === 'changed') changed.add(step.id);
      // A restart is never "done": whether it runs depends on what changed in each run.
      if (!step.onlyIfChanged) done[step.id] = hash;
      if (!removing) await opts.state.save(name, { done, pendingChanged: [...changed] });
      end(outcome);
    }
    // A key plan owes nothing more of its own, but an interrupted bootstrap's pending changes stay
    // pending: the restart they call for is still owed.
    const own = new Set(robot.steps.map((s) => s.id));
    const stillPending = opts.plan.kind === 'keys' ? [...changed].filter((id) => !own.has(id)) : [];
    if (!removing) await opts.state.save(name, { done, pendingChanged: stillPending });
  } finally {
    await runner.close().catch(() => {});
  }
  opts.emit({ type: 'robot.done', at: at(), robot: name, outcomes });
  return { robot: name, ok: true, outcomes };
}
