/**
 * A minimal JSON client for the Kubernetes API, used by the lab kubelet inside every robot's agent.
 * It pins the site CA and sends a bearer token; @kubernetes/client-node is not needed for the four
 * calls a kubelet makes, and keeping it out keeps each lab robot's agent small.
 */
import { request } from 'node:https';
import { EdgeError } from '../../agent/errors.ts';

export interface KubeHttpOptions {
  readonly server: string;
  readonly caPem: string;
  readonly token: string;
  readonly timeoutMs?: number;
}

export interface KubeResponse {
  readonly status: number;
  readonly body: unknown;
}

export class KubeHttp {
  readonly server: string;
  private readonly o: KubeHttpOptions;

  constructor(o: KubeHttpOptions) {
    this.o = o;
    this.server = o.server;
  }

  /** call resolves with any HTTP status; it rejects only when the server cannot be reached. */
  call(
    method: string,
    path: string,
    body?: unknown,
    contentType = 'application/json',
  ): Promise<KubeResponse> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const req = request(
        `${this.o.server}${path}`,
        {
          method,
          ca: this.o.caPem,
          timeout: this.o.timeoutMs ?? 3000,
          headers: {
            authorization: `Bearer ${this.o.token}`,
            accept: 'application/json',
            ...(payload === undefined ? {} : { 'content-type': contentType }),
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let parsed: unknown = text;
            try {
              parsed = text ? JSON.parse(text) : null;
            } catch {
              // not JSON (e.g. /readyz's "ok")
            }
            resolve({ status: res.statusCode ?? 0, body: parsed });
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error(`timed out after ${this.o.timeoutMs ?? 3000} ms`)));
      req.on('error', (err) =>
        reject(
          new EdgeError('KUBE_UNREACHABLE', `${method} ${this.o.server}${path}: ${err.message}`, {
            hint: 'the server may be starting or gone; the agent retries',
            cause: err,
          }),
        ),
      );
      if (payload !== undefined) req.write(payload);
      req.end();
    });
  }

  /** ok is call() that turns a non-2xx status into an EdgeError naming the call. */
  async ok(method: string, path: string, body?: unknown, contentType?: string): Promise<unknown> {
    const r = await this.call(method, path, body, contentType);
    if (r.status < 200 || r.status > 299) {
      const msg =
        typeof r.body === 'object' && r.body && 'message' in r.body ? String(r.body.message) : String(r.body);
      throw new EdgeError('KUBE_REQUEST_FAILED', `${method} ${path}: HTTP ${r.status}: ${msg}`);
    }
    return r.body;
  }
}
