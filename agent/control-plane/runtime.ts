/**
 * ControlPlaneRuntime is how the agent touches the control plane: the k3s server and agent on a
 * robot (the k3s issue), kube-apiserver + etcd and a lab kubelet in the netns lab (the lab issue),
 * or an in-memory twin in tests (in-memory.ts). The agent's lifecycle statechart decides when each
 * call happens; the runtime only does it.
 *
 * Contract:
 * - Every method may take long and may fail: failures are rejected promises with an EdgeError. The
 *   lifecycle statechart turns them into retry states; nothing here retries on its own.
 * - stopServer and resetWorker are idempotent and must succeed on a runtime that runs nothing.
 * - startServer(epoch) resolves when the server of that epoch serves; a later stopServer(epoch) stops it.
 * - joinAsWorker resolves when this robot's node is Ready on the leader's server.
 * - siteServer(epoch) resolves only while this robot serves that epoch.
 * - The runtime never decides roles, and it never runs two servers at once.
 *
 * The site itself (its objects, node loss) is not the runtime's: the agent's one LeaderSite
 * (agent/site/leader-site.ts) writes it through siteServer on every runtime.
 */
import type { NodeId } from '../../statecharts/messages.ts';
import type { ObjectClient } from '../site/object-client.ts';
import type { ReplicaPosition } from './replica.ts';

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
    /** `server unreachable`: set by the agent's status when no live leader vouches for that server. */
    readonly state: 'joining' | 'ready' | 'server unreachable';
  } | null;
  /** Runtime-specific facts for /status (the lab: API server URL and its cold start). */
  readonly details?: Readonly<Record<string, string | number | null>>;
}

export interface ControlPlaneRuntime {
  readonly kind: string;
  startServer(epoch: number): Promise<void>;
  stopServer(epoch: number): Promise<void>;
  /**
   * The API server this robot serves for `epoch`, for the agent's LeaderSite to apply the site and
   * act on node loss: k3s's admin kubeconfig on a robot, the lab's kube-apiserver and its token.
   * Rejects (NO_SERVER) unless this robot serves `epoch` now: a demoted leader writes nothing.
   */
  siteServer(epoch: number): Promise<ObjectClient>;
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
  /**
   * Optional: the agent tells the runtime what the election knows, once, before it starts: whose
   * snapshot pushes to accept, and which snapshots the site log has committed (the only ones a new
   * leader may restore).
   */
  setSiteView?(view: SiteView): void;
  /** Optional: snapshot pushes this robot's receiver handled so far, by result (for /metrics). */
  snapshotPushes?(): Readonly<Record<string, number>>;

  /**
   * Optional, continuous replication (docs/k3s.md "Replication"). followReplica: this voter, a
   * follower of `leader` in `epoch`, keeps a replica of the leader's datastore for that epoch (an
   * etcd learner), discarding whatever it held before. It resolves once the replica is started,
   * not when it has caught up; the runtime retries on its own while the leader has not added it.
   */
  followReplica?(leader: LeaderEndpoint, epoch: number): Promise<void>;
  /**
   * Optional: the leader makes its datastore's replicas the first of `voters` (live voters, in the
   * order of preference), within what the datastore allows. Writes never wait for a replica.
   */
  syncReplicas?(epoch: number, voters: readonly LeaderEndpoint[]): Promise<void>;
  /** Optional: the position of the replica this robot holds, null for none. */
  replicaPosition?(): ReplicaPosition | null;
  /** Optional: while this robot serves, the voter that holds its standby replica, or null. */
  standby?(): NodeId | null;
}

/** SiteView: the election's view as the snapshot code reads it, each time it needs it. */
export interface SiteView {
  /** This robot's current term, and the leader it knows in that term (itself when it leads). */
  leadership(): { readonly term: number; readonly leader: NodeId | null };
  /** The valid snapshot records of the site log's committed entries, in log order. */
  committedSnapshots(): readonly SnapshotRecord[];
}

/** A control-plane snapshot, as recorded in the replicated site log. */
export interface SnapshotRecord {
  readonly name: string;
  readonly epoch: number;
  readonly from: NodeId;
  readonly sha256: string;
  readonly size: number;
  readonly createdAt: string;
}
