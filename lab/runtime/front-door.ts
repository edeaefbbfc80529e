/**
 * The fenced front door of a leader's API server. kube-apiserver listens on loopback only; the
 * agent forwards the robot's public API port to it, and checks the leader's lease on every new
 * connection and every chunk it forwards. A leader whose lease has run out serves nothing, even a
 * robot that was frozen (SIGSTOP, a CPU stall) and thaws before its statechart has seen the higher
 * term: the check uses the clock, not the statechart's next step. This closes the window that
 * process pauses open in lease-based fencing (docs/protocol.md §5, docs/lab.md).
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import { monotonicMs } from '../../agent/clock.ts';

export interface FrontDoorOptions {
  readonly listen: { readonly host: string; readonly port: number };
  readonly upstream: { readonly host: string; readonly port: number };
  /** Until when (monotonic ms, agent/clock.ts) this robot may serve; null: not at all. */
  readonly leaseExpiresAt: () => number | null;
  readonly now?: () => number;
  /** Called once, when the door first refuses because the lease ran out. */
  readonly onClosed?: (expiredAtMonotonic: number) => void;
}

export class FrontDoor {
  private readonly o: FrontDoorOptions;
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  /** The last lease expiry seen while open: when the door closed, if it closed during a freeze. */
  private lastExpiry: number | null = null;
  private sampler: ReturnType<typeof setInterval> | undefined;
  private closedReported = false;
  refused = 0;

  constructor(o: FrontDoorOptions) {
    this.o = o;
  }

  private now(): number {
    return (this.o.now ?? monotonicMs)();
  }

  /** open says whether the lease holds now; it remembers the expiry for `closedAt`. */
  open(): boolean {
    const exp = this.o.leaseExpiresAt();
    const now = this.now();
    if (exp !== null && exp > now) {
      this.lastExpiry = exp;
      return true;
    }
    if (!this.closedReported && this.lastExpiry !== null) {
      this.closedReported = true;
      this.o.onClosed?.(this.lastExpiry);
    }
    return false;
  }

  /** closedAt: when the lease ran out (monotonic), if it did, else null. */
  closedAt(): number | null {
    if (this.lastExpiry === null) return null;
    return this.lastExpiry <= this.now() ? this.lastExpiry : null;
  }

  async start(): Promise<void> {
    const server = createServer({ pauseOnConnect: true }, (client) => {
      if (!this.open()) {
        this.refused++;
        client.destroy();
        return;
      }
      const up = connect(this.o.upstream.port, this.o.upstream.host);
      this.sockets.add(client).add(up);
      const drop = () => {
        client.destroy();
        up.destroy();
        this.sockets.delete(client);
        this.sockets.delete(up);
      };
      const guard = (from: Socket, to: Socket) =>
        from.on('data', (chunk: Buffer) => {
          if (!this.open()) {
            this.refused++;
            drop();
            return;
          }
          if (!to.write(chunk)) {
            from.pause();
            to.once('drain', () => from.resume());
          }
        });
      guard(client, up);
      guard(up, client);
      client.on('error', drop).on('close', drop);
      up.on('error', drop).on('close', drop);
      client.resume();
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.o.listen.port, this.o.listen.host, () => resolve());
    });
    this.server = server;
    // Sample the lease while open, so a freeze is dated by the lease it ran out of.
    this.sampler = setInterval(() => void this.open(), 50);
    this.sampler.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.sampler);
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    const s = this.server;
    this.server = null;
    if (s) await new Promise<void>((r) => s.close(() => r()));
  }
}
