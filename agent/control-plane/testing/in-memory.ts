/**
 * The in-memory twin of ControlPlaneRuntime, used in tests and by `edgectl agent run` with
 * `controlPlane.runtime: memory` (the agent integration test in network namespaces). It stands in
 * for k3s, which needs a robot's systemd; docs/agent.md says what it does not cover.
 * A shared InMemoryCluster records which robot serves which epoch, so tests can assert that no
 * two servers ever ran at once.
 */
import { EdgeError } from '../../errors.ts';
import type { InMemoryObjectClient } from '../../site/in-memory-client.ts';
import type { ControlPlaneRuntime, ControlPlaneStatus, LeaderEndpoint } from '../runtime.ts';

export interface InMemoryRuntimeOptions {
  /** Simulated latency of each operation, ms. */
  readonly delayMs?: number;
  /** Fail the next N startServer calls (to exercise retries). */
  readonly failStarts?: number;
}

export class InMemoryControlPlane implements ControlPlaneRuntime {
  readonly kind = 'memory';
  readonly self: string;
  private server: ControlPlaneStatus['server'] = null;
  private worker: ControlPlaneStatus['worker'] = null;
  private failStarts: number;
  private readonly delayMs: number;
  /** Every operation, in order, for tests and /status. */
  readonly journal: string[] = [];

  constructor(self: string, opts: InMemoryRuntimeOptions = {}) {
    this.self = self;
    this.delayMs = opts.delayMs ?? 0;
    this.failStarts = opts.failStarts ?? 0;
  }

  private wait(): Promise<void> {
    return new Promise((r) => setTimeout(r, this.delayMs));
  }

  async startServer(epoch: number): Promise<void> {
    this.journal.push(`startServer ${epoch}`);
    if (this.server && this.server.epoch !== epoch) {
      throw new EdgeError('SERVER_RUNNING', `a server of epoch ${this.server.epoch} still runs`, {
        hint: 'stop it first',
      });
    }
    this.server = { epoch, state: 'starting' };
    await this.wait();
    if (this.failStarts > 0) {
      this.failStarts--;
      this.server = null;
      throw new EdgeError('SERVER_START_FAILED', `simulated start failure of epoch ${epoch}`);
    }
    if (this.server?.epoch === epoch) this.server = { epoch, state: 'serving' };
  }

  async stopServer(epoch: number): Promise<void> {
    this.journal.push(`stopServer ${epoch}`);
    if (this.server && this.server.epoch <= epoch) this.server = null;
  }

  /**
   * The objects of this robot's server: one in-memory store for every epoch it serves, made when it
   * first serves (tests read the site the agent's LeaderSite wrote to it).
   */
  objects: InMemoryObjectClient | null = null;

  async siteServer(epoch: number): Promise<InMemoryObjectClient> {
    this.journal.push(`siteServer ${epoch}`);
    if (this.server?.epoch !== epoch || this.server.state !== 'serving') {
      throw new EdgeError('NO_SERVER', `no serving server of epoch ${epoch}`);
    }
    await this.wait();
    this.objects ??= new (await import('../../site/in-memory-client.ts')).InMemoryObjectClient();
    return this.objects;
  }

  async joinAsWorker(leader: LeaderEndpoint, epoch: number): Promise<void> {
    this.journal.push(`joinAsWorker ${leader.id} ${epoch}`);
    this.worker = { leader: leader.id, epoch, state: 'joining' };
    await this.wait();
    if (this.worker?.leader === leader.id && this.worker.epoch === epoch)
      this.worker = { leader: leader.id, epoch, state: 'ready' };
  }

  async resetWorker(): Promise<void> {
    this.journal.push('resetWorker');
    this.worker = null;
  }

  status(): ControlPlaneStatus {
    return { server: this.server, worker: this.worker };
  }

  async close(): Promise<void> {
    this.server = null;
    this.worker = null;
  }
}
