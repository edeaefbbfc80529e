/**
 * Measuring what a leader's power loss costs in acknowledged writes (docs/benchmarks/rpo.md): a
 * client writes one ConfigMap every `everyMs` through the leader's API; the leader loses power;
 * once a new leader serves, every write the old one acknowledged (HTTP 201) must be on it. Shared by
 * `npm run bench:rpo`, the lab scenario expectation `no-lost-writes` and the root integration test.
 *
 * The judging is pure (lostWrites); the writer and the trial do the I/O.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadApiServerIdentity } from './kube-apiserver/apiserver.ts';
import type { LabState } from './lab.ts';
import { KubeHttp } from './runtime/kube-http.ts';

export const RPO_LABEL = 'edgectl.io/rpo-writer';

export interface AckedWrite {
  readonly seq: number;
  readonly name: string;
  /** Wall clock (ms) the 201 arrived. */
  readonly ackedAt: number;
  /** The resourceVersion the old leader answered with. */
  readonly resourceVersion: string;
}

export interface WriteLoss {
  readonly acked: number;
  readonly lost: readonly AckedWrite[];
  /** From the oldest lost write's acknowledgement to the power loss, ms (0: nothing lost). */
  readonly windowMs: number;
}

/** lostWrites: the acknowledged writes absent from the new leader, and the time they span. */
export function lostWrites(
  acked: readonly AckedWrite[],
  present: ReadonlySet<string>,
  cutAt: number,
): WriteLoss {
  const lost = acked.filter((w) => !present.has(w.name));
  const first = lost.reduce((m, w) => Math.min(m, w.ackedAt), Infinity);
  return { acked: acked.length, lost, windowMs: lost.length ? Math.max(0, cutAt - first) : 0 };
}

export function labApi(state: LabState, robot: string, timeoutMs = 1000): KubeHttp {
  const identity = loadApiServerIdentity(join(state.dir, 'identity'));
  const r = state.robots.find((x) => x.name === robot);
  if (!r) throw new Error(`no robot ${robot}`);
  return new KubeHttp({
    server: `https://${r.address}:6443`,
    caPem: readFileSync(identity.caCert, 'utf8'),
    token: identity.adminToken,
    timeoutMs,
  });
}

/**
 * Writer: one ConfigMap create every `everyMs` against `api`, until stopped. A write counts as
 * acknowledged only when the server answered 201; a timeout or a reset counts as not acknowledged
 * (the client would retry it), which is the definition of RPO the issue asks for.
 */
export class Writer {
  readonly acked: AckedWrite[] = [];
  private stopped = false;
  private seq = 0;
  private readonly done: Promise<void>;
  private readonly api: KubeHttp;
  private readonly ns: string;
  private readonly prefix: string;

  constructor(api: KubeHttp, ns: string, prefix: string, everyMs = 100) {
    this.api = api;
    this.ns = ns;
    this.prefix = prefix;
    this.done = this.loop(everyMs);
  }

  private async loop(everyMs: number): Promise<void> {
    let next = Date.now();
    while (!this.stopped) {
      const seq = this.seq++;
      const name = `${this.prefix}-${String(seq).padStart(6, '0')}`;
      try {
        const r = await this.api.call('POST', `/api/v1/namespaces/${this.ns}/configmaps`, {
          metadata: { name, labels: { [RPO_LABEL]: this.prefix } },
          data: { seq: String(seq) },
        });
        const rv = (r.body as { metadata?: { resourceVersion?: string } } | null)?.metadata?.resourceVersion;
        if (r.status === 201 && !this.stopped)
          this.acked.push({ seq, name, ackedAt: Date.now(), resourceVersion: rv ?? '' });
      } catch {
        // Unreachable: not acknowledged.
      }
      next += everyMs;
      await new Promise((r) => setTimeout(r, Math.max(0, next - Date.now())));
    }
  }

  /** stop: writes acknowledged after this call do not count (the leader was already dead). */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.done;
  }
}

/** presentWrites: the names of the writer's ConfigMaps on `api`'s server. */
export async function presentWrites(api: KubeHttp, ns: string, prefix: string): Promise<Set<string>> {
  const body = (await api.ok(
    'GET',
    `/api/v1/namespaces/${ns}/configmaps?labelSelector=${encodeURIComponent(`${RPO_LABEL}=${prefix}`)}`,
  )) as { items?: { metadata: { name: string } }[] };
  return new Set((body.items ?? []).map((i) => i.metadata.name));
}
