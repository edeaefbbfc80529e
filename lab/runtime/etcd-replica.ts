/**
 * The lab's etcd replication I/O (docs/k3s.md "Replication"): a voter's learner member of the
 * leader's etcd, and the leader's member calls. The decisions are agent/control-plane/replica.ts's;
 * this file only runs etcd and talks to its JSON gateway on loopback.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { EdgeError } from '../../agent/errors.ts';
import type { EtcdMember, MemberChange, ReplicaPosition } from '../../agent/control-plane/replica.ts';
import { etcdBinary } from '../kube-apiserver/apiserver.ts';
import { etcdPeerFlags, type EtcdPeerTls } from '../kube-apiserver/etcd-peer.ts';

/** One call of etcd's v3 JSON gateway (loopback, no auth: only this robot reaches it). */
export async function etcdGateway<T>(
  endpoint: string,
  path: string,
  body: unknown,
  timeoutMs = 2000,
): Promise<T> {
  let res: Response;
  try {
    res = await fetch(`${endpoint}${path}`, {
      method: 'POST',
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (e) {
    throw new EdgeError('ETCD_UNREACHABLE', `etcd at ${endpoint} did not answer ${path}`, { cause: e });
  }
  const text = await res.text();
  if (!res.ok)
    throw new EdgeError('ETCD_CALL_FAILED', `etcd ${path}: HTTP ${res.status}: ${text.slice(0, 300)}`, {
      hint: 'see the etcd log in the epoch directory',
    });
  return JSON.parse(text) as T;
}

interface GatewayMember {
  ID?: string;
  name?: string;
  peerURLs?: string[];
  isLearner?: boolean;
}

export async function listMembers(endpoint: string): Promise<EtcdMember[]> {
  const r = await etcdGateway<{ members?: GatewayMember[] }>(endpoint, '/v3/cluster/member/list', {});
  return (r.members ?? []).map((m) => ({
    id: m.ID ?? '0',
    name: m.name ?? '',
    peerUrls: m.peerURLs ?? [],
    learner: m.isLearner === true,
  }));
}

export async function applyMemberChange(endpoint: string, c: MemberChange): Promise<void> {
  if (c.kind === 'remove') await etcdGateway(endpoint, '/v3/cluster/member/remove', { ID: c.id });
  else await etcdGateway(endpoint, '/v3/cluster/member/add', { peerURLs: [c.peerUrl], isLearner: true });
}

/** The revision etcd at `endpoint` has applied (a learner answers this too). */
export async function etcdRevision(endpoint: string, timeoutMs = 1000): Promise<number> {
  const r = await etcdGateway<{ header?: { revision?: string } }>(
    endpoint,
    '/v3/maintenance/status',
    {},
    timeoutMs,
  );
  return Number(r.header?.revision ?? 0);
}

export interface EtcdReplicaOptions {
  readonly self: string;
  readonly epoch: number;
  readonly leader: { readonly id: string; readonly peerUrl: string };
  readonly selfPeerUrl: string;
  readonly tls: EtcdPeerTls;
  /** <stateDir>/lab-cp/replica-epoch-<n>: wiped before a first start, so no other history survives. */
  readonly dir: string;
  readonly clientPort: number;
  readonly log: Logger;
  /** Between start attempts while the leader has not added this member (or took it away). */
  readonly retryMs?: number;
  readonly pollMs?: number;
}

/**
 * EtcdReplica keeps one learner running for one epoch: it starts etcd with the leader as the
 * existing cluster, and while the leader has not added this robot as a learner (it picks one
 * standby, docs/k3s.md) etcd exits at once and it tries again later, from an empty data dir, so
 * nothing but the leader's history is ever in it. Once the learner has started, a crash restarts it
 * on its own data.
 */
export class EtcdReplica {
  readonly epoch: number;
  private readonly o: EtcdReplicaOptions;
  private child: ChildProcess | null = null;
  private joined = false;
  private revision = 0;
  private stopped = false;
  private timer: ReturnType<typeof setTimeout> | null = null;
  /** Exits in a row soon after a start, once joined: a member the leader removed exits at once. */
  private quickExits = 0;
  private poll: ReturnType<typeof setInterval> | null = null;

  constructor(o: EtcdReplicaOptions) {
    this.o = o;
    this.epoch = o.epoch;
  }

  get dataDir(): string {
    return join(this.o.dir, 'etcd');
  }

  /** The bbolt file a new leader restores from, once the learner has stopped. */
  get dbPath(): string {
    return join(this.dataDir, 'member', 'snap', 'db');
  }

  private get endpoint(): string {
    return `http://127.0.0.1:${this.o.clientPort}`;
  }

  /** The position this replica reached, null until it applied anything. */
  position(): ReplicaPosition | null {
    return this.joined && this.revision > 0 ? { epoch: this.epoch, revision: this.revision } : null;
  }

  start(): void {
    this.stopped = false;
    if (!this.joined) rmSync(this.o.dir, { recursive: true, force: true });
    mkdirSync(this.o.dir, { recursive: true, mode: 0o700 });
    const log = openSync(join(this.o.dir, 'etcd.log'), 'a');
    const endpoint = this.endpoint;
    const child = spawn(
      etcdBinary(),
      [
        `--name=${this.o.self}`,
        `--data-dir=${this.dataDir}`,
        `--listen-client-urls=${endpoint}`,
        `--advertise-client-urls=${endpoint}`,
        `--listen-peer-urls=${this.o.selfPeerUrl}`,
        `--initial-advertise-peer-urls=${this.o.selfPeerUrl}`,
        `--initial-cluster=${this.o.leader.id}=${this.o.leader.peerUrl},${this.o.self}=${this.o.selfPeerUrl}`,
        '--initial-cluster-state=existing',
        '--log-level=warn',
        ...etcdPeerFlags(this.o.tls),
      ],
      { stdio: ['ignore', log, log] },
    );
    closeSync(log);
    this.child = child;
    const startedAt = performance.now();
    child.once('exit', () => {
      if (this.child === child) this.child = null;
      if (this.stopped) return;
      // Not added (yet): the next attempt starts clean. A crash after joining restarts on the same
      // data, but a member the leader removed (it chose another standby) exits at once every time,
      // and its data names a member id the leader will never take back: start clean then too.
      this.quickExits = performance.now() - startedAt < 10_000 ? this.quickExits + 1 : 0;
      if (this.joined && (!existsSync(this.dbPath) || this.quickExits >= 2)) {
        this.joined = false;
        this.revision = 0;
      }
      this.timer = setTimeout(() => this.start(), this.o.retryMs ?? 3000);
      this.timer.unref?.();
    });
    this.poll ??= setInterval(() => void this.refresh(), this.o.pollMs ?? 500);
    this.poll.unref?.();
  }

  private async refresh(): Promise<void> {
    if (!this.child) return;
    try {
      const rev = await etcdRevision(this.endpoint, 400);
      if (!this.joined) {
        this.joined = true;
        this.o.log.info(
          { epoch: this.epoch, leader: this.o.leader.id },
          `${this.o.self} replicates ${this.o.leader.id}'s etcd of epoch ${this.epoch}`,
        );
      }
      this.revision = Math.max(this.revision, rev);
    } catch {
      // Not serving yet, or stopping: the position stays what it was.
    }
  }

  /** stop ends the learner; gracefully (SIGTERM) so its bbolt file holds every applied entry. */
  async stop(o: { graceful: boolean }): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.poll) clearInterval(this.poll);
    this.poll = null;
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    // The last applied revision, read before it stops: the learner keeps applying what it received.
    if (o.graceful) await this.refresh();
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill(o.graceful ? 'SIGTERM' : 'SIGKILL');
    const t = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(t);
  }

  /** discard: stop and delete the replica (another epoch's leader took over elsewhere). */
  async discard(): Promise<void> {
    await this.stop({ graceful: false });
    rmSync(this.o.dir, { recursive: true, force: true });
    this.joined = false;
    this.revision = 0;
  }
}
