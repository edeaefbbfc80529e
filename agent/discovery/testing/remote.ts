/**
 * RemoteDiscovery: a Discovery whose real implementation (MdnsDiscovery) runs in a child process
 * inside a network namespace (testing/mdns-agent.ts). It lets the shared contract suite and the
 * interop tests drive agents that live in different namespaces from one test process.
 *
 * peers() answers from a mirror that the child keeps up to date on every change, so it lags the
 * child by one IPC hop; the contract suite only ever waits for conditions, so that is fine.
 */

import { EdgeError } from '../../errors.ts';
import { PeerListeners, type Advertisement, type Discovery, type PeerRecord } from '../discovery.ts';
import type { CacheTier } from '../dnssd.ts';
import type { MdnsStats } from '../mdns.ts';
import type { LabNode, LabProcess, NetnsLab } from './netns.ts';

const AGENT_SCRIPT = new URL('./mdns-agent.ts', import.meta.url).pathname;

export class RemoteDiscovery implements Discovery {
  readonly node: LabNode;
  readonly advertisement: Advertisement;
  readonly #proc: LabProcess;
  readonly #lab: NetnsLab;
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: unknown) => void }>();
  readonly #listeners: PeerListeners;
  #mirror: PeerRecord[] = [];
  /** Every peer list the child reported, with the child's wall-clock time (for timing tests). */
  readonly history: { at: number; peers: PeerRecord[] }[] = [];
  /** Child wall-clock times of start() and close() (call and resolution). */
  readonly times: {
    startCalledAt?: number;
    startResolvedAt?: number;
    closeCalledAt?: number;
    closeResolvedAt?: number;
  } = {};
  #nextId = 1;
  #closed = false;
  #exited = false;

  constructor(
    lab: NetnsLab,
    node: LabNode,
    advertisement: Advertisement,
    opts: { interfaces?: string[]; members?: string[]; nodeFlags?: string[] } = {},
  ) {
    this.#lab = lab;
    this.node = node;
    this.advertisement = { ...advertisement };
    const cfg = JSON.stringify({
      advertisement,
      interfaces: opts.interfaces ?? [node.ifname],
      ...(opts.members ? { members: opts.members } : {}),
    });
    this.#proc = lab.spawn(node, process.execPath, [...(opts.nodeFlags ?? []), AGENT_SCRIPT, cfg], {
      ipc: true,
    });
    this.#listeners = new PeerListeners(() => this.peers());
    this.#proc.child.on('message', (raw) => {
      const msg = raw as {
        kind: string;
        id?: number;
        ok?: boolean;
        result?: unknown;
        error?: { message: string; code?: string };
        peers?: PeerRecord[];
        at?: number;
      };
      if (msg.kind === 'peers' && msg.peers) {
        this.#mirror = msg.peers;
        this.history.push({ at: msg.at ?? Date.now(), peers: msg.peers });
        this.#listeners.changed();
      } else if (msg.kind === 'reply' && msg.id !== undefined) {
        const p = this.#pending.get(msg.id);
        this.#pending.delete(msg.id);
        if (!p) return;
        if (msg.ok) p.resolve(msg.result);
        else p.reject(new EdgeError(msg.error?.code ?? 'REMOTE', msg.error?.message ?? 'remote error'));
      }
    });
    void this.#proc.exited.then((code) => {
      this.#exited = true;
      for (const p of this.#pending.values())
        p.reject(
          new Error(
            `agent ${advertisement.nodeId} in ${node.netns} exited (${code}); output:\n${this.#proc.output()}`,
          ),
        );
      this.#pending.clear();
    });
  }

  #request<T>(op: string, arg?: unknown): Promise<T> {
    if (this.#exited)
      return Promise.reject(
        new Error(`agent ${this.advertisement.nodeId} has exited; output:\n${this.#proc.output()}`),
      );
    const id = this.#nextId++;
    return new Promise<T>((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.#proc.child.send({ id, op, arg }, (err) => {
        if (err) {
          this.#pending.delete(id);
          reject(err);
        }
      });
    });
  }

  /** The child's stdout/stderr so far. */
  output(): string {
    return this.#proc.output();
  }

  async start(): Promise<void> {
    const r = await this.#request<{ calledAt: number; resolvedAt: number }>('start');
    this.times.startCalledAt = r.calledAt;
    this.times.startResolvedAt = r.resolvedAt;
  }

  /** Child wall-clock time at which a peer with this node id was first reported (or undefined). */
  firstSeenAt(nodeId: string): number | undefined {
    return this.history.find((h) => h.peers.some((p) => p.nodeId === nodeId))?.at;
  }

  /** Child wall-clock time of the first report without `nodeId` after `after`. */
  goneAt(nodeId: string, after: number): number | undefined {
    return this.history.find((h) => h.at >= after && !h.peers.some((p) => p.nodeId === nodeId))?.at;
  }

  async update(change: Partial<Pick<Advertisement, 'role' | 'term'>>): Promise<void> {
    await this.#request('update', change);
  }

  peers(): PeerRecord[] {
    if (this.#closed) return [];
    return this.#mirror.map((p) => ({ ...p, addresses: [...p.addresses] }));
  }

  onChange(listener: (peers: PeerRecord[]) => void): () => void {
    return this.#listeners.add(listener);
  }

  stats(): Promise<MdnsStats> {
    return this.#request('stats');
  }

  /** Records in the child's caches, per tier. */
  cacheSizes(): Promise<Record<CacheTier, number>> {
    return this.#request('cache');
  }

  /** The child's process.memoryUsage(). */
  memory(): Promise<NodeJS.MemoryUsage> {
    return this.#request('memory');
  }

  /** Has the child process exited (crashed, say)? */
  get exited(): boolean {
    return this.#exited;
  }

  names(): Promise<{ instance: string; host: string; phase: string }> {
    return this.#request('names');
  }

  /** close() as the contract means it: the child's discovery sends its goodbye; the child stays. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#listeners.close();
    if (this.#exited) return;
    const r = await this.#request<{ calledAt: number; resolvedAt: number }>('close').catch(() => undefined);
    if (r) {
      this.times.closeCalledAt = r.calledAt;
      this.times.closeResolvedAt = r.resolvedAt;
    }
  }

  /** Ends the child process (after close(), or instead of it to simulate a crash: no goodbye). */
  async kill(): Promise<void> {
    this.#closed = true;
    this.#listeners.close();
    await this.#lab.kill(this.#proc, 2000);
  }
}
