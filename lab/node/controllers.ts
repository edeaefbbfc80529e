/**
 * kube-controller-manager and kube-scheduler next to a lab API server (lab/kube-apiserver), so
 * Deployments, StatefulSets, scheduling, node lifecycle and eviction run as on a k3s server. Both
 * talk to the API server with the admin token and serve nothing outside loopback.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { EdgeError } from '../../agent/errors.ts';
import { freePort, kubeConfigFor, type ApiServerIdentity } from '../kube-apiserver/apiserver.ts';
import type { RealNodeBundle } from './real-node.ts';

export interface ControllersOptions {
  readonly url: string;
  readonly identity: ApiServerIdentity;
  readonly dir: string;
  readonly bundle: RealNodeBundle;
  /** Node lifecycle: how long a silent node stays Ready (the controller-manager's grace period). */
  readonly nodeMonitorGracePeriodSeconds?: number;
  /** Wrap each command, e.g. ['nsenter', '--net=/run/netns/x', '--'] to run in a robot's namespace. */
  readonly wrap?: readonly string[];
  readonly readyTimeoutMs?: number;
}

export interface ControllersHandle {
  readonly pids: readonly number[];
  stop(opts?: { fast?: boolean }): Promise<void>;
  /** exited resolves with the name of the first one that exits on its own. */
  readonly exited: Promise<string>;
}

/** healthz is one probe of a component's loopback /healthz (self-signed): the status, or 0. */
function healthz(port: number): Promise<number> {
  return new Promise((resolve) => {
    const req = request(
      { host: '127.0.0.1', port, path: '/healthz', rejectUnauthorized: false, timeout: 1000 },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on('error', () => resolve(0));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

function waitExit(child: ChildProcess): Promise<void> {
  return child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve()
    : new Promise((r) => child.once('exit', () => r()));
}

export async function startControllers(o: ControllersOptions): Promise<ControllersHandle> {
  mkdirSync(o.dir, { recursive: true, mode: 0o700 });
  const caPem = readFileSync(o.identity.caCert, 'utf8');
  const kubeconfig = join(o.dir, 'admin.kubeconfig');
  writeFileSync(kubeconfig, kubeConfigFor(o.url, caPem, o.identity.adminToken).exportConfig(), {
    mode: 0o600,
  });
  const run = (name: string, bin: string, args: string[]): ChildProcess => {
    const fd = openSync(join(o.dir, `${name}.log`), 'a');
    const wrap = o.wrap ?? [];
    const child = spawn(wrap[0] ?? bin, [...wrap.slice(1), ...(wrap.length ? [bin] : []), ...args], {
      stdio: ['ignore', fd, fd],
    });
    closeSync(fd);
    return child;
  };
  const grace = o.nodeMonitorGracePeriodSeconds;
  const kcmPort = await freePort();
  const schedulerPort = await freePort();
  const kcm = run('kube-controller-manager', o.bundle.kubeControllerManager, [
    `--kubeconfig=${kubeconfig}`,
    `--authentication-kubeconfig=${kubeconfig}`,
    `--authorization-kubeconfig=${kubeconfig}`,
    '--leader-elect=false',
    '--bind-address=127.0.0.1',
    `--secure-port=${kcmPort}`,
    `--service-account-private-key-file=${o.identity.saKey}`,
    `--root-ca-file=${o.identity.caCert}`,
    '--use-service-account-credentials=false',
    '--controllers=*,-bootstrapsigner,-tokencleaner',
    ...(grace === undefined ? [] : [`--node-monitor-grace-period=${grace}s`]),
    '--v=1',
  ]);
  const scheduler = run('kube-scheduler', o.bundle.kubeScheduler, [
    `--kubeconfig=${kubeconfig}`,
    `--authentication-kubeconfig=${kubeconfig}`,
    `--authorization-kubeconfig=${kubeconfig}`,
    '--leader-elect=false',
    '--bind-address=127.0.0.1',
    `--secure-port=${schedulerPort}`,
    '--v=1',
  ]);
  const children = [
    { name: 'kube-controller-manager', child: kcm },
    { name: 'kube-scheduler', child: scheduler },
  ];
  const exited = Promise.race(children.map((c) => waitExit(c.child).then(() => c.name)));
  const stop = async (so: { fast?: boolean } = {}) => {
    await Promise.all(
      children.map(async ({ child }) => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const done = waitExit(child);
        child.kill(so.fast ? 'SIGKILL' : 'SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 5000);
        await done;
        clearTimeout(t);
      }),
    );
  };
  // Ready when both answer /healthz; fail at once if either dies while starting (a bad flag).
  let dead: string | null = null;
  void exited.then((n) => (dead = n));
  const deadline = performance.now() + (o.readyTimeoutMs ?? 90_000);
  for (const port of [kcmPort, schedulerPort]) {
    while ((await healthz(port)) !== 200) {
      if (dead !== null || performance.now() > deadline) {
        await stop({ fast: true });
        const who = dead ?? (port === kcmPort ? 'kube-controller-manager' : 'kube-scheduler');
        throw new EdgeError(
          'CONTROLLERS_START_FAILED',
          `${who} ${dead ? 'exited' : 'was not healthy'} while starting`,
          {
            hint: `see ${join(o.dir, `${who}.log`)}`,
          },
        );
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  return { pids: children.map((c) => c.child.pid!).filter(Boolean), stop, exited };
}
