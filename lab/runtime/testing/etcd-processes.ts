/**
 * Real etcd processes for the tests and benchmarks that run Debian's etcd on loopback without
 * network namespaces (replication, the revision bump, a takeover's steps).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { etcdBinary } from '../../kube-apiserver/apiserver.ts';

/** untilValue polls `f` until it gives a value (a rejection counts as none), or throws naming `what`. */
export async function untilValue<T>(
  what: string,
  f: () => Promise<T | null>,
  o: { readonly timeoutMs?: number; readonly everyMs?: number } = {},
): Promise<T> {
  const end = Date.now() + (o.timeoutMs ?? 20_000);
  for (;;) {
    const v = await f().catch(() => null);
    if (v !== null) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, o.everyMs ?? 100));
  }
}

/** The flags of a one-member etcd named `name` on `dataDir`, serving clients at `endpoint`. */
export function singleMemberFlags(
  name: string,
  dataDir: string,
  endpoint: string,
  peerUrl: string,
): string[] {
  return [
    `--name=${name}`,
    `--data-dir=${dataDir}`,
    `--listen-client-urls=${endpoint}`,
    `--advertise-client-urls=${endpoint}`,
    `--listen-peer-urls=${peerUrl}`,
    `--initial-advertise-peer-urls=${peerUrl}`,
    `--initial-cluster=${name}=${peerUrl}`,
  ];
}

/** EtcdProcesses starts etcd processes and kills every one still running at the end. */
export class EtcdProcesses {
  private readonly children: ChildProcess[] = [];
  private readonly logLevel: 'error' | 'warn';
  constructor(logLevel: 'error' | 'warn' = 'error') {
    this.logLevel = logLevel;
  }

  spawn(args: readonly string[]): ChildProcess {
    const c = spawn(etcdBinary(), [...args, `--log-level=${this.logLevel}`], { stdio: 'ignore' });
    this.children.push(c);
    return c;
  }

  killAll(): void {
    for (const c of this.children.splice(0)) c.kill('SIGKILL');
  }
}
