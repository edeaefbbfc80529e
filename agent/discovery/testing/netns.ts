/**
 * A throw-away LAN of Linux network namespaces for discovery tests (root only).
 *
 *   netns edt-<tag><pid>x<n>-h : bridge br0 (multicast snooping off), no address
 *   netns edt-<tag><pid>x<n>-1 : eth0 10.77.0.11/24 ── veth ── p1 (port of br0)
 *   netns edt-<tag><pid>x<n>-2 : eth0 10.77.0.12/24 ── veth ── p2
 *   …
 *
 * Nothing outside these namespaces is touched: the bridge and the veth pairs live inside them, so
 * deleting the namespaces removes everything. Every namespace gets `lo` up, IPv6 off and a route
 * for 224.0.0.0/4 on eth0. Processes are started in their own process group and killed as a group.
 * close() runs on every path (tests call it in `finally`); a process 'exit' hook and a sweep of
 * namespaces left by dead test processes catch the rest.
 */

import { execFile, execFileSync, spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { EdgeError } from '../../errors.ts';

const run = promisify(execFile);

export const LAB_SUBNET = '10.77.0.0/24';

export interface LabNode {
  /** The namespace name. */
  readonly netns: string;
  readonly ifname: string;
  readonly address: string;
}

export interface LabProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  /** stdout and stderr so far (capped), for failure messages. */
  output(): string;
  /** Resolves with the exit code (or the signal name) once the process has exited. */
  readonly exited: Promise<number | string>;
}

export interface SpawnOptions {
  env?: NodeJS.ProcessEnv;
  /** Add an IPC channel (for node children). */
  ipc?: boolean;
}

/** The tests that build namespaces need root; without it they must fail loudly, not skip. */
export function requireRoot(what: string): void {
  const uid = process.getuid?.();
  if (uid !== 0)
    throw new EdgeError(
      'TEST_NEEDS_ROOT',
      `${what} needs root (uid 0) to create network namespaces; this process runs as uid ${uid ?? 'unknown'}`,
      {
        hint: 'run the test as root (CI does), e.g. `sudo node --test …`',
      },
    );
}

let labCounter = 0;
const liveLabs = new Set<NetnsLab>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const lab of liveLabs) lab.closeSync();
  });
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Deletes namespaces named by this helper whose test process is gone (a crashed earlier run). */
async function sweepStale(): Promise<void> {
  let list: string;
  try {
    list = (await run('ip', ['netns', 'list'])).stdout;
  } catch {
    return;
  }
  for (const line of list.split('\n')) {
    const name = line.split(' ')[0] ?? '';
    const m = /^edt-[a-z]{0,4}(\d+)x\d+-[0-9h]+$/.exec(name);
    if (!m) continue;
    const pid = Number(m[1]);
    if (pid === process.pid || pidAlive(pid)) continue;
    await run('ip', ['netns', 'del', name]).catch(() => {});
  }
}

export class NetnsLab {
  readonly tag: string;
  readonly hub: string;
  readonly nodes: LabNode[] = [];
  readonly #procs = new Set<LabProcess>();
  readonly #dirs: string[] = [];
  readonly #namespaces: string[] = [];
  #closed = false;

  private constructor(tag: string) {
    this.tag = tag;
    this.hub = `edt-${tag}${process.pid}x${++labCounter}-h`;
  }

  /** Builds the namespaces; on any failure everything built so far is removed again. */
  static async create(opts: { nodes: number; tag?: string }): Promise<NetnsLab> {
    requireRoot('the network-namespace lab');
    const tag = (opts.tag ?? 't').replace(/[^a-z]/g, '').slice(0, 4);
    await sweepStale();
    const lab = new NetnsLab(tag);
    liveLabs.add(lab);
    installExitHook();
    try {
      await lab.#build(opts.nodes);
    } catch (err) {
      await lab.close();
      throw err;
    }
    return lab;
  }

  async #ip(...args: string[]): Promise<void> {
    try {
      await run('ip', args);
    } catch (err) {
      const e = err as { stderr?: string; message?: string };
      throw new Error(`ip ${args.join(' ')} failed: ${e.stderr?.trim() || e.message}`, { cause: err });
    }
  }

  async #sh(netns: string, script: string): Promise<void> {
    await run('ip', ['netns', 'exec', netns, 'sh', '-c', script]);
  }

  async #addNetns(name: string): Promise<void> {
    await this.#ip('netns', 'add', name);
    this.#namespaces.push(name);
    await this.#ip('-n', name, 'link', 'set', 'lo', 'up');
    await this.#sh(
      name,
      'echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6',
    ).catch(() => {});
  }

  async #build(count: number): Promise<void> {
    const prefix = this.hub.slice(0, -2);
    await this.#addNetns(this.hub);
    await this.#ip('-n', this.hub, 'link', 'add', 'br0', 'type', 'bridge', 'mcast_snooping', '0');
    await this.#ip('-n', this.hub, 'link', 'set', 'br0', 'up');
    for (let i = 1; i <= count; i++) {
      const netns = `${prefix}-${i}`;
      const address = `10.77.0.${10 + i}`;
      await this.#addNetns(netns);
      await this.#ip(
        '-n',
        this.hub,
        'link',
        'add',
        `p${i}`,
        'type',
        'veth',
        'peer',
        'name',
        'eth0',
        'netns',
        netns,
      );
      await this.#ip('-n', this.hub, 'link', 'set', `p${i}`, 'master', 'br0', 'up');
      await this.#ip('-n', netns, 'addr', 'add', `${address}/24`, 'dev', 'eth0');
      await this.#ip('-n', netns, 'link', 'set', 'eth0', 'up');
      await this.#ip('-n', netns, 'route', 'add', '224.0.0.0/4', 'dev', 'eth0');
      this.nodes.push({ netns, ifname: 'eth0', address });
    }
  }

  /** A fresh temporary directory, removed by close(). */
  tempDir(): string {
    const d = mkdtempSync(join(tmpdir(), `edt-${this.tag}-`));
    this.#dirs.push(d);
    return d;
  }

  /** Runs `command args…` inside the node's namespace, in a new process group. */
  spawn(node: LabNode, command: string, args: readonly string[], opts: SpawnOptions = {}): LabProcess {
    if (this.#closed) throw new Error('lab is closed');
    const stdio: StdioOptions = opts.ipc ? ['ignore', 'pipe', 'pipe', 'ipc'] : ['ignore', 'pipe', 'pipe'];
    const child = spawn('ip', ['netns', 'exec', node.netns, command, ...args], {
      detached: true,
      stdio,
      env: opts.env ?? process.env,
    });
    let out = '';
    const take = (b: Buffer): void => {
      out = (out + b.toString('utf8')).slice(-20_000);
    };
    child.stdout?.on('data', take);
    child.stderr?.on('data', take);
    const exited = new Promise<number | string>((resolve) => {
      child.on('exit', (code, signal) => resolve(code ?? signal ?? 'unknown'));
      child.on('error', (err) => {
        take(Buffer.from(String(err)));
        resolve('spawn-error');
      });
    });
    const proc: LabProcess = { child, pid: child.pid ?? -1, output: () => out, exited };
    this.#procs.add(proc);
    void exited.then(() => this.#procs.delete(proc));
    return proc;
  }

  /** Runs a command in the namespace to completion and returns stdout (rejects on failure). */
  async exec(
    node: LabNode,
    command: string,
    args: readonly string[],
    opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
  ): Promise<string> {
    const res = await run('ip', ['netns', 'exec', node.netns, command, ...args], {
      env: opts.env ?? process.env,
      timeout: opts.timeoutMs ?? 10_000,
      killSignal: 'SIGKILL',
    });
    return res.stdout;
  }

  /** Kills a process group: SIGTERM, then SIGKILL after `graceMs`. */
  async kill(proc: LabProcess, graceMs = 1000): Promise<void> {
    const signalGroup = (sig: NodeJS.Signals): void => {
      try {
        process.kill(-proc.pid, sig);
      } catch {
        // already gone
      }
    };
    if (proc.child.exitCode !== null || proc.child.signalCode !== null) {
      signalGroup('SIGKILL'); // the leader is gone; make sure its group is too
      return;
    }
    signalGroup('SIGTERM');
    const timer = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), graceMs).unref());
    if ((await Promise.race([proc.exited, timer])) === 'timeout') {
      signalGroup('SIGKILL');
      await Promise.race([proc.exited, new Promise((r) => setTimeout(r, 2000).unref())]);
    }
    signalGroup('SIGKILL');
  }

  /** Kills every process, deletes every namespace and temp dir. Safe to call more than once. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.allSettled([...this.#procs].map((p) => this.kill(p, 500)));
    for (const ns of [...this.#namespaces].reverse()) await run('ip', ['netns', 'del', ns]).catch(() => {});
    for (const d of this.#dirs) rmSync(d, { recursive: true, force: true });
    liveLabs.delete(this);
  }

  /** The synchronous last resort, from the process 'exit' hook. */
  closeSync(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const p of this.#procs) {
      try {
        process.kill(-p.pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    for (const ns of [...this.#namespaces].reverse()) {
      try {
        execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
      } catch {
        // gone
      }
    }
    for (const d of this.#dirs) rmSync(d, { recursive: true, force: true });
    liveLabs.delete(this);
  }

  /** Names of this lab's namespaces that still exist (for the cleanup assertions of tests). */
  static async leftovers(prefix: string): Promise<string[]> {
    const list = (await run('ip', ['netns', 'list'])).stdout;
    return list
      .split('\n')
      .map((l) => l.split(' ')[0] ?? '')
      .filter((n) => n.startsWith(prefix));
  }

  /** The common name prefix of this lab's namespaces. */
  get prefix(): string {
    return this.hub.slice(0, -1);
  }
}
