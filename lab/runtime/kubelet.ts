/**
 * The lab kubelet: what a robot's kubelet does to the API server, and nothing else. It registers
 * the robot's Node, reports it Ready and renews its Lease in kube-node-lease, the way kubelet
 * does, so the lab can measure "all robots Ready on the new server" against a real API server.
 * It runs no pods. The agent starts one per join (a worker) and one beside its own server (a
 * leader, like k3s server's embedded agent).
 */
import type { Logger } from 'pino';
import { EdgeError } from '../../agent/errors.ts';
import { KubeHttp } from './kube-http.ts';

export interface LabKubeletOptions {
  readonly nodeName: string;
  readonly address: string;
  readonly server: string;
  readonly caPem: string;
  readonly token: string;
  readonly labels?: Readonly<Record<string, string>>;
  /** Lease and status renewal period (kubelet: 10 s; lease duration 40 s). */
  readonly renewIntervalMs?: number;
  readonly log?: Logger;
}

/** microTime formats a time the way metav1.MicroTime is serialised. */
export function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

export class LabKubelet {
  private readonly o: LabKubeletOptions;
  private readonly api: KubeHttp;
  private timer: ReturnType<typeof setInterval> | undefined;
  private stopped = false;
  private renewing = false;

  constructor(o: LabKubeletOptions) {
    this.o = o;
    this.api = new KubeHttp({ server: o.server, caPem: o.caPem, token: o.token, timeoutMs: 2000 });
  }

  get server(): string {
    return this.o.server;
  }

  /** register makes the Node exist and Ready with a fresh Lease; it rejects if the server refuses. */
  async register(): Promise<void> {
    const name = this.o.nodeName;
    const labels = {
      'kubernetes.io/hostname': name,
      'node.edgectl.io/robot': name,
      ...this.o.labels,
    };
    const created = await this.api.call('POST', '/api/v1/nodes', {
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name, labels },
    });
    if (created.status === 409) {
      // The Node survived the failover (restored snapshot): update its labels, keep the object.
      await this.api.ok(
        'PATCH',
        `/api/v1/nodes/${name}`,
        { metadata: { labels } },
        'application/merge-patch+json',
      );
    } else if (created.status !== 201) {
      throw new EdgeError('NODE_REGISTER_FAILED', `register Node ${name}: HTTP ${created.status}`, {
        hint: 'check the node token and the server log',
      });
    }
    await this.renew();
    this.timer = setInterval(() => void this.renew().catch(() => {}), this.o.renewIntervalMs ?? 10_000);
    this.timer.unref();
  }

  /** renew reports Ready and renews the Lease, like kubelet's status and lease loops. */
  async renew(): Promise<void> {
    if (this.stopped || this.renewing) return;
    this.renewing = true;
    try {
      const name = this.o.nodeName;
      const now = Date.now();
      const stamp = new Date(now).toISOString().replace(/\.\d{3}Z$/, 'Z');
      await this.api.ok(
        'PATCH',
        `/api/v1/nodes/${name}/status`,
        {
          status: {
            conditions: [
              {
                type: 'Ready',
                status: 'True',
                reason: 'KubeletReady',
                message: 'edgectl lab kubelet is posting ready status',
                lastHeartbeatTime: stamp,
                lastTransitionTime: stamp,
              },
            ],
            addresses: [
              { type: 'InternalIP', address: this.o.address },
              { type: 'Hostname', address: name },
            ],
          },
        },
        'application/merge-patch+json',
      );
      const path = `/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/${name}`;
      const spec = { holderIdentity: name, leaseDurationSeconds: 40, renewTime: microTime(now) };
      const r = await this.api.call('PATCH', path, { spec }, 'application/merge-patch+json');
      if (r.status === 404) {
        await this.api.ok('POST', '/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases', {
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: { name, namespace: 'kube-node-lease' },
          spec,
        });
      } else if (r.status !== 200) {
        throw new EdgeError('LEASE_RENEW_FAILED', `renew Lease ${name}: HTTP ${r.status}`);
      }
    } finally {
      this.renewing = false;
    }
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
  }
}
