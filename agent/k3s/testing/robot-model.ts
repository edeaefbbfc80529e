/**
 * RobotModel: an in-memory CommandRunner that models the parts of a robot the k3s plans touch:
 * files (content, mode, owner), directories, systemd units (active or not, their Condition and
 * Conflicts lines, read from the unit files the plans install), the containerd a stopped k3s leaves
 * behind, and the few k3s commands the plans run. Every call is journaled.
 *
 * It models what the plans rely on, not k3s itself: a green test here says the plans do what
 * docs/k3s.md says, not that k3s accepts them (docs/k3s.md, "What was verified").
 */
import { sha256Hex } from '../../sha256.ts';
import type { CommandRunner, RunOptions, RunResult, WriteFileOptions } from '../../exec/runner.ts';
import {
  AGENT_LOAD_BALANCER_FILES,
  AGENT_UNIT,
  CONFIG_FILE,
  DATASTORE_UNIT,
  EDGECTL_ETCD_DIR,
  ETCDCTL_BIN,
  REPLICA_UNIT,
  K3S_BIN,
  REAP_SCRIPT,
  SERVER_UNIT,
  SERVER_URL_DROPIN,
  SYSTEMD_DIR,
} from '../paths.ts';
import { KILLALL_SCRIPT } from '../plans.ts';
import { REVISION_BUMP_BIN } from '../revision-bump.ts';
import { EtcdSiteModel, type EtcdHost } from './etcd-model.ts';

export interface ModelFile {
  readonly content: string;
  readonly mode: number;
  readonly owner?: string;
}

export interface RobotModelOptions {
  readonly node: string;
  /** Node names `k3s kubectl get nodes -o name` reports on this robot's server. */
  readonly clusterNodes?: readonly string[];
  /** Return a result to make a command fail (or answer) before the model runs it. */
  readonly intercept?: (argv: readonly string[]) => RunResult | undefined;
  /**
   * The site's etcd processes, shared by the robots of one test (default: this robot's own). With
   * a shared one, k3s's server starts only while this robot's datastore runs.
   */
  readonly etcd?: EtcdSiteModel;
}

/** The state two runs are compared on. */
export interface RobotState {
  readonly files: ReadonlyArray<readonly [string, string, number, string]>;
  readonly dirs: readonly string[];
  readonly active: readonly string[];
  readonly orphanContainerd: boolean;
}

const ok = (stdout = ''): RunResult => ({ code: 0, stdout, stderr: '' });
const fail = (code: number, stderr: string): RunResult => ({ code, stdout: '', stderr });

export class RobotModel implements CommandRunner, EtcdHost {
  readonly target: string;
  readonly etcd: EtcdSiteModel;
  private readonly sharedEtcd: boolean;
  readonly files = new Map<string, ModelFile>();
  readonly dirs = new Set<string>();
  readonly active = new Set<string>();
  /** True after a k3s unit stopped (KillMode=process leaves its containerd) until the reap script ran. */
  orphanContainerd = false;
  /** Every call: argv joined by spaces, or `writeFile <path>`. */
  readonly journal: string[] = [];
  clusterNodes: string[];
  private readonly intercept: RobotModelOptions['intercept'];

  constructor(opts: RobotModelOptions) {
    this.target = opts.node;
    this.clusterNodes = [...(opts.clusterNodes ?? [])];
    this.intercept = opts.intercept;
    this.sharedEtcd = opts.etcd !== undefined;
    this.etcd = opts.etcd ?? new EtcdSiteModel();
    this.etcd.register(this);
  }

  fileContent(path: string): string | undefined {
    return this.content(path);
  }

  putFile(path: string, content: string): void {
    this.files.set(path, { content, mode: 0o600 });
  }

  hasPath(path: string): boolean {
    return this.exists(path);
  }

  /** seed puts a file on the robot as its image would have it (no journal entry). */
  seed(path: string, content: string, mode = 0o644): void {
    this.files.set(path, { content, mode });
  }

  exists(path: string): boolean {
    if (this.files.has(path) || this.dirs.has(path)) return true;
    for (const p of this.files.keys()) if (p.startsWith(`${path}/`)) return true;
    return false;
  }

  content(path: string): string | undefined {
    return this.files.get(path)?.content;
  }

  state(): RobotState {
    return {
      files: [...this.files.entries()]
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([p, f]) => [p, f.content, f.mode, f.owner ?? ''] as const),
      dirs: [...this.dirs].sort(),
      active: [...this.active].sort(),
      orphanContainerd: this.orphanContainerd,
    };
  }

  async writeFile(path: string, content: string | Buffer, opts: WriteFileOptions): Promise<void> {
    this.journal.push(`writeFile ${path}`);
    const file: ModelFile = { content: content.toString(), mode: opts.mode };
    this.files.set(path, opts.owner === undefined ? file : { ...file, owner: opts.owner });
  }

  /** Files on the operator's side, for upload steps. */
  readonly local = new Map<string, string>();

  async upload(localPath: string, path: string, opts: WriteFileOptions): Promise<void> {
    this.journal.push(`upload ${localPath} ${path}`);
    const content = this.local.get(localPath);
    if (content === undefined) throw new Error(`ENOENT: ${localPath}`);
    this.files.set(path, { content, mode: opts.mode });
  }

  async readFile(path: string): Promise<Buffer | null> {
    const f = this.files.get(path);
    return f ? Buffer.from(f.content) : null;
  }

  async close(): Promise<void> {}

  async run(argv: readonly string[], _opts?: RunOptions): Promise<RunResult> {
    this.journal.push(argv.join(' '));
    const answer = this.intercept?.(argv);
    if (answer) return answer;
    if (argv[0] === 'systemd-run') {
      // systemd-run --wait … CMD ARGS: the model runs CMD ARGS (its result is the unit's).
      const at = argv.findIndex((a, i) => i > 0 && !a.startsWith('--'));
      return at < 0 ? fail(1, 'systemd-run: no command') : this.run(argv.slice(at));
    }
    const [cmd, ...args] = argv;
    switch (cmd) {
      case 'install':
        return this.install(args);
      case 'ln':
        return this.ln(args);
      case 'sh':
        return this.sh(args);
      case 'touch':
        if (!this.files.has(args[0] ?? '')) this.files.set(args[0] ?? '', { content: '', mode: 0o644 });
        return ok();
      case 'test':
        return this.exists(args[1] ?? '') ? ok() : fail(1, '');
      case 'rm':
        return this.rm(args);
      case 'sha256sum':
        return this.sha256sum(args);
      case 'stat':
        return this.stat(args);
      case 'ls':
        return this.ls(args);
      case 'systemctl':
        return this.systemctl(args);
      case REAP_SCRIPT:
        return this.reap();
      case K3S_BIN:
        return this.k3s(args);
      case ETCDCTL_BIN:
        return this.etcd.etcdctl(this, args);
      case REVISION_BUMP_BIN:
        return this.etcd.bump(this, args);
      case 'find':
        return this.find(args);
      default:
        return fail(127, `${cmd}: command not found`);
    }
  }

  private install(args: readonly string[]): RunResult {
    if (args[0] === '-d') {
      this.dirs.add(args[3] ?? '');
      return ok();
    }
    const [, mode, src, dst] = args;
    const f = this.files.get(src ?? '');
    if (!f || !dst || !mode) return fail(1, `install: cannot stat '${src}'`);
    this.files.set(dst, { content: f.content, mode: parseInt(mode, 8) });
    return ok();
  }

  private ln(args: readonly string[]): RunResult {
    const [, target, link] = args;
    if (!link || this.files.has(link))
      return fail(1, `ln: failed to create symbolic link '${link}': File exists`);
    this.files.set(link, { content: `-> ${target}`, mode: 0o777 });
    return ok();
  }

  private sh(args: readonly string[]): RunResult {
    if (args[0] === '-c' && args[1] === KILLALL_SCRIPT) {
      // Nothing of k3s runs after it; the model keeps no mounts.
      this.orphanContainerd = false;
      return ok();
    }
    const link = /^test "\$\(readlink (\S+)\)" != k3s$/.exec(args[1] ?? '');
    if (args[0] === '-c' && link)
      return this.files.get(link[1] ?? '')?.content === '-> k3s' ? fail(1, '') : ok();
    const m = /^command -v (\S+) >\/dev\/null$/.exec(args[1] ?? '');
    if (args[0] !== '-c' || !m)
      return fail(2, 'sh: the model runs only `command -v X`, the readlink test and KILLALL_SCRIPT');
    const tool = m[1];
    return ['/usr/local/bin', '/usr/bin', '/bin'].some((d) => this.files.has(`${d}/${tool}`))
      ? ok()
      : fail(1, '');
  }

  private rm(args: readonly string[]): RunResult {
    const path = args[args.length - 1] ?? '';
    const recursive = args.includes('-rf');
    this.files.delete(path);
    this.dirs.delete(path);
    if (recursive) {
      for (const p of [...this.files.keys()]) if (p.startsWith(`${path}/`)) this.files.delete(p);
      for (const p of [...this.dirs]) if (p.startsWith(`${path}/`)) this.dirs.delete(p);
    }
    return ok();
  }

  /** find DIR -mindepth 1 -maxdepth 1 ! -name A ! -name B -exec rm -rf {} + (replica-plans discardOthers). */
  private find(args: readonly string[]): RunResult {
    const [dir, ...rest] = args;
    if (dir !== EDGECTL_ETCD_DIR || rest.slice(-5).join(' ') !== '-exec rm -rf {} +')
      return fail(2, 'find: the model runs only the discard of other epochs');
    const keep = new Set(rest.flatMap((a, i) => (a === '-name' ? [rest[i + 1] ?? ''] : [])));
    const child = (p: string) => p.slice(dir.length + 1).split('/')[0] ?? '';
    for (const p of [...this.files.keys()])
      if (p.startsWith(`${dir}/`) && !keep.has(child(p))) this.files.delete(p);
    for (const p of [...this.dirs]) if (p.startsWith(`${dir}/`) && !keep.has(child(p))) this.dirs.delete(p);
    return ok();
  }

  private sha256sum(args: readonly string[]): RunResult {
    if (args[0] !== '--check') {
      const f = this.files.get(args[0] ?? '');
      return f
        ? ok(`${sha256Hex(f.content)}  ${args[0]}\n`)
        : fail(1, `sha256sum: ${args[0]}: No such file or directory`);
    }
    const list = this.files.get(args[2] ?? '');
    if (!list) return fail(1, `sha256sum: ${args[2]}: No such file or directory`);
    for (const line of list.content.split('\n').filter(Boolean)) {
      const [sum, path] = line.split('  ');
      const f = this.files.get(path ?? '');
      if (!f || sha256Hex(f.content) !== sum) return fail(1, '');
    }
    return ok();
  }

  private stat(args: readonly string[]): RunResult {
    const f = this.files.get(args[2] ?? '');
    return f ? ok(`${Buffer.byteLength(f.content)}\n`) : fail(1, `stat: cannot stat '${args[2]}'`);
  }

  private ls(args: readonly string[]): RunResult {
    const dir = args[args.length - 1] ?? '';
    // The directory's entries: its files and the first component of deeper paths (subdirectories).
    const names = [
      ...new Set(
        [...this.files.keys(), ...this.dirs]
          .filter((p) => p.startsWith(`${dir}/`))
          .map((p) => p.slice(dir.length + 1).split('/')[0] ?? ''),
      ),
    ].sort();
    return ok(names.map((n) => `${n}\n`).join(''));
  }

  private systemctl(args: readonly string[]): RunResult {
    const [action, ...rest] = args;
    const unit = rest[rest.length - 1] ?? '';
    switch (action) {
      case 'daemon-reload':
        return ok();
      case 'is-active':
        return this.active.has(unit) ? ok('active\n') : fail(3, '');
      case 'stop':
        this.stop(unit);
        return ok();
      case 'restart':
        this.stop(unit);
        return this.start(unit);
      case 'start':
        return this.start(unit);
      default:
        return fail(1, `systemctl ${action}: not modelled`);
    }
  }

  private stop(unit: string): void {
    if (unit === DATASTORE_UNIT || unit === REPLICA_UNIT) {
      if (this.active.delete(unit)) this.etcd.stop(this, unit);
      return;
    }
    if (this.active.delete(unit)) this.orphanContainerd = true;
  }

  /** start follows the unit file: Condition… lines may skip the start, Conflicts= stops the other unit. */
  private start(unit: string): RunResult {
    const file = this.files.get(`${SYSTEMD_DIR}/${unit}`);
    if (!file) return fail(5, `Failed to start ${unit}: Unit ${unit} not found.`);
    for (const line of file.content.split('\n')) {
      const cond = /^ConditionPathExists=(!?)(.+)$/.exec(line);
      // An unmet condition makes systemd skip the start without an error: the unit stays inactive.
      if (cond && this.exists(cond[2] ?? '') === (cond[1] === '!')) return ok();
      const conflicts = /^Conflicts=(.+)$/.exec(line);
      if (conflicts) for (const other of (conflicts[1] ?? '').split(/\s+/)) this.stop(other);
    }
    if (this.active.has(unit)) return ok();
    if (unit === DATASTORE_UNIT || unit === REPLICA_UNIT) {
      const r = this.etcd.start(this, unit);
      if (r.code === 0) this.active.add(unit);
      return r;
    }
    if (
      unit === SERVER_UNIT &&
      this.sharedEtcd &&
      (this.content(CONFIG_FILE) ?? '').includes('datastore-endpoint') &&
      this.etcd.role(this.target) !== 'datastore'
    )
      return fail(1, `Job for ${unit} failed: the datastore at https://127.0.0.1:2379 does not answer`);
    this.active.add(unit);
    // What k3s does on start that the plans depend on: an agent caches the server it was told to use.
    if (unit === AGENT_UNIT) {
      const url = /server: (\S+)/.exec(this.content(SERVER_URL_DROPIN) ?? '')?.[1] ?? '';
      this.files.set(AGENT_LOAD_BALANCER_FILES[0], {
        content: JSON.stringify({ ServerURL: url }),
        mode: 0o600,
      });
    }
    return ok();
  }

  private reap(): RunResult {
    if (!this.files.has(REAP_SCRIPT)) return fail(127, `${REAP_SCRIPT}: not found`);
    if (this.active.has(SERVER_UNIT)) return fail(1, 'k3s.service is still active; stop it first');
    // A running agent owns the containerd (templates/k3s/edgectl-k3s-reap.sh).
    if (this.active.has(AGENT_UNIT)) return ok();
    this.orphanContainerd = false;
    return ok();
  }

  private k3s(args: readonly string[]): RunResult {
    if (!this.files.has(K3S_BIN)) return fail(127, `${K3S_BIN}: not found`);
    const [sub, ...rest] = args;
    if (sub === 'kubectl') {
      if (!this.active.has(SERVER_UNIT))
        return fail(1, 'The connection to the server 127.0.0.1:6443 was refused');
      if (rest.join(' ') === 'get --raw /readyz') return ok('ok');
      if (rest.join(' ') === 'get nodes -o name')
        return ok(this.clusterNodes.map((n) => `node/${n}\n`).join(''));
      if (rest[0] === 'delete' && rest[1] === 'node') {
        this.clusterNodes = this.clusterNodes.filter((n) => n !== rest[2]);
      }
      return ok();
    }
    return fail(1, `k3s ${sub}: not modelled`);
  }
}
