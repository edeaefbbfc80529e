/**
 * The lab's ControlPlaneRuntime: the agent's own code paths decide when to start, stop, join and
 * reset (statecharts/node.ts); this runtime does it with real processes inside the robot's network
 * namespace. A leader runs a real etcd + kube-apiserver for its epoch and registers itself with a
 * lab kubelet (like k3s server's embedded agent); a worker runs a lab kubelet against the leader's
 * server. It stands in only for k3s, which needs a robot's systemd (docs/lab.md).
 *
 * Every epoch's server uses the same site identity (CA, serving certificate, tokens), so workers
 * trust any elected robot's server, as the k3s custom CA and fixed tokens do on robots.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { EdgeError } from '../../agent/errors.ts';
import type {
  ApiServerAccess,
  ControlPlaneRuntime,
  ControlPlaneStatus,
  LeaderEndpoint,
} from '../../agent/control-plane/runtime.ts';
import { startApiServer, type ApiServerHandle, type ApiServerIdentity } from '../kube-apiserver/apiserver.ts';
import { FrontDoor } from './front-door.ts';
import {
  pushSnapshot,
  sealSnapshot,
  SnapshotStore,
  snapshotKey,
  startSnapshotReceiver,
  type SnapshotRecord,
} from '../../agent/control-plane/snapshots.ts';
import { LabKubelet } from './kubelet.ts';
import { monotonicMs } from '../../agent/clock.ts';

export const LAB_API_PORT = 6443;
/** kube-apiserver's own port, on loopback behind the front door. */
export const LAB_UPSTREAM_PORT = 6444;

/** wallClock turns a monotonic time (agent/clock.ts) into ISO wall-clock time, for logs. */
function wallClock(monotonic: number): string {
  return new Date(Date.now() - (monotonicMs() - monotonic)).toISOString();
}

export interface LabControlPlaneOptions {
  readonly nodeId: string;
  readonly siteId: string;
  /** The robot's address on the site network: its API server listens here. */
  readonly address: string;
  readonly identity: ApiServerIdentity;
  /** Per-epoch etcd data and logs: <stateDir>/lab-cp/epoch-<n>. */
  readonly stateDir: string;
  readonly log: Logger;
  readonly kubeletRenewMs?: number;
  readonly labels?: Readonly<Record<string, string>>;
  /** Sealed snapshots kept here (lab: <stateDir>/snapshots); none: no snapshots. */
  readonly snapshots?: { readonly store: SnapshotStore; readonly key: Buffer };
}

export class LabControlPlane implements ControlPlaneRuntime {
  readonly kind = 'lab';
  private readonly o: LabControlPlaneOptions;
  private server: {
    epoch: number;
    state: 'starting' | 'serving';
    handle: ApiServerHandle | null;
    door?: FrontDoor;
  } | null = null;
  private fence: ((epoch: number) => number | null) | null = null;
  private selfKubelet: LabKubelet | null = null;
  private worker: { leader: string; epoch: number; state: 'joining' | 'ready'; kubelet: LabKubelet } | null =
    null;
  private coldStartMs: number | null = null;
  private restoredFrom: string | null = null;
  private snapshotsTaken = 0;

  constructor(o: LabControlPlaneOptions) {
    this.o = o;
  }

  private url(host: string): string {
    return `https://${host}:${LAB_API_PORT}`;
  }

  async startServer(epoch: number): Promise<void> {
    if (this.server && this.server.epoch !== epoch) await this.stopServer(this.server.epoch);
    if (this.server?.epoch === epoch && this.server.state === 'serving') return;
    this.server = { epoch, state: 'starting', handle: null };
    const dir = join(this.o.stateDir, 'lab-cp', `epoch-${epoch}`);
    this.pruneOldEpochs(epoch);
    this.o.log.info({ epoch }, `${this.o.nodeId} starts kube-apiserver + etcd for epoch ${epoch}`);
    // A new epoch starts from the newest snapshot this robot holds, so the site keeps its objects.
    const restore = !existsSync(join(dir, 'etcd')) ? (this.o.snapshots?.store.newest() ?? null) : null;
    if (restore)
      this.o.log.info(
        { epoch, snapshot: restore.name, fromEpoch: restore.epoch },
        `${this.o.nodeId} restores snapshot ${restore.name} (epoch ${restore.epoch}) for epoch ${epoch}`,
      );
    // kube-apiserver listens on loopback only; the robot's API port is the fenced front door.
    const handle = await startApiServer({
      identity: this.o.identity,
      dir,
      bindAddress: '127.0.0.1',
      ports: { secure: LAB_UPSTREAM_PORT, etcdClient: 2379, etcdPeer: 2380 },
      readyTimeoutMs: 60_000,
      restoreFrom: restore ? this.o.snapshots!.store.path(restore) : undefined,
    });
    this.restoredFrom = restore?.name ?? null;
    if (this.server?.epoch !== epoch) {
      // Fenced while starting: a higher term arrived and stopServer ran. Never serve this epoch.
      await handle.stop({ fast: true });
      throw new EdgeError('SERVER_SUPERSEDED', `epoch ${epoch} was stopped while its server started`);
    }
    const door = new FrontDoor({
      listen: { host: this.o.address, port: LAB_API_PORT },
      upstream: { host: '127.0.0.1', port: LAB_UPSTREAM_PORT },
      leaseExpiresAt: () => (this.fence ? this.fence(epoch) : Infinity),
      onClosed: (at) =>
        this.o.log.warn(
          { epoch, fenceClosedAt: wallClock(at) },
          `${this.o.nodeId}'s front door closed: its lease for epoch ${epoch} ran out`,
        ),
    });
    try {
      await door.start();
    } catch (e) {
      await handle.stop({ fast: true });
      throw e;
    }
    this.server.handle = handle;
    this.server.door = door;
    this.coldStartMs = Math.round(handle.coldStartMs);
    void handle.exited.then((which) => {
      if (this.server?.handle === handle)
        this.o.log.error({ epoch }, `${which} of epoch ${epoch} exited on its own`);
    });
    // The leader is a node of its own cluster too, like k3s server's embedded agent.
    const kubelet = new LabKubelet({
      nodeName: this.o.nodeId,
      address: this.o.address,
      server: this.url(this.o.address),
      caPem: handle.caPem,
      token: this.nodeToken(),
      labels: { ...this.o.labels, 'node-role.edgectl.io/server': 'true' },
      renewIntervalMs: this.o.kubeletRenewMs,
    });
    await kubelet.register();
    if (this.server?.epoch !== epoch) {
      kubelet.stop();
      throw new EdgeError('SERVER_SUPERSEDED', `epoch ${epoch} was stopped while its server started`);
    }
    this.selfKubelet = kubelet;
    this.writeAdminKubeconfig(handle);
    this.server.state = 'serving';
    this.o.log.info(
      { epoch, coldStartMs: this.coldStartMs },
      `${this.o.nodeId} serves epoch ${epoch} at ${this.url(this.o.address)}`,
    );
  }

  /** Like k3s's /etc/rancher/k3s/k3s.yaml: the leader's admin kubeconfig, 0600, for bootstrap to read. */
  private writeAdminKubeconfig(handle: ApiServerHandle): void {
    const doc = {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [
        {
          name: 'edgectl-lab',
          cluster: {
            server: this.url(this.o.address),
            'certificate-authority-data': Buffer.from(handle.caPem).toString('base64'),
          },
        },
      ],
      users: [{ name: 'admin', user: { token: handle.adminToken } }],
      contexts: [{ name: 'edgectl-lab', context: { cluster: 'edgectl-lab', user: 'admin' } }],
      'current-context': 'edgectl-lab',
    };
    const path = join(this.o.stateDir, 'lab-cp', 'admin.kubeconfig');
    writeFileSync(`${path}.tmp`, JSON.stringify(doc, null, 2), { mode: 0o600 });
    renameSync(`${path}.tmp`, path);
  }

  private nodeToken(): string {
    const t = this.o.identity.nodeTokens[this.o.nodeId];
    if (!t)
      throw new EdgeError('NO_NODE_TOKEN', `the site identity has no node token for ${this.o.nodeId}`, {
        hint: 'recreate the lab (edgectl lab down; edgectl lab up) so every robot gets a token',
      });
    return t;
  }

  private pruneOldEpochs(current: number): void {
    const root = join(this.o.stateDir, 'lab-cp');
    let names: string[];
    try {
      names = readdirSync(root);
    } catch {
      return; // no epoch has run here yet
    }
    for (const n of names) {
      const e = Number(/^epoch-(\d+)$/.exec(n)?.[1]);
      if (Number.isFinite(e) && e < current - 1) rmSync(join(root, n), { recursive: true, force: true });
    }
  }

  async stopServer(epoch: number): Promise<void> {
    const s = this.server;
    if (!s || s.epoch > epoch) return;
    this.server = null;
    this.selfKubelet?.stop();
    this.selfKubelet = null;
    // The door first (it is what others reach), then SIGKILL: a fenced server must not drain.
    const closedAt = s.door?.closedAt() ?? null;
    await s.door?.stop();
    await s.handle?.stop({ fast: true });
    this.o.log.warn(
      { epoch: s.epoch, fenceClosedAt: closedAt === null ? undefined : wallClock(closedAt) },
      `${this.o.nodeId} stopped its server of epoch ${s.epoch}`,
    );
  }

  async joinAsWorker(leader: LeaderEndpoint, epoch: number): Promise<void> {
    this.worker?.kubelet.stop();
    const kubelet = new LabKubelet({
      nodeName: this.o.nodeId,
      address: this.o.address,
      server: this.url(leader.host),
      caPem: this.o.identity.caCert ? await readCa(this.o.identity.caCert) : '',
      token: this.nodeToken(),
      labels: this.o.labels,
      renewIntervalMs: this.o.kubeletRenewMs,
    });
    const w = { leader: leader.id, epoch, state: 'joining' as 'joining' | 'ready', kubelet };
    this.worker = w;
    try {
      await kubelet.register();
    } catch (e) {
      kubelet.stop();
      if (this.worker === w) this.worker = null;
      throw e;
    }
    if (this.worker !== w) {
      kubelet.stop();
      throw new EdgeError('JOIN_SUPERSEDED', `the join to ${leader.id} (epoch ${epoch}) was replaced`);
    }
    w.state = 'ready';
    this.o.log.info({ epoch, leader: leader.id }, `${this.o.nodeId} is Ready on ${leader.id}'s server`);
  }

  async resetWorker(): Promise<void> {
    this.worker?.kubelet.stop();
    this.worker = null;
  }

  status(): ControlPlaneStatus {
    return {
      server: this.server ? { epoch: this.server.epoch, state: this.server.state } : null,
      worker: this.worker
        ? { leader: this.worker.leader, epoch: this.worker.epoch, state: this.worker.state }
        : null,
      details: {
        apiServer: this.server?.handle?.url ?? this.worker?.kubelet.server ?? null,
        apiServerColdStartMs: this.coldStartMs,
        restoredFrom: this.restoredFrom,
        snapshotsTaken: this.snapshotsTaken,
        newestSnapshot: this.o.snapshots?.store.newest()?.name ?? null,
      },
    };
  }

  apiServer(): ApiServerAccess {
    const s = this.serving();
    return {
      kind: 'token',
      url: this.url(this.o.address),
      caPem: s.handle.caPem,
      token: s.handle.adminToken,
    };
  }

  private serving(): { epoch: number; handle: ApiServerHandle } {
    const s = this.server;
    if (s?.state !== 'serving' || !s.handle)
      throw new EdgeError('NO_SERVER', 'this robot serves no control plane now');
    return { epoch: s.epoch, handle: s.handle };
  }

  async snapshot(epoch: number): Promise<SnapshotRecord> {
    const store = this.o.snapshots?.store;
    if (!store) throw new EdgeError('NO_SNAPSHOTS', 'snapshots are not configured for this robot');
    const s = this.serving();
    if (s.epoch !== epoch) throw new EdgeError('NO_SERVER', `no serving server of epoch ${epoch}`);
    const tmp = join(store.dir, `taking-${epoch}.db`);
    await s.handle.snapshot(tmp);
    const plain = readFileSync(tmp);
    rmSync(tmp, { force: true });
    const createdAt = new Date().toISOString();
    const record: SnapshotRecord = {
      name: `e${epoch}-${createdAt.replace(/[-:.]/g, '')}-${this.o.nodeId}`,
      epoch,
      from: this.o.nodeId,
      sha256: createHash('sha256').update(plain).digest('hex'),
      size: plain.length,
      createdAt,
    };
    store.save(record, plain);
    this.snapshotsTaken++;
    return record;
  }

  async shipSnapshot(name: string, to: readonly LeaderEndpoint[]): Promise<string[]> {
    const snaps = this.o.snapshots;
    if (!snaps) return [];
    const record = snaps.store.records().find((r) => r.name === name);
    if (!record) throw new EdgeError('NO_SNAPSHOT', `no snapshot ${name} here`);
    const sealed = sealSnapshot(snaps.key, record, readFileSync(snaps.store.path(record)));
    const ok = await Promise.all(to.map((p) => pushSnapshot(p.host, sealed)));
    return to.filter((_, i) => ok[i]).map((p) => p.id);
  }

  setFence(leaseExpiresAt: (epoch: number) => number | null): void {
    this.fence = leaseExpiresAt;
  }

  async close(): Promise<void> {
    await this.resetWorker();
    if (this.server) await this.stopServer(this.server.epoch);
  }
}

async function readCa(path: string): Promise<string> {
  const { readFile } = await import('node:fs/promises');
  return readFile(path, 'utf8');
}

/** makeLabControlPlane builds the lab runtime from the agent config's controlPlane section. */
export async function makeLabControlPlane(o: {
  nodeId: string;
  siteId: string;
  stateDir: string;
  labels: Readonly<Record<string, string>>;
  controlPlane: Readonly<Record<string, unknown>>;
  log: Logger;
  /** The site key: seals control-plane snapshots between server-capable robots. */
  siteKey?: Buffer;
  serverCapable?: boolean;
}): Promise<LabControlPlane> {
  const { z } = await import('zod');
  const { ConfigError } = await import('../../agent/errors.ts');
  const { loadApiServerIdentity } = await import('../kube-apiserver/apiserver.ts');
  const schema = z.object({
    runtime: z.literal('lab'),
    /** The site identity `edgectl lab up` made (CA, serving certificate, tokens). */
    identityDir: z.string().min(1),
    /** The robot's address on the lab bridge; its API server listens there. */
    address: z.string().regex(/^\d+\.\d+\.\d+\.\d+$/, 'must be an IPv4 address'),
    kubeletRenewMs: z.number().int().positive().optional(),
    /** The site spec and addon templates: the agent's config loader and SiteApplier read them. */
    siteSpecFile: z.string().min(1).optional(),
    templatesDir: z.string().min(1).optional(),
  });
  const r = schema.safeParse(o.controlPlane);
  if (!r.success)
    throw new ConfigError(
      'controlPlane (lab runtime)',
      r.error.issues.map((i) => `controlPlane.${i.path.join('.')}: ${i.message}`),
      { hint: 'edgectl lab up writes these fields; see docs/lab.md' },
    );
  let snapshots: LabControlPlaneOptions['snapshots'];
  if (o.siteKey && o.serverCapable) {
    // Every server-capable robot keeps the snapshots the leader pushes, to restore when it leads.
    const store = new SnapshotStore(join(o.stateDir, 'snapshots'));
    const key = snapshotKey(o.siteKey);
    await startSnapshotReceiver({
      address: r.data.address,
      key,
      store,
      onSaved: (rec) =>
        o.log.info(
          { snapshot: rec.name, epoch: rec.epoch },
          `${o.nodeId} kept snapshot ${rec.name} from ${rec.from}`,
        ),
      onRejected: (why) => o.log.warn(`${o.nodeId} rejected a snapshot: ${why}`),
    }).then((srv) => srv.unref());
    snapshots = { store, key };
  }
  return new LabControlPlane({
    snapshots,
    nodeId: o.nodeId,
    siteId: o.siteId,
    address: r.data.address,
    identity: loadApiServerIdentity(r.data.identityDir),
    stateDir: o.stateDir,
    log: o.log,
    labels: o.labels,
    kubeletRenewMs: r.data.kubeletRenewMs,
  });
}
