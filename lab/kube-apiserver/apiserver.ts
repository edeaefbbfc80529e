/**
 * A real kube-apiserver + etcd, started the way controller-runtime's envtest starts them: two plain
 * processes, no kubelet, controller-manager or scheduler. Tests start one on loopback; the lab's
 * control-plane runtime starts one inside the leader's network namespace for each epoch
 * (docs/lab-apiserver.md).
 *
 * The identity (CA, serving certificate, service-account key, tokens) is made once per site and
 * shared by every epoch's server, the lab's stand-in for the custom cluster CA and fixed tokens
 * that make a k3s leader change invisible to workers.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, openSync, closeSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { KubeConfig } from '@kubernetes/client-node';
import { createRequire } from 'node:module';
import { EdgeError } from '../../agent/errors.ts';
import { etcdPeerFlags, type EtcdPeerTls } from './etcd-peer.ts';

const execFileP = promisify(execFile);
const HERE = dirname(fileURLToPath(import.meta.url));

export const KUBE_VERSION = 'v1.36.3';

export interface ApiServerIdentity {
  readonly dir: string;
  readonly caCert: string;
  readonly servingCert: string;
  readonly servingKey: string;
  readonly saKey: string;
  readonly saPub: string;
  readonly tokensCsv: string;
  readonly adminToken: string;
  /** Each robot's kubelet token: user system:node:<name>, group system:nodes. */
  readonly nodeTokens: Readonly<Record<string, string>>;
  /**
   * Pods get service-account tokens signed with this identity's key (the ServiceAccount admission
   * plugin), as on k3s: for sites whose API servers run next to kube-controller-manager, which
   * makes every namespace's `default` account. Without it (bare API servers, lite labs), the
   * plugin stays off, or every pod would be refused for a missing account.
   */
  readonly podServiceAccounts?: boolean;
}

/** nodeTokenOf: the robot's kubelet token, or a coded error naming the fix when the lab has none. */
export function nodeTokenOf(identity: ApiServerIdentity, nodeId: string): string {
  const t = identity.nodeTokens[nodeId];
  if (!t)
    throw new EdgeError('NO_NODE_TOKEN', `the site identity has no node token for ${nodeId}`, {
      hint: 'recreate the lab (edgectl lab down; edgectl lab up) so every robot gets a token',
    });
  return t;
}

/**
 * kubeApiserverBinary returns the cached kube-apiserver, building it once (lab/kube-apiserver/
 * build.sh; minutes the first time, about a second after).
 */
export function kubeApiserverBinary(): string {
  const fromEnv = process.env['KUBE_APISERVER'];
  if (fromEnv && existsSync(fromEnv)) return fromEnv;
  const cached = join(process.env['EDGECTL_CACHE'] ?? '/var/cache/edgectl', 'kube-apiserver', KUBE_VERSION);
  if (existsSync(join(cached, 'kube-apiserver'))) return join(cached, 'kube-apiserver');
  const out = execFileSync('bash', [join(HERE, 'build.sh')], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, KUBE_VERSION },
  });
  return out.trim().split('\n').at(-1)!;
}

export function etcdBinary(): string {
  for (const p of ['/usr/bin/etcd', '/usr/local/bin/etcd']) if (existsSync(p)) return p;
  throw new EdgeError('ETCD_MISSING', 'etcd was not found', {
    hint: 'install it: bash lab/kube-apiserver/install-deps.sh (Debian etcd-server)',
  });
}

const identityFile = (dir: string) => join(dir, 'identity.json');

/**
 * createApiServerIdentity makes a CA, a serving certificate for `sans` (IP addresses or DNS
 * names), an ECDSA service-account key and bearer tokens, or loads them if `dir` has them.
 */
export async function createApiServerIdentity(
  dir: string,
  opts: { sans: readonly string[]; nodes: readonly string[]; podServiceAccounts?: boolean },
): Promise<ApiServerIdentity> {
  if (existsSync(identityFile(dir)))
    return JSON.parse(readFileSync(identityFile(dir), 'utf8')) as ApiServerIdentity;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const f = (n: string) => join(dir, n);
  const ssl = (args: string[]) => execFileP('openssl', args);
  await ssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', f('ca.key')]);
  await ssl([
    'req',
    '-x509',
    '-new',
    '-key',
    f('ca.key'),
    '-subj',
    '/CN=edgectl-lab-ca',
    '-days',
    '3650',
    '-out',
    f('ca.crt'),
  ]);
  await ssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', f('serving.key')]);
  await ssl([
    'req',
    '-new',
    '-key',
    f('serving.key'),
    '-subj',
    '/CN=kube-apiserver',
    '-out',
    f('serving.csr'),
  ]);
  const sans = [
    ...new Set(['127.0.0.1', 'localhost', 'kubernetes', 'kubernetes.default', '10.0.0.1', ...opts.sans]),
  ].map((s) => (/^[\d.]+$/.test(s) ? `IP:${s}` : `DNS:${s}`));
  writeFileSync(f('serving.ext'), `subjectAltName=${sans.join(',')}\nextendedKeyUsage=serverAuth\n`);
  await ssl([
    'x509',
    '-req',
    '-in',
    f('serving.csr'),
    '-CA',
    f('ca.crt'),
    '-CAkey',
    f('ca.key'),
    '-CAcreateserial',
    '-days',
    '3650',
    '-extfile',
    f('serving.ext'),
    '-out',
    f('serving.crt'),
  ]);
  await ssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', f('sa.key')]);
  await ssl(['ec', '-in', f('sa.key'), '-pubout', '-out', f('sa.pub')]);
  const adminToken = randomBytes(24).toString('hex');
  const nodeTokens: Record<string, string> = {};
  const lines = [`${adminToken},admin,admin-uid,"system:masters"`];
  for (const n of opts.nodes) {
    nodeTokens[n] = randomBytes(24).toString('hex');
    lines.push(`${nodeTokens[n]},system:node:${n},node-${n},"system:nodes"`);
  }
  writeFileSync(f('tokens.csv'), `${lines.join('\n')}\n`, { mode: 0o600 });
  const identity: ApiServerIdentity = {
    dir,
    caCert: f('ca.crt'),
    servingCert: f('serving.crt'),
    servingKey: f('serving.key'),
    saKey: f('sa.key'),
    saPub: f('sa.pub'),
    tokensCsv: f('tokens.csv'),
    adminToken,
    nodeTokens,
    ...(opts.podServiceAccounts ? { podServiceAccounts: true } : {}),
  };
  writeFileSync(identityFile(dir), JSON.stringify(identity, null, 2), { mode: 0o600 });
  return identity;
}

/** loadApiServerIdentity reads an identity createApiServerIdentity made. */
export function loadApiServerIdentity(dir: string): ApiServerIdentity {
  try {
    return JSON.parse(readFileSync(identityFile(dir), 'utf8')) as ApiServerIdentity;
  } catch (e) {
    throw new EdgeError('IDENTITY_MISSING', `no site identity in ${dir}`, {
      hint: 'edgectl lab up creates it; run it again',
      cause: e,
    });
  }
}

/** freePort asks the kernel for a free TCP port on loopback. */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const a = s.address();
      s.close(() => (typeof a === 'object' && a ? resolve(a.port) : reject(new Error('no port'))));
    });
  });
}

export interface ApiServerOptions {
  readonly identity: ApiServerIdentity;
  /** etcd's data and the processes' logs go here. */
  readonly dir: string;
  readonly bindAddress?: string;
  /** Fixed ports (inside a robot's namespace); default: free loopback ports. */
  readonly ports?: { readonly secure: number; readonly etcdClient: number; readonly etcdPeer: number };
  readonly readyTimeoutMs?: number;
  /** An etcd snapshot to restore into a fresh data dir before starting (nothing lost on failover). */
  readonly restoreFrom?: string;
  /**
   * restoreFrom is a replica's bbolt file (member/snap/db of a stopped learner), not an `etcdctl
   * snapshot save` file: it has no snapshot hash to check.
   */
  readonly restoreSkipHashCheck?: boolean;
  /**
   * Run on the restored etcd data dir before etcd first starts (only when restoreFrom restored
   * one): the lab moves its revision forward there (lab/runtime/revision-bump.ts).
   */
  readonly afterRestore?: (etcdDataDir: string) => Promise<void>;
  /** The etcd member's name (the robot's node id when it replicates); default `edgectl`. */
  readonly etcdName?: string;
  /**
   * etcd's peer port on the robot's site address with TLS both ways, so that voters' learners can
   * replicate it (docs/k3s.md "Replication"); absent: peer traffic stays on loopback.
   */
  readonly peer?: { readonly url: string; readonly tls: EtcdPeerTls };
}

export interface ApiServerHandle {
  readonly url: string;
  readonly adminToken: string;
  readonly caPem: string;
  readonly etcdEndpoint: string;
  /** Process start to /readyz ok, kube-apiserver only, in ms. */
  readonly coldStartMs: number;
  /** The restore of restoreFrom into the data dir (etcdctl, before afterRestore), ms; null: none. */
  readonly restoreMs: number | null;
  readonly pids: readonly number[];
  kubeConfig(token?: string, user?: string): KubeConfig;
  /** snapshot writes an etcd snapshot (etcdctl snapshot save) to `path`. */
  snapshot(path: string): Promise<void>;
  /** stop ends both processes: SIGKILL at once when `fast` (fencing), else SIGTERM first. */
  stop(opts?: { fast?: boolean }): Promise<void>;
  /** exited resolves when either process exits on its own. */
  readonly exited: Promise<string>;
}

/** getReadyz is one probe of /readyz: the HTTP status, or 0 when it does not answer. */
export function getReadyz(url: string, token: string, caPem: string, timeoutMs = 1000): Promise<number> {
  return new Promise((resolve) => {
    const req = request(
      `${url}/readyz`,
      { ca: caPem, headers: { authorization: `Bearer ${token}` }, timeout: timeoutMs },
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

async function stopChild(child: ChildProcess, fast: boolean): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = waitExit(child);
  child.kill(fast ? 'SIGKILL' : 'SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

/** startApiServer starts etcd, then kube-apiserver, and resolves once /readyz answers 200. */
export async function startApiServer(opts: ApiServerOptions): Promise<ApiServerHandle> {
  const host = opts.bindAddress ?? '127.0.0.1';
  const ports = opts.ports ?? {
    secure: await freePort(host),
    etcdClient: await freePort(),
    etcdPeer: await freePort(),
  };
  mkdirSync(opts.dir, { recursive: true, mode: 0o700 });
  const etcdData = join(opts.dir, 'etcd');
  // etcd listens on loopback only: in a robot's namespace that is the robot's own loopback.
  const etcdEndpoint = `http://127.0.0.1:${ports.etcdClient}`;
  const peerUrl = opts.peer?.url ?? `http://127.0.0.1:${ports.etcdPeer}`;
  const name = opts.etcdName ?? 'edgectl';
  let restoreMs: number | null = null;
  if (opts.restoreFrom && !existsSync(etcdData)) {
    const restoreStarted = performance.now();
    // etcd 3.4's etcdctl restores into a new data dir; the member gets the same name and peer URL.
    await execFileP(
      'etcdctl',
      [
        'snapshot',
        'restore',
        opts.restoreFrom,
        `--data-dir=${etcdData}`,
        `--name=${name}`,
        `--initial-cluster=${name}=${peerUrl}`,
        `--initial-advertise-peer-urls=${peerUrl}`,
        ...(opts.restoreSkipHashCheck ? ['--skip-hash-check'] : []),
      ],
      { env: { ...process.env, ETCDCTL_API: '3' } },
    );
    restoreMs = performance.now() - restoreStarted;
    try {
      await opts.afterRestore?.(etcdData);
    } catch (e) {
      // Never start from a restore that missed this step: the next start restores again.
      rmSync(etcdData, { recursive: true, force: true });
      throw e;
    }
  }
  const etcdLog = openSync(join(opts.dir, 'etcd.log'), 'a');
  const etcd = spawn(
    etcdBinary(),
    [
      `--name=${name}`,
      `--data-dir=${etcdData}`,
      `--listen-client-urls=${etcdEndpoint}`,
      `--advertise-client-urls=${etcdEndpoint}`,
      `--listen-peer-urls=${peerUrl}`,
      `--initial-advertise-peer-urls=${peerUrl}`,
      `--initial-cluster=${name}=${peerUrl}`,
      '--initial-cluster-state=new',
      '--log-level=warn',
      ...(opts.peer ? etcdPeerFlags(opts.peer.tls) : []),
    ],
    { stdio: ['ignore', etcdLog, etcdLog] },
  );
  closeSync(etcdLog);
  const url = `https://${host}:${ports.secure}`;
  const apiLog = openSync(join(opts.dir, 'kube-apiserver.log'), 'a');
  const started = performance.now();
  const api = spawn(
    kubeApiserverBinary(),
    [
      `--advertise-address=${host === '0.0.0.0' ? '127.0.0.1' : host}`,
      `--bind-address=${host}`,
      `--secure-port=${ports.secure}`,
      `--tls-cert-file=${opts.identity.servingCert}`,
      `--tls-private-key-file=${opts.identity.servingKey}`,
      `--client-ca-file=${opts.identity.caCert}`,
      `--etcd-servers=${etcdEndpoint}`,
      '--service-cluster-ip-range=10.0.0.0/24',
      '--allow-privileged=true',
      '--authorization-mode=Node,RBAC',
      '--enable-admission-plugins=NodeRestriction',
      ...(opts.identity.podServiceAccounts ? [] : ['--disable-admission-plugins=ServiceAccount']),
      `--token-auth-file=${opts.identity.tokensCsv}`,
      `--service-account-issuer=https://kubernetes.default.svc`,
      `--service-account-key-file=${opts.identity.saPub}`,
      `--service-account-signing-key-file=${opts.identity.saKey}`,
      '--profiling=false',
      '--v=0',
    ],
    { stdio: ['ignore', apiLog, apiLog] },
  );
  closeSync(apiLog);
  const pids = [etcd.pid, api.pid].filter((p): p is number => p !== undefined);
  const exited = Promise.race([
    waitExit(etcd).then(() => 'etcd'),
    waitExit(api).then(() => 'kube-apiserver'),
  ]);
  let dead: string | null = null;
  void exited.then((w) => (dead = w));
  const caPem = readFileSync(opts.identity.caCert, 'utf8');
  const stop = async (o: { fast?: boolean } = {}) => {
    await stopChild(api, o.fast ?? false);
    await stopChild(etcd, o.fast ?? false);
  };
  const deadline = started + (opts.readyTimeoutMs ?? 90_000);
  for (;;) {
    if (dead !== null) {
      await stop({ fast: true });
      const log = readFileSync(join(opts.dir, `${dead}.log`), 'utf8')
        .split('\n')
        .slice(-15)
        .join('\n');
      throw new EdgeError('APISERVER_START_FAILED', `${dead} exited while starting:\n${log}`, {
        hint: `see ${join(opts.dir, `${dead}.log`)}`,
      });
    }
    if ((await getReadyz(url, opts.identity.adminToken, caPem)) === 200) break;
    if (performance.now() > deadline) {
      await stop({ fast: true });
      throw new EdgeError('APISERVER_NOT_READY', `kube-apiserver at ${url} was not ready in time`, {
        hint: `see ${join(opts.dir, 'kube-apiserver.log')}`,
      });
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const coldStartMs = performance.now() - started;
  return {
    url,
    adminToken: opts.identity.adminToken,
    caPem,
    etcdEndpoint,
    coldStartMs,
    restoreMs,
    pids,
    exited,
    kubeConfig: (token = opts.identity.adminToken, user = 'admin') => kubeConfigFor(url, caPem, token, user),
    snapshot: async (path: string) => {
      await execFileP('etcdctl', [`--endpoints=${etcdEndpoint}`, 'snapshot', 'save', path], {
        env: { ...process.env, ETCDCTL_API: '3' },
      });
    },
    stop,
  };
}

/** kubeConfigFor builds a client config for a server, its CA and a bearer token. */
export function kubeConfigFor(url: string, caPem: string, token: string, user = 'admin'): KubeConfig {
  // Loaded on first use: the client is a large module that `lab status`, `lab fault` and the
  // identity helpers here never need, and loading it made every lab command slow to start. This is
  // for the CLI and tests, which run from the sources; the agents' runtimes reach the API server
  // through agent/site/kube-client.ts, without the client.
  const { KubeConfig: Config } = createRequire(import.meta.url)(
    '@kubernetes/client-node',
  ) as typeof import('@kubernetes/client-node');
  const kc = new Config();
  kc.loadFromOptions({
    clusters: [{ name: 'edgectl', server: url, caData: Buffer.from(caPem).toString('base64') }],
    users: [{ name: user, token }],
    contexts: [{ name: 'edgectl', cluster: 'edgectl', user }],
    currentContext: 'edgectl',
  });
  return kc;
}
