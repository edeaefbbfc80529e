/**
 * A lab robot's real node (lab/node/real-node.ts) driven by the agent's lifecycle, the way a k3s
 * agent is on a robot: the first join starts containerd + kubelet, every later join (a new leader,
 * a new epoch) re-points kubelet at the new server and leaves containerd and the running pods alone.
 * A leader's control plane adds kube-controller-manager and kube-scheduler (lab/node/controllers.ts).
 * Loaded only when `lab up --node real` wrote `controlPlane.node` into the agent's config.
 */
import { join } from 'node:path';
import type { Logger } from 'pino';
import { EdgeError } from '../../agent/errors.ts';
import { nodeTokenOf, type ApiServerIdentity } from '../kube-apiserver/apiserver.ts';
import { startControllers, type ControllersHandle } from '../node/controllers.ts';
import {
  readRealNodeBundle,
  startRealNode,
  type RealNodeBundle,
  type RealNodeHandle,
} from '../node/real-node.ts';
import { KubeHttp } from './kube-http.ts';

/** The agent config's `controlPlane.node` for a real node (written by `lab up --node real`). */
export interface RealNodeConfig {
  readonly kind: 'real';
  /** The robot's network namespace (under /run/netns): the node's daemons run in it. */
  readonly netns: string;
  /** The bundle file lab/node/build.sh printed. */
  readonly bundle: string;
  /** This robot's pod network, e.g. 10.244.3.0/24. */
  readonly podCidr: string;
  /** The node's directory (containerd, kubelet, CNI; keep it short: socket paths are limited). */
  readonly dir: string;
  /** Prefix of the node's cgroup root: the lab's, so `lab down` finds every node's cgroups. */
  readonly cgroupPrefix: string;
  /** A process in the host's mount namespace (`lab up` leaves one): see RealNodeOptions. */
  readonly hostMountPid: number;
  /** kube-controller-manager's --node-monitor-grace-period on this robot's control plane. */
  readonly nodeMonitorGraceSeconds?: number;
}

export interface ServerAccess {
  readonly url: string;
  readonly caPem: string;
  readonly adminToken: string;
}

/** How long a join waits for kubelet to renew its Lease on the new server. */
const JOIN_TIMEOUT_MS = 60_000;

export interface RealRobotNodeOptions {
  readonly nodeId: string;
  readonly address: string;
  readonly identity: ApiServerIdentity;
  readonly labels: Readonly<Record<string, string>>;
  readonly config: RealNodeConfig;
  readonly log: Logger;
}

export class RealRobotNode {
  private readonly bundle: RealNodeBundle;
  private node: RealNodeHandle | null = null;
  private starting: Promise<RealNodeHandle> | null = null;
  private controllers: ControllersHandle | null = null;
  private joined: string | null = null;

  private readonly o: RealRobotNodeOptions;

  constructor(o: RealRobotNodeOptions) {
    this.o = o;
    this.bundle = readRealNodeBundle(o.config.bundle);
  }

  /** The API server the node's kubelet reports to now. */
  get server(): string | null {
    return this.joined;
  }

  private admin(server: ServerAccess): KubeHttp {
    return new KubeHttp({
      server: server.url,
      caPem: server.caPem,
      token: server.adminToken,
      timeoutMs: 5000,
    });
  }

  /**
   * startControlPlane is what a leader adds to etcd + kube-apiserver: kube-controller-manager and
   * kube-scheduler against its own (fenced) front door.
   */
  async startControlPlane(server: ServerAccess, dir: string): Promise<void> {
    await this.stopControlPlane();
    this.controllers = await startControllers({
      url: server.url,
      identity: this.o.identity,
      dir: join(dir, 'controllers'),
      bundle: this.bundle,
      nodeMonitorGracePeriodSeconds: this.o.config.nodeMonitorGraceSeconds,
    });
    void this.controllers.exited.then((which) => {
      if (this.controllers) this.o.log.error(`${this.o.nodeId}'s ${which} exited on its own`);
    });
  }

  async stopControlPlane(): Promise<void> {
    const c = this.controllers;
    this.controllers = null;
    await c?.stop({ fast: true });
  }

  /**
   * join makes the node report to `server`: the first time containerd and kubelet start, later
   * kubelet alone is restarted with the new server's credentials. Resolves once kubelet has renewed
   * its Lease there.
   */
  async join(server: ServerAccess): Promise<void> {
    const access = {
      url: server.url,
      caPem: server.caPem,
      token: this.nodeToken(),
    };
    const since = Date.now();
    if (!this.node) {
      this.starting ??= startRealNode({
        name: this.o.nodeId,
        netns: this.o.config.netns,
        address: this.o.address,
        podCidr: this.o.config.podCidr,
        dir: this.o.config.dir,
        apiServer: access,
        bundle: this.bundle,
        cgroupPrefix: this.o.config.cgroupPrefix,
        labels: this.o.labels,
        hostMountPid: this.o.config.hostMountPid,
      });
      try {
        this.node = await this.starting;
      } finally {
        this.starting = null;
      }
      void this.node.exited.then((which) =>
        this.o.log.error(`${this.o.nodeId}'s ${which} exited on its own (see ${this.o.config.dir})`),
      );
    } else await this.node.rejoin(access);
    this.joined = server.url;
    const api = this.admin(server);
    const lease = `/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/${this.o.nodeId}`;
    const deadline = Date.now() + JOIN_TIMEOUT_MS;
    for (;;) {
      const r = await api.call('GET', lease).catch(() => null);
      const renewed = (r?.body as { spec?: { renewTime?: string } } | null)?.spec?.renewTime;
      if (renewed && Date.parse(renewed) >= since - 1000) return;
      if (Date.now() > deadline || this.joined !== server.url)
        throw new EdgeError(
          'NODE_JOIN_TIMEOUT',
          `${this.o.nodeId}'s kubelet did not report to ${server.url}`,
          {
            hint: `see ${join(this.o.config.dir, 'kubelet.log')}`,
          },
        );
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  private nodeToken(): string {
    return nodeTokenOf(this.o.identity, this.o.nodeId);
  }

  /** close stops the controllers and the node (the agent is going away: the robot shuts down). */
  async close(): Promise<void> {
    await this.stopControlPlane();
    const n = this.node ?? (await this.starting?.catch(() => null)) ?? null;
    this.node = null;
    await n?.stop({ fast: true });
  }
}
