/**
 * `edgectl bootstrap site`, `edgectl reset robot`, `edgectl uninstall site`: load and check the
 * inventory (every problem before any robot is touched), render the plan, then either print it
 * (--dry-run: no SSH, no site directory, nothing written) or apply it over SSH with progress.
 */
import { generateSiteIdentity, readSiteIdentity } from '../bootstrap/identity-files.ts';
import { readK3sTemplates } from '../bootstrap/k3s-templates.ts';
import { readAddonTemplates } from '../../agent/site/addons.ts';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EdgeError, UsageError } from '../../agent/errors.ts';
import { KnownHostsFile } from '../bootstrap/known-hosts.ts';
import type { CommandRunner } from '../../agent/exec/runner.ts';
import { SshCommandRunner } from '../bootstrap/ssh.ts';
import { applyPlan, type ApplyReport } from '../bootstrap/apply.ts';
import { describeBundle } from '../bootstrap/bundle.ts';
import { loadInventory, type LoadedInventory } from '../bootstrap/inventory-files.ts';
import type { Robot } from '../bootstrap/inventory.ts';
import { probeMulticast } from '../bootstrap/multicast-probe.ts';
import { formatPlanText, planArtifact } from '../bootstrap/plan-output.ts';
import {
  adminKubeconfigPath,
  mergeKubeconfig,
  siteKubeconfig,
  waitForSite,
} from '../bootstrap/site-ready.ts';
import {
  DEFAULT_RUNTIMES,
  k3sInstaller,
  renderBootstrapPlan,
  renderRemovePlan,
  type BootstrapPlan,
  type Runtimes,
  type SiteIdentity,
} from '../bootstrap/plan.ts';
import {
  ndjsonRenderer,
  plainRenderer,
  ttyRenderer,
  type ProgressEvent,
  type ProgressRenderer,
} from '../bootstrap/progress.ts';
import {
  ensureSiteIdentity,
  FileStateStore,
  loadSiteIdentity,
  siteDirFor,
  type SiteDir,
} from '../bootstrap/site-dir.ts';
import { table, type Io, type OutputFormat } from '../output.ts';

const UNIT_TEMPLATE = fileURLToPath(new URL('../../templates/edgectl-agent.service', import.meta.url));

/** Stands in for the site key in a dry run before the site directory exists (never installed). */
const NOT_YET_GENERATED: SiteIdentity = { siteKeyHex: '0'.repeat(64) };

export interface ApplyCliOptions {
  readonly file: string;
  readonly dryRun: boolean;
  readonly acceptNewHostKeys: boolean;
  readonly parallel: number;
  readonly siteDir?: string | undefined;
  readonly sudoPasswordFile?: string | undefined;
  /** Check every step on the robots, ignoring the recorded state. */
  readonly recheck: boolean;
  readonly output: OutputFormat;
}

/** The shell's I/O, injectable for tests. */
export interface BootstrapDeps {
  /** Opens a runner to a robot; default: SSH with the site's host key policy. */
  readonly connect?: (robot: Robot, loaded: LoadedInventory, ctx: ConnectContext) => Promise<CommandRunner>;
  readonly env?: NodeJS.ProcessEnv;
  /** Where the live task list draws; default process.stderr when it is a terminal. */
  readonly tty?: { write(s: string): unknown; columns?: number } | null;
  /** Reads the sudo password when no --sudo-password-file is given; default: prompt on the terminal. */
  readonly readPassword?: (prompt: string) => Promise<string>;
  readonly runtimes?: Runtimes;
}

export interface ConnectContext {
  readonly siteDir: SiteDir;
  readonly acceptNewHostKeys: boolean;
  readonly sudoPassword: string | undefined;
}

function sshConnect(robot: Robot, loaded: LoadedInventory, ctx: ConnectContext, env: NodeJS.ProcessEnv) {
  const i = loaded.inventory.robots.indexOf(robot);
  return SshCommandRunner.connect(
    {
      name: robot.name,
      host: robot.address,
      port: robot.ssh.port,
      user: robot.ssh.user,
      keyFile: loaded.keyFiles.get(robot.name),
      agentSocket: robot.ssh.agent ? env.SSH_AUTH_SOCK : undefined,
      hostKey: robot.ssh.hostKey,
      hostKeyField: `robots[${i}].ssh.hostKey in ${loaded.path}`,
    },
    {
      knownHosts: new KnownHostsFile(ctx.siteDir.knownHosts),
      acceptNewHostKeys: ctx.acceptNewHostKeys,
      sudo: robot.sudo,
      sudoPassword: robot.sudo === 'password' ? ctx.sudoPassword : undefined,
    },
  );
}

/** readPasswordFromTerminal prompts on stderr and reads a line from stdin without echo. */
export async function readPasswordFromTerminal(prompt: string): Promise<string> {
  const stdin = process.stdin;
  if (!stdin.isTTY)
    throw new UsageError(
      'SUDO_PASSWORD_NEEDED',
      'a robot needs a sudo password and there is no terminal to ask',
      {
        hint: 'pass --sudo-password-file <file> (mode 0600), or run on a terminal',
      },
    );
  process.stderr.write(prompt);
  stdin.setRawMode(true);
  stdin.resume();
  let typed = '';
  try {
    return await new Promise<string>((resolve, reject) => {
      const onData = (chunk: Buffer) => {
        for (const ch of chunk.toString('utf8')) {
          if (ch === '\r' || ch === '\n') {
            stdin.off('data', onData);
            return resolve(typed);
          }
          if (ch === '\u0003') {
            stdin.off('data', onData);
            return reject(new UsageError('CANCELLED', 'cancelled at the sudo password prompt'));
          }
          typed = ch === '\u007f' ? typed.slice(0, -1) : typed + ch;
        }
      };
      stdin.on('data', onData);
    });
  } finally {
    stdin.setRawMode(false);
    stdin.pause();
    process.stderr.write('\n');
  }
}

async function sudoPassword(
  loaded: LoadedInventory,
  o: ApplyCliOptions,
  deps: BootstrapDeps,
  robots: readonly string[],
): Promise<string | undefined> {
  const needing = loaded.inventory.robots.filter((r) => robots.includes(r.name) && r.sudo === 'password');
  if (needing.length === 0) return undefined;
  if (o.sudoPasswordFile) {
    try {
      // The first line only: a trailing newline is no part of the password.
      return readFileSync(o.sudoPasswordFile, 'utf8').split('\n')[0] ?? '';
    } catch (e) {
      throw new UsageError('SUDO_PASSWORD_FILE', `cannot read --sudo-password-file ${o.sudoPasswordFile}`, {
        cause: e,
      });
    }
  }
  const read = deps.readPassword ?? readPasswordFromTerminal;
  return read(`sudo password for ${needing.map((r) => `${r.ssh.user}@${r.name}`).join(', ')}: `);
}

function progressRenderer(o: ApplyCliOptions, io: Io, deps: BootstrapDeps): ProgressRenderer {
  if (o.output === 'json') return ndjsonRenderer((l) => io.out(l));
  const tty = deps.tty === undefined ? (process.stderr.isTTY ? process.stderr : null) : deps.tty;
  return tty ? ttyRenderer(tty) : plainRenderer((l) => io.err(l));
}

/** renderReport: the result of an apply, per robot, and what to do about each failure. */
export function renderReport(report: ApplyReport): string {
  const out = [
    table(
      ['robot', 'result', 'changed', 'unchanged', 'skipped'],
      report.robots.map((r) => [
        r.robot,
        r.ok ? 'ok' : `FAILED at ${r.failure?.step}`,
        r.outcomes.changed,
        r.outcomes.unchanged + r.outcomes.ok,
        r.outcomes['done-before'] + r.outcomes['not-needed'],
      ]),
    ),
  ];
  for (const r of report.robots) {
    const f = r.failure;
    if (!f) continue;
    out.push('', `${r.robot} failed at ${f.step} (${f.description}):`, `  ${f.code}: ${f.message}`);
    if (f.hint) out.push(`  hint: ${f.hint}`);
    if (f.stderr) out.push('  stderr:', ...f.stderr.split('\n').map((l) => `    ${l}`));
    if (f.recover.length) out.push('  to recover:', ...f.recover.map((c) => `    ${c}`));
  }
  return out.join('\n');
}

type Kind = BootstrapPlan['kind'];

/** What one run has read already, for a later step of the same run (bootstrap's wait for the site). */
interface RunReads {
  loaded?: LoadedInventory;
  /** Set once the sudo password was asked for (undefined: no robot needs one). */
  password?: { readonly value: string | undefined };
}

async function runPlanned(
  kind: Kind,
  o: ApplyCliOptions & { robots?: readonly string[] },
  io: Io,
  deps: BootstrapDeps,
  resumeCommand: string,
  reads: RunReads = {},
): Promise<ApplyReport | BootstrapPlan> {
  const env = deps.env ?? process.env;
  // 1. Everything local first, every problem at once: no robot is touched before this passes.
  const loaded = reads.loaded ?? loadInventory(o.file, env);
  reads.loaded = loaded;
  const inv = loaded.inventory;
  if (o.robots)
    for (const name of o.robots)
      if (!inv.robots.some((r) => r.name === name))
        throw new UsageError('NO_SUCH_ROBOT', `${o.file} has no robot named ${name}`, {
          hint: `use one of ${inv.robots.map((r) => r.name).join(', ')}`,
        });
  if (!Number.isInteger(o.parallel) || o.parallel < 1)
    throw new UsageError('BAD_PARALLEL', `--parallel must be a whole number >= 1 (got ${o.parallel})`);
  const bundle = await describeBundle(loaded.bundle);
  const siteDir = siteDirFor(inv.site.id, o.file, o.siteDir);
  // The k3s runtime installs the k3s plans of agent/k3s/ (units, reap script, fence, identity).
  const runtimes = deps.runtimes ?? { ...DEFAULT_RUNTIMES, k3s: k3sInstaller(readK3sTemplates().reapScript) };
  const robots = o.robots;
  // The k3s site identity lives beside the site key, made once (0600 files, 0700 directory).
  const k3sIdentityDir = join(siteDir.root, 'k3s-identity');
  const withK3s = async (id: SiteIdentity, create: boolean): Promise<SiteIdentity> => {
    if (inv.controlPlane.runtime !== 'k3s' || kind !== 'bootstrap') return id;
    if (!existsSync(k3sIdentityDir)) {
      if (!create) return id;
      await generateSiteIdentity(k3sIdentityDir, { site: inv.site.id, now: Date.now() });
    }
    return { ...id, k3s: await readSiteIdentity(k3sIdentityDir) };
  };

  // 2. The plan. A dry run reads the site key if there is one and creates nothing.
  const existing = loadSiteIdentity(siteDir);
  const render = (identity: SiteIdentity) =>
    kind === 'bootstrap'
      ? renderBootstrapPlan({
          inventory: inv,
          bundle,
          identity,
          unitTemplate: readFileSync(UNIT_TEMPLATE, 'utf8'),
          addonTemplates: readAddonTemplates(),
          ...(runtimes ? { runtimes } : {}),
          ...(robots ? { robots } : {}),
        })
      : renderRemovePlan(kind, {
          inventory: inv,
          bundle,
          ...(runtimes ? { runtimes } : {}),
          ...(robots ? { robots } : {}),
        });
  if (o.dryRun) {
    const plan = render(await withK3s(existing ?? NOT_YET_GENERATED, false));
    const identityNote = existing
      ? `site identity: ${siteDir.root}`
      : `site identity: not generated yet (the apply creates ${siteDir.root}; the site key digest shown is a placeholder)`;
    if (o.output === 'json')
      io.out(
        JSON.stringify(
          { ...planArtifact(plan), siteDir: siteDir.root, identity: existing ? 'existing' : 'not generated' },
          null,
          2,
        ),
      );
    else
      io.out(
        `${formatPlanText(plan)}\n\n${kind === 'bootstrap' ? identityNote : `site directory: ${siteDir.root}`}`,
      );
    return plan;
  }

  // 3. Apply. The identity is made once; the sudo password is read once, for every robot.
  const identity =
    kind === 'bootstrap'
      ? await withK3s(ensureSiteIdentity(siteDir).identity, true)
      : (existing ?? NOT_YET_GENERATED);
  const plan = render(identity);
  const password = await sudoPassword(
    loaded,
    o,
    deps,
    plan.robots.map((r) => r.target),
  );
  reads.password = { value: password };
  const ctx: ConnectContext = { siteDir, acceptNewHostKeys: o.acceptNewHostKeys, sudoPassword: password };
  const connect =
    deps.connect ?? ((r: Robot, l: LoadedInventory, c: ConnectContext) => sshConnect(r, l, c, env));
  const renderer = progressRenderer(o, io, deps);
  const report = await applyPlan({
    plan,
    connect: (rp) =>
      connect(
        inv.robots.find((r) => r.name === rp.target)!,
        loaded,
        ctx,
      ),
    state: new FileStateStore(siteDir.stateDir),
    parallel: o.parallel,
    emit: (e: ProgressEvent) => renderer.event(e),
    recheck: o.recheck,
    sshCommand: (rp) => {
      const r = inv.robots.find((x) => x.name === rp.target)!;
      return `ssh${r.ssh.port === 22 ? '' : ` -p ${r.ssh.port}`} ${r.ssh.user}@${r.address}`;
    },
    resumeCommand,
  });
  renderer.end();
  // Whether the robots can find each other over mDNS, before the report (the last line).
  if (kind === 'bootstrap' && !o.robots && inv.robots.length > 1 && report.robots.every((r) => r.ok))
    await checkMulticast(inv, (r) => connect(r, loaded, ctx), o.output, io);
  if (o.output === 'json') io.out(JSON.stringify({ type: 'report', ...report }));
  else io.out(renderReport(report));
  const failed = report.robots.filter((r) => !r.ok);
  if (failed.length)
    throw new EdgeError(
      kind === 'bootstrap' ? 'BOOTSTRAP_INCOMPLETE' : 'REMOVE_INCOMPLETE',
      `${failed.length} of ${report.robots.length} robot(s) failed: ${failed.map((r) => `${r.robot} at ${r.failure?.step}`).join(', ')}`,
      {
        hint: `fix what the report says, then run ${resumeCommand} again: it resumes where each robot stopped`,
      },
    );
  return report;
}

export async function runBootstrapSite(
  o: ApplyCliOptions &
    Partial<Pick<SiteReadyOptions, 'timeoutMs' | 'kubeconfig' | 'mergeKubeconfig'>> & { wait?: boolean },
  io: Io,
  deps: BootstrapDeps = {},
) {
  // The inventory is read once and the sudo password asked for once per run, the wait included.
  const reads: RunReads = {};
  const report = await runPlanned(
    'bootstrap',
    o,
    io,
    deps,
    `edgectl bootstrap site -f ${o.file}${o.siteDir ? ` --site-dir ${o.siteDir}` : ''}`,
    reads,
  );
  // With systemd the agents start themselves: wait for the site and write its kubeconfig. (In the
  // lab, install.service is none and the lab starts the agents; edgectl site ready does the rest.)
  const service = reads.loaded!.inventory.install.service;
  if (!o.dryRun && o.wait !== false && service === 'systemd')
    await runSiteReady(
      {
        file: o.file,
        siteDir: o.siteDir,
        acceptNewHostKeys: o.acceptNewHostKeys,
        sudoPasswordFile: o.sudoPasswordFile,
        timeoutMs: o.timeoutMs ?? 300_000,
        kubeconfig: o.kubeconfig,
        mergeKubeconfig: o.mergeKubeconfig ?? false,
        output: o.output,
      },
      io,
      deps,
      reads,
    );
  return report;
}

function requireYes(o: { dryRun: boolean; yes: boolean }, what: string): void {
  if (!o.dryRun && !o.yes)
    throw new UsageError('CONFIRM', `${what} removes what bootstrap installed and stops the agents`, {
      hint: 'look at the plan with --dry-run, then run again with --yes',
    });
}

export async function runResetRobot(
  o: ApplyCliOptions & { robot: string; yes: boolean },
  io: Io,
  deps: BootstrapDeps = {},
) {
  requireYes(o, `edgectl reset robot ${o.robot}`);
  return runPlanned(
    'reset',
    { ...o, robots: [o.robot] },
    io,
    deps,
    `edgectl reset robot ${o.robot} -f ${o.file} --yes`,
  );
}

export async function runUninstallSite(
  o: ApplyCliOptions & { yes: boolean },
  io: Io,
  deps: BootstrapDeps = {},
) {
  requireYes(o, 'edgectl uninstall site');
  return runPlanned('uninstall', o, io, deps, `edgectl uninstall site -f ${o.file} --yes`);
}

export interface SiteReadyOptions {
  readonly file: string;
  readonly siteDir?: string | undefined;
  readonly acceptNewHostKeys: boolean;
  readonly sudoPasswordFile?: string | undefined;
  readonly timeoutMs: number;
  /** Where to write the site's kubeconfig (default <site dir>/kubeconfig). */
  readonly kubeconfig?: string | undefined;
  /** Also merge it into ~/.kube/config (or $KUBECONFIG's first file). */
  readonly mergeKubeconfig: boolean;
  readonly output: OutputFormat;
}

/**
 * runSiteReady waits until the bootstrapped site has a leader serving and every robot Ready, then
 * writes the site's kubeconfig from the leader's admin kubeconfig (read over SSH, with sudo).
 */
export async function runSiteReady(
  o: SiteReadyOptions,
  io: Io,
  deps: BootstrapDeps = {},
  reads: RunReads = {},
) {
  const env = deps.env ?? process.env;
  const loaded = reads.loaded ?? loadInventory(o.file, env);
  const inv = loaded.inventory;
  const siteDir = siteDirFor(inv.site.id, o.file, o.siteDir);
  const password = reads.password
    ? reads.password.value
    : await sudoPassword(
        loaded,
        { ...o, dryRun: false, parallel: 1, recheck: false },
        deps,
        inv.robots.map((r) => r.name),
      );
  const ctx: ConnectContext = { siteDir, acceptNewHostKeys: o.acceptNewHostKeys, sudoPassword: password };
  const connect =
    deps.connect ?? ((r: Robot, l: LoadedInventory, c: ConnectContext) => sshConnect(r, l, c, env));
  const runners = new Map<string, CommandRunner>();
  try {
    for (const r of inv.robots) runners.set(r.name, await connect(r, loaded, ctx));
    const ready = await waitForSite({
      inventory: inv,
      runners,
      timeoutMs: o.timeoutMs,
      onProgress: (s) =>
        o.output === 'json'
          ? io.out(
              JSON.stringify({
                type: 'site.waiting',
                leader: s.leader,
                term: s.term,
                waitingFor: s.waitingFor,
              }),
            )
          : io.err(
              s.ready
                ? `site ready: ${s.leader} leads term ${s.term}`
                : `waiting: ${s.waitingFor.join('; ')}`,
            ),
    });
    const leader = inv.robots.find((r) => r.name === ready.leader)!;
    const admin = await runners
      .get(leader.name)!
      .readFile(adminKubeconfigPath(inv, leader.name), { sudo: true });
    if (!admin)
      throw new EdgeError('KUBECONFIG_MISSING', `${leader.name} has no admin kubeconfig yet`, {
        hint: 'its control plane may still be starting; run edgectl site ready again',
      });
    const kubeconfig = siteKubeconfig(admin.toString('utf8'), {
      site: inv.site.id,
      server: `https://${leader.address}:6443`,
      namespace: inv.site.namespace.name ?? `site-${inv.site.id}`,
    });
    const path = o.kubeconfig ?? join(siteDir.root, 'kubeconfig');
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    writeFileSync(path, kubeconfig, { mode: 0o600 });
    let merged: string | null = null;
    if (o.mergeKubeconfig) {
      merged = (env.KUBECONFIG ?? '').split(':').find(Boolean) ?? join(homedir(), '.kube', 'config');
      mkdirSync(dirname(merged), { recursive: true, mode: 0o700 });
      const existing = existsSync(merged) ? readFileSync(merged, 'utf8') : null;
      writeFileSync(`${merged}.edgectl-tmp`, mergeKubeconfig(existing, kubeconfig), { mode: 0o600 });
      renameSync(`${merged}.edgectl-tmp`, merged);
    }
    const result = { type: 'site.ready', leader: ready.leader, term: ready.term, kubeconfig: path, merged };
    if (o.output === 'json') io.out(JSON.stringify(result));
    else
      io.out(
        `site ${inv.site.id} is ready: ${ready.leader} leads term ${ready.term}, every robot Ready\nkubeconfig: ${path}${merged ? ` (merged into ${merged} as context edgectl-${inv.site.id})` : ''}`,
      );
    return result;
  } finally {
    await Promise.all([...runners.values()].map((r) => r.close().catch(() => {})));
  }
}

/**
 * `edgectl robot add <name>`: install a robot the inventory lists onto a running site. Only learners
 * (robots that do not vote) can join a running site: the voter set is fixed at bootstrap, because
 * changing it under a running election needs joint consensus, which edgectl does not implement
 * (docs/bootstrap.md). A learner changes no other robot's config, so only it is touched.
 */
export async function runRobotAdd(
  o: ApplyCliOptions & { robot: string; wait?: boolean } & Partial<Pick<SiteReadyOptions, 'timeoutMs'>>,
  io: Io,
  deps: BootstrapDeps = {},
) {
  // As bootstrap: the inventory is read once, and the sudo password asked for once, the wait included.
  const reads: RunReads = { loaded: requireLearner(o.file, o.robot, 'add', deps) };
  const report = await runPlanned(
    'bootstrap',
    { ...o, robots: [o.robot] },
    io,
    deps,
    `edgectl robot add ${o.robot} -f ${o.file}${o.siteDir ? ` --site-dir ${o.siteDir}` : ''}`,
    reads,
  );
  const service = reads.loaded!.inventory.install.service;
  if (!o.dryRun && o.wait !== false && service === 'systemd')
    await runSiteReady(
      {
        file: o.file,
        siteDir: o.siteDir,
        acceptNewHostKeys: o.acceptNewHostKeys,
        sudoPasswordFile: o.sudoPasswordFile,
        timeoutMs: o.timeoutMs ?? 300_000,
        mergeKubeconfig: false,
        output: o.output,
      },
      io,
      deps,
      reads,
    );
  return report;
}

/**
 * `edgectl robot remove <name>`: take a learner off a running site: stop its agent and remove what
 * bootstrap installed. The leader marks its Node lost after the grace period (out-of-service taint,
 * IPs freed); then delete it from the inventory.
 */
export async function runRobotRemove(
  o: ApplyCliOptions & { robot: string; yes: boolean },
  io: Io,
  deps: BootstrapDeps = {},
) {
  const loaded = requireLearner(o.file, o.robot, 'remove', deps);
  requireYes(o, `edgectl robot remove ${o.robot}`);
  const report = await runPlanned(
    'reset',
    { ...o, robots: [o.robot] },
    io,
    deps,
    `edgectl robot remove ${o.robot} -f ${o.file} --yes`,
    { loaded },
  );
  if (!o.dryRun && o.output !== 'json')
    io.err(
      `${o.robot} is off the site. The leader marks its Node lost after the grace period (site spec nodeLoss.graceSeconds); delete ${o.robot} from ${o.file} now.`,
    );
  return report;
}

function requireLearner(
  file: string,
  robot: string,
  action: 'add' | 'remove',
  deps: BootstrapDeps,
): LoadedInventory {
  const loaded = loadInventory(file, deps.env ?? process.env);
  const inv = loaded.inventory;
  if (!inv.robots.some((r) => r.name === robot))
    throw new UsageError('NO_SUCH_ROBOT', `${file} has no robot named ${robot}`, {
      hint:
        action === 'add'
          ? `add it to robots: in ${file} first (as a learner: not in voters), then run this again`
          : `use one of ${inv.robots.map((r) => r.name).join(', ')}`,
    });
  if (inv.voters.includes(robot))
    throw new UsageError('VOTER_CHANGE', `${robot} is a voter: a running site's voters cannot change`, {
      hint:
        action === 'add'
          ? `list the voters explicitly in ${file} without ${robot} (it joins as a learner and works as any worker), or re-bootstrap the site with the new voter set (docs/bootstrap.md)`
          : `a voter leaves by re-bootstrapping the site with a new voter set (docs/bootstrap.md); a powered-off voter is simply lost, and the site keeps a majority`,
    });
  return loaded;
}

/**
 * checkMulticast runs the multicast probe between the robots just installed. Robots that cannot
 * hear each other are an error when the inventory gives no seeds (they would never find each
 * other), and a warning otherwise (the agents fall back to the seeds).
 */
async function checkMulticast(
  inv: LoadedInventory['inventory'],
  open: (r: Robot) => Promise<CommandRunner>,
  output: OutputFormat,
  io: Io,
): Promise<void> {
  const runners = new Map<string, CommandRunner>();
  try {
    for (const r of inv.robots) runners.set(r.name, await open(r));
    const result = await probeMulticast(inv, runners);
    if (output === 'json') io.out(JSON.stringify({ type: 'multicast.probe', ...result }));
    const unheard = result.unheard.map((u) => `${u.robot} did not hear ${u.missing.join(', ')}`);
    const failed = result.failed.map((f) => `${f.robot}: ${f.error}`);
    if (result.ok) {
      if (output !== 'json') io.err('multicast probe: every robot hears every other one (mDNS works)');
      return;
    }
    const what = [...unheard, ...failed].join('; ');
    if (inv.discovery.seeds === 'none' && unheard.length)
      throw new EdgeError(
        'MULTICAST_FILTERED',
        `the Wi-Fi does not carry multicast between the robots: ${what}`,
        {
          hint: 'set discovery.seeds: voters (or all) in the inventory so the agents find each other without mDNS, and run bootstrap again',
        },
      );
    if (output !== 'json')
      io.err(
        `multicast probe: ${what}. The agents fall back to their static seeds (discovery.seeds: ${JSON.stringify(inv.discovery.seeds)}).`,
      );
  } finally {
    await Promise.all([...runners.values()].map((r) => r.close().catch(() => {})));
  }
}
