/**
 * A real Kubernetes node inside a lab robot's network namespace: containerd + runc + the base CNI
 * plugins and a pod network (a bridge), and a real kubelet joined to a given API server with the
 * robot's node identity (docs/real-node.md). Multus and Whereabouts are not the node's: the site's
 * addon DaemonSets install them from locally built images, which the node imports like the air-gap
 * images a robot carries.
 *
 * Layout of one node (all under `dir`, nothing shared between nodes):
 *   holder       one long-lived process in the robot's network namespace with a private mount
 *                namespace (slave propagation); every daemon is started inside both with nsenter.
 *                `ip netns exec` would remount /sys and hide the cgroup v1 hierarchies, so the holder
 *                puts a sysfs of its network namespace on /sys and moves the cgroup tree back on it.
 *   containerd   its own root, state and socket; `restrict_oom_score_adj` because root in these VMs
 *                lacks CAP_SYS_RESOURCE and runc fails to raise a sandbox's oom_score_adj otherwise.
 *   kubelet      cgroupfs driver with a cgroup root of its own per node; cgroup v1 allowed.
 *   CNI          conf and bin dirs mounted (in the holder only) at k3s's, so the addon DaemonSets'
 *                hostPaths and the NADs the leader renders for k3s robots work unchanged.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { EdgeError } from '../../agent/errors.ts';
import { K3S_CNI_BIN_DIR, K3S_CNI_CONF_DIR } from '../../agent/site/render.ts';
import type { AddonImages } from '../../agent/site/spec.ts';
import { kubeConfigFor } from '../kube-apiserver/apiserver.ts';
import {
  cgroupHierarchies,
  killAll,
  NODE_PIDS_FILE,
  powerOffRealNode,
  processesInMountNs,
  removeCgroups,
} from './node-power.ts';
import {
  NODE_BASE_CNI_PLUGINS,
  POD_NETWORK_CONF,
  renderContainerdConfig,
  renderHolderScript,
  renderKubeletConfig,
  renderKubeServiceNat,
  renderPodNetworkConfig,
} from './render.ts';

const execFileP = promisify(execFile);
const HERE = dirname(fileURLToPath(import.meta.url));

/** Paths of the built and cached node components (lab/node/build.sh). */
export interface RealNodeBundle {
  /** The bundle file build.sh printed (what an agent's config names). */
  readonly envFile: string;
  readonly kubelet: string;
  readonly kubeControllerManager: string;
  readonly kubeScheduler: string;
  readonly multus: string;
  readonly whereabouts: string;
  readonly pauseImageTar: string;
  readonly pauseImage: string;
  readonly demoImageTar: string;
  readonly demoImage: string;
  /** The site addons' images (build.sh), imported on every node; the lab's site spec names them. */
  readonly addonImages: readonly { readonly tar: string; readonly name: string }[];
  readonly multusImage: string;
  readonly whereaboutsImage: string;
  readonly cniPluginsImage: string;
  readonly kubeVersion: string;
  readonly multusVersion: string;
  readonly whereaboutsVersion: string;
}

/** Debian's CNI plugins (containernetworking-plugins). */
export const DEBIAN_CNI_BIN_DIR = '/usr/lib/cni';

/**
 * realNodeBundle returns the cached node components. With `build` (the default) it builds what is
 * missing (lab/node/build.sh: about a second when cached, many minutes cold); without, a missing
 * bundle is an error that names the build, so `lab up` never starts a build behind the user's back.
 */
export function realNodeBundle(o: { build?: boolean } = {}): RealNodeBundle {
  for (const bin of ['containerd', 'runc', 'ctr']) {
    try {
      execFileSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' });
    } catch {
      throw new EdgeError('NODE_DEPS_MISSING', `${bin} was not found`, {
        hint: 'install the lab packages: bash lab/kube-apiserver/install-deps.sh (Debian containerd, runc, containernetworking-plugins)',
      });
    }
  }
  let out: string;
  try {
    out = execFileSync('bash', [join(HERE, 'build.sh'), ...(o.build === false ? ['--check'] : [])], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', o.build === false ? 'ignore' : 'inherit'],
    });
  } catch (e) {
    if (o.build === false)
      throw new EdgeError(
        'NODE_BUNDLE_MISSING',
        'real lab nodes need kubelet, kube-controller-manager, kube-scheduler, Multus, Whereabouts and the pause/demo images, and they are not built on this machine',
        {
          hint: 'build them once (10-25 minutes on 2 cores, cached): sudo bash lab/node/build.sh; or use --node lite',
        },
      );
    throw e;
  }
  return readRealNodeBundle(out.trim().split('\n').at(-1)!);
}

/** readRealNodeBundle reads a bundle file that lab/node/build.sh printed. */
export function readRealNodeBundle(envFile: string): RealNodeBundle {
  const kv = new Map(
    readFileSync(envFile, 'utf8')
      .split('\n')
      .filter((l) => l.includes('='))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)] as const),
  );
  const get = (k: string): string => {
    const v = kv.get(k);
    if (!v)
      throw new EdgeError('NODE_BUNDLE_BAD', `${envFile} has no ${k}`, { hint: 'rerun lab/node/build.sh' });
    return v;
  };
  return {
    envFile,
    kubelet: get('KUBELET'),
    kubeControllerManager: get('KUBE_CONTROLLER_MANAGER'),
    kubeScheduler: get('KUBE_SCHEDULER'),
    multus: get('MULTUS'),
    whereabouts: get('WHEREABOUTS'),
    pauseImageTar: get('PAUSE_IMAGE_TAR'),
    pauseImage: get('PAUSE_IMAGE'),
    demoImageTar: get('DEMO_IMAGE_TAR'),
    demoImage: get('DEMO_IMAGE'),
    addonImages: ['MULTUS', 'WHEREABOUTS', 'CNI_PLUGINS'].map((k) => ({
      tar: get(`${k}_IMAGE_TAR`),
      name: get(`${k}_IMAGE`),
    })),
    multusImage: get('MULTUS_IMAGE'),
    whereaboutsImage: get('WHEREABOUTS_IMAGE'),
    cniPluginsImage: get('CNI_PLUGINS_IMAGE'),
    kubeVersion: get('KUBE_VERSION'),
    multusVersion: get('MULTUS_VERSION'),
    whereaboutsVersion: get('WHEREABOUTS_VERSION'),
  };
}

/**
 * labAddonImages is the site spec's addons.images for a lab whose nodes import this bundle: the
 * addon DaemonSets run the images built here instead of the pinned upstream ones.
 */
export function labAddonImages(bundle: RealNodeBundle): AddonImages {
  return {
    multus: bundle.multusImage,
    whereabouts: bundle.whereaboutsImage,
    cniPlugins: bundle.cniPluginsImage,
  };
}

export interface RealNodeOptions {
  /** The node name: the robot's name, and the user system:node:<name> its token stands for. */
  readonly name: string;
  /** The robot's network namespace (under /run/netns). */
  readonly netns: string;
  /** The robot's address: kubelet's node IP. */
  readonly address: string;
  /** The pod network on this node (a bridge inside the robot's namespace), e.g. 10.244.1.0/24. */
  readonly podCidr: string;
  /** All of this node's state, logs and sockets (keep it short: unix socket paths are limited). */
  readonly dir: string;
  /** `token` is the kubelet's (system:node:<name>). */
  readonly apiServer: {
    readonly url: string;
    readonly caPem: string;
    readonly token: string;
  };
  readonly bundle: RealNodeBundle;
  /** Prefix of the node's cgroup root, so a lab's cgroups are recognisable and removable. */
  readonly cgroupPrefix: string;
  /**
   * A process in the host's mount namespace, when this one is not in it (an agent under `ip netns
   * exec`): the holder starts from its mount namespace, and cgroups are reached through its root.
   */
  readonly hostMountPid?: number;
  /** Node labels kubelet registers with (NodeRestriction allows these outside kubernetes.io). */
  readonly labels?: Readonly<Record<string, string>>;
  readonly readyTimeoutMs?: number;
}

export interface RealNodeHandle {
  readonly name: string;
  /** containerd's socket, for `ctr --address`. */
  readonly containerdSocket: string;
  readonly holderPid: number;
  /** The node's cgroup root (relative to each cgroup hierarchy). */
  readonly cgroupRoot: string;
  /** ctr runs `ctr -n k8s.io` against this node's containerd. */
  ctr(args: readonly string[]): Promise<string>;
  /** taskPid is the host PID of a running container (its id without the containerd:// prefix). */
  taskPid(containerId: string): Promise<number>;
  /**
   * stop ends the node like a power loss when `fast` (SIGKILL everything), else kubelet gets SIGTERM
   * first; either way every process of the node and its pods ends, its cgroups are removed, and
   * with `clean` its directory too.
   */
  stop(opts?: { fast?: boolean; clean?: boolean }): Promise<void>;
  /**
   * rejoin points the node at another API server (a new leader's): kubelet is restarted with new
   * credentials; containerd, and with it every running container, is left alone.
   */
  rejoin(apiServer: RealNodeOptions['apiServer']): Promise<void>;
  /** exited resolves with the name of the first daemon that exits on its own. */
  readonly exited: Promise<string>;
}

function waitExit(child: ChildProcess): Promise<void> {
  return child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve()
    : new Promise((r) => child.once('exit', () => r()));
}

/**
 * startRealNode starts the holder, containerd (and imports the pause and demo images), then
 * kubelet, and resolves once containerd answers; the caller waits for the Node to be Ready through
 * the API. Needs root, and the robot's namespace must exist.
 */
export async function startRealNode(o: RealNodeOptions): Promise<RealNodeHandle> {
  const dir = o.dir;
  // A node left running by an agent that died (a crash, not a power loss) goes first.
  powerOffRealNode(dir);
  rmSync(dir, { recursive: true, force: true });
  for (const d of ['cni/bin', 'cni/net.d', 'cni-state', 'containerd', 'kubelet', 'pod-logs'])
    mkdirSync(join(dir, d), { recursive: true, mode: 0o700 });
  // Mount points for the node's own dirs (inside its mount namespace only).
  mkdirSync(K3S_CNI_CONF_DIR, { recursive: true });
  mkdirSync(K3S_CNI_BIN_DIR, { recursive: true });
  const socket = join(dir, 'containerd.sock');
  const cgroupRoot = `/${o.cgroupPrefix}${o.name}`;

  // CNI: what k3s ships itself (Debian's build of it) and the pod network; the addon DaemonSets
  // add the other plugins, Multus (whose 00-multus.conf wraps the pod network) and Whereabouts.
  for (const p of NODE_BASE_CNI_PLUGINS) symlinkSync(join(DEBIAN_CNI_BIN_DIR, p), join(dir, 'cni', 'bin', p));
  writeFileSync(join(dir, 'cni', 'net.d', POD_NETWORK_CONF), renderPodNetworkConfig(dir, o.podCidr));
  const writeCredentials = (api: RealNodeOptions['apiServer']): void => {
    const kubelet = kubeConfigFor(api.url, api.caPem, api.token, `system:node:${o.name}`).exportConfig();
    writeFileSync(join(dir, 'kubelet.kubeconfig'), kubelet, { mode: 0o600 });
  };
  writeCredentials(o.apiServer);

  // The node's cgroup root must exist in every hierarchy before kubelet starts.
  const hostRoot = o.hostMountPid ? `/proc/${o.hostMountPid}/root` : '';
  await removeCgroups(cgroupRoot, hostRoot);
  const hierarchies = cgroupHierarchies(hostRoot);
  if (hierarchies.length === 0)
    throw new EdgeError('NODE_NO_CGROUPS', `no cgroup hierarchy under ${hostRoot}/sys/fs/cgroup`, {
      hint: o.hostMountPid
        ? `process ${o.hostMountPid} (the lab's host mount namespace anchor) is gone: recreate the lab`
        : 'start the node from the host mount namespace, not under ip netns exec',
    });
  for (const h of hierarchies) mkdirSync(join(h, cgroupRoot), { recursive: true });

  const holderLog = openSync(join(dir, 'holder.log'), 'a');
  const holder = spawn(
    'nsenter',
    [
      // From the host's mount namespace: an agent's own (ip netns exec) hides the cgroup tree.
      ...(o.hostMountPid ? [`--mount=/proc/${o.hostMountPid}/ns/mnt`] : []),
      `--net=/run/netns/${o.netns}`,
      'unshare',
      '--mount',
      '--propagation',
      'slave',
      'sh',
      '-c',
      renderHolderScript(dir),
    ],
    { stdio: ['ignore', 'pipe', holderLog], detached: true },
  );
  closeSync(holderLog);
  await new Promise<void>((resolve, reject) => {
    let out = '';
    holder.stdout!.on('data', (b: Buffer) => {
      out += b.toString();
      if (out.includes('ready')) resolve();
    });
    holder.once('exit', (code) =>
      reject(
        new EdgeError('NODE_HOLDER_FAILED', `the mount-namespace holder of ${o.name} exited (${code})`, {
          hint: `see ${join(dir, 'holder.log')}`,
        }),
      ),
    );
  });
  const holderPid = holder.pid!;
  // What a power loss of the robot must end (powerOffRealNode), for whoever plays the power switch.
  writeFileSync(join(dir, NODE_PIDS_FILE), JSON.stringify({ holderPid, cgroupRoot }));
  const inNode = (cmd: string, args: readonly string[], log: string): ChildProcess => {
    const fd = openSync(join(dir, log), 'a');
    const child = spawn('nsenter', ['-t', String(holderPid), '-m', '-n', '--', cmd, ...args], {
      stdio: ['ignore', fd, fd],
      detached: true,
    });
    closeSync(fd);
    return child;
  };

  writeFileSync(join(dir, 'containerd.toml'), renderContainerdConfig(dir, socket, o.bundle.pauseImage));
  const containerd = inNode('containerd', ['--config', join(dir, 'containerd.toml')], 'containerd.log');
  let kubelet: ChildProcess | null = null;
  let stopping = false;
  let reportExit: (name: string) => void = () => undefined;
  const exited = new Promise<string>((r) => (reportExit = r));
  // Only an exit nobody asked for counts: not a stop, not the kubelet a rejoin replaces.
  const watch = (name: string, child: ChildProcess): ChildProcess => {
    child.once('exit', () => {
      if (!stopping && (child === containerd || child === kubelet)) reportExit(name);
    });
    return child;
  };
  watch('containerd', containerd);
  const ctr = async (args: readonly string[]): Promise<string> =>
    (await execFileP('ctr', ['--address', socket, '-n', 'k8s.io', ...args], { maxBuffer: 16 << 20 })).stdout;
  // kube-proxy's part for the `kubernetes` Service, in the robot's namespace: the addon pods'
  // in-cluster config names its address.
  const pointKubeService = async (url: string, first: boolean): Promise<void> => {
    for (const args of renderKubeServiceNat(url, first)) {
      try {
        await execFileP('nsenter', ['-t', String(holderPid), '-n', '--', 'iptables', ...args]);
      } catch (e) {
        // A node restarted in the same namespace (an agent that crashed) finds its chain there.
        if (!(first && args.includes('-N') && /exists/i.test(String((e as { stderr?: string }).stderr))))
          throw new EdgeError('NODE_SERVICE_NAT_FAILED', `iptables ${args.join(' ')} failed on ${o.name}`, {
            hint: 'the lab needs iptables (nf_tables) in the robot namespaces',
            cause: e,
          });
      }
    }
  };

  const stopKubelet = async (): Promise<void> => {
    if (!kubelet) return;
    const k = kubelet;
    kubelet = null;
    k.kill('SIGTERM');
    const t = setTimeout(() => k.kill('SIGKILL'), 5000);
    await waitExit(k);
    clearTimeout(t);
  };
  const startKubelet = (): void => {
    kubelet = watch(
      'kubelet',
      inNode(
        o.bundle.kubelet,
        [
          `--config=${join(dir, 'kubelet.yaml')}`,
          `--kubeconfig=${join(dir, 'kubelet.kubeconfig')}`,
          `--root-dir=${join(dir, 'kubelet')}`,
          `--cert-dir=${join(dir, 'kubelet', 'pki')}`,
          `--hostname-override=${o.name}`,
          `--node-ip=${o.address}`,
          ...(o.labels && Object.keys(o.labels).length
            ? [
                `--node-labels=${Object.entries(o.labels)
                  .map(([k, v]) => `${k}=${v}`)
                  .join(',')}`,
              ]
            : []),
          '--v=1',
        ],
        'kubelet.log',
      ),
    );
  };

  const stop = async (so: { fast?: boolean; clean?: boolean } = {}) => {
    stopping = true;
    if (!so.fast) await stopKubelet();
    // Pods first (their cgroups), then every process in the node's mount namespace (daemons,
    // shims), then the holder: its mount namespace, with the pods' mounts, goes with it.
    const left = await removeCgroups(cgroupRoot, hostRoot);
    killAll(processesInMountNs(holderPid));
    holder.kill('SIGKILL');
    await Promise.all([containerd, kubelet, holder].map((c) => (c ? waitExit(c) : undefined)));
    const leftAfter = left.length ? await removeCgroups(cgroupRoot, hostRoot) : [];
    if (so.clean) rmSync(dir, { recursive: true, force: true });
    if (leftAfter.length)
      throw new EdgeError(
        'NODE_CGROUPS_LEFT',
        `cgroups of ${o.name} could not be removed: ${leftAfter.join(', ')}`,
        {
          hint: 'a process is still in them; kill it and rmdir the directories',
        },
      );
  };

  try {
    const deadline = performance.now() + (o.readyTimeoutMs ?? 60_000);
    for (;;) {
      if (containerd.exitCode !== null || containerd.signalCode !== null)
        throw new EdgeError('CONTAINERD_START_FAILED', `containerd of ${o.name} exited while starting`, {
          hint: `see ${join(dir, 'containerd.log')}`,
        });
      try {
        await ctr(['version']);
        break;
      } catch {
        if (performance.now() > deadline)
          throw new EdgeError('CONTAINERD_NOT_READY', `containerd of ${o.name} did not answer in time`, {
            hint: `see ${join(dir, 'containerd.log')}`,
          });
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    // No registry: the images come from the bundle, as the air-gap images do on robots.
    for (const tar of [
      o.bundle.pauseImageTar,
      o.bundle.demoImageTar,
      ...o.bundle.addonImages.map((i) => i.tar),
    ])
      await ctr(['images', 'import', tar]);
    await pointKubeService(o.apiServer.url, true);

    writeFileSync(join(dir, 'kubelet.yaml'), renderKubeletConfig(dir, socket, cgroupRoot, o.address));
    startKubelet();
  } catch (e) {
    await stop({ fast: true }).catch(() => undefined);
    throw e;
  }

  return {
    name: o.name,
    containerdSocket: socket,
    holderPid,
    cgroupRoot,
    ctr,
    taskPid: async (containerId: string) => {
      const id = containerId.replace(/^containerd:\/\//, '');
      const line = (await ctr(['tasks', 'ls'])).split('\n').find((l) => l.startsWith(`${id} `));
      const pid = Number(line?.trim().split(/\s+/)[1]);
      if (!Number.isInteger(pid) || pid <= 0)
        throw new EdgeError('NODE_TASK_MISSING', `no running task ${id} on ${o.name}`, {
          hint: `see ${join(dir, 'containerd.log')}`,
        });
      return pid;
    },
    stop,
    rejoin: async (api) => {
      if (stopping) return;
      await stopKubelet();
      if (stopping) return;
      writeCredentials(api);
      await pointKubeService(api.url, false);
      startKubelet();
    },
    exited,
  };
}
