/**
 * ControlPlaneRuntime is how the agent touches the control plane: the k3s server and agent on a
 * robot (k3s.ts), kube-apiserver + etcd and a lab kubelet in the netns lab
 * (lab/runtime/lab-control-plane.ts), or an in-memory twin in tests (in-memory.ts). The agent's
 * lifecycle statechart decides when each call happens; the runtime only does it. What the leader
 * does on its server for the site (apply it, mark robots lost and back) is the agent's SiteApplier
 * (agent/site/leader-site.ts) on every runtime; a runtime only says how to reach its server
 * (apiServer).
 *
 * Contract:
 * - Every method may take long and may fail: failures are rejected promises with an EdgeError. The
 *   lifecycle statechart turns them into retry states; nothing here retries on its own.
 * - stopServer and resetWorker are idempotent and must succeed on a runtime that runs nothing.
 * - startServer(epoch) resolves when the server of that epoch serves; a later stopServer(epoch) stops it.
 * - joinAsWorker resolves when this robot's node is Ready on the leader's server.
 * - The runtime never decides roles, and it never runs two servers at once.
 */
import type { NodeId } from '../../statecharts/messages.ts';
import type { ObjectClient } from '../site/object-client.ts';

export interface LeaderEndpoint {
  readonly id: NodeId;
  /** Where the leader's server listens (https://host:6443 on k3s). */
  readonly host: string;
}

export interface ControlPlaneStatus {
  readonly server: { readonly epoch: number; readonly state: 'starting' | 'serving' } | null;
  readonly worker: {
    readonly leader: NodeId;
    readonly epoch: number;
    readonly state: 'joining' | 'ready';
  } | null;
  /** Runtime-specific facts for /status (the lab: API server URL and its cold start). */
  readonly details?: Readonly<Record<string, string | number | null>>;
}

export interface ControlPlaneRuntime {
  readonly kind: string;
  startServer(epoch: number): Promise<void>;
  stopServer(epoch: number): Promise<void>;
  /**
   * How the leader's SiteApplier reaches the Kubernetes API server this robot serves. The agent
   * calls it only while this robot serves; it throws NO_SERVER when nothing serves here.
   */
  apiServer(): ApiServerAccess;
  joinAsWorker(leader: LeaderEndpoint, epoch: number): Promise<void>;
  resetWorker(): Promise<void>;
  status(): ControlPlaneStatus;
  close(): Promise<void>;

  /**
   * Optional: snapshot this robot's serving control plane for `epoch` and keep it. A new leader's
   * startServer restores the newest snapshot the runtime holds, so nothing older is lost.
   */
  snapshot?(epoch: number): Promise<SnapshotRecord>;
  /** Optional: send a kept snapshot to other server-capable robots; resolves those that kept it. */
  shipSnapshot?(name: string, to: readonly LeaderEndpoint[]): Promise<NodeId[]>;
  /**
   * Optional: the agent tells the runtime how to read the leader's lease: until when (monotonic
   * ms, the agent's clock) this robot may serve `epoch`, or null. A runtime with a fenced front
   * door checks it on every connection (lab/runtime/front-door.ts).
   */
  setFence?(leaseExpiresAt: (epoch: number) => number | null): void;
}

/**
 * ApiServerAccess: an admin kubeconfig file (k3s writes /etc/rancher/k3s/k3s.yaml), an endpoint
 * with its CA and a bearer token (the lab's kube-apiserver), or the in-memory twin's object store.
 */
export type ApiServerAccess =
  | { readonly kind: 'kubeconfig'; readonly file: string }
  | { readonly kind: 'token'; readonly url: string; readonly caPem: string; readonly token: string }
  | { readonly kind: 'objects'; readonly client: ObjectClient };

/** A control-plane snapshot, as recorded in the replicated site log. */
export interface SnapshotRecord {
  readonly name: string;
  readonly epoch: number;
  readonly from: NodeId;
  readonly sha256: string;
  readonly size: number;
  readonly createdAt: string;
}
