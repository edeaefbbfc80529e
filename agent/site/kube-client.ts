/**
 * KubeObjectClient: the ObjectClient (object-client.ts) for a real API server, over node:https with
 * the kubeconfig's CA and client certificate or token (kube-config.ts). It sends and reads plain
 * JSON: the site's objects go to the server as rendered, byte for byte.
 *
 * It replaces @kubernetes/client-node on the leader's path: that library, with undici and its
 * generated models, is far more code than the five calls and the discovery of each kind's resource
 * name and scope that the ObjectClient needs, and a robot loaded it on its first apply and kept it
 * (docs/benchmarks/agent.md has what it cost).
 */
import { request, type RequestOptions } from 'node:https';
import { EdgeError } from '../errors.ts';
import { connectionOf, type KubeConfigLike, type KubeConnection } from './kube-config.ts';
import {
  ConflictError,
  refOf,
  type DeleteOptions,
  type ListOptions,
  type ObjectClient,
  type ObjectRef,
} from './object-client.ts';
import { describeObject, MANAGER, type KubeObject } from './objects.ts';

/** How long one request may take before the call fails (the applier retries on its next reconcile). */
const REQUEST_TIMEOUT_MS = 15_000;

interface Reply {
  readonly status: number;
  readonly text: string;
}

/** A kind as the server's discovery document lists it. */
interface ApiResource {
  readonly name: string;
  readonly kind: string;
  readonly namespaced: boolean;
}

/** The server's answer, when it is not a success (HTTP status and Status.message). */
class ApiFailure extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(`HTTP ${status}: ${message}`);
    this.status = status;
  }
}

function statusMessage(text: string): string {
  try {
    const body = JSON.parse(text) as { message?: unknown };
    if (typeof body.message === 'string') return body.message;
  } catch {
    // Not a Status object: the text itself says what went wrong.
  }
  return text.trim() || '(empty response)';
}

const describeRef = (ref: ObjectRef) => describeObject({ kind: ref.kind, metadata: ref });

export class KubeObjectClient implements ObjectClient {
  private readonly conn: KubeConnection;
  private readonly tls: RequestOptions;
  /** Discovery per group version; a kind missing from it is looked up once more (a CRD just installed). */
  private readonly resources = new Map<string, Promise<readonly ApiResource[] | null>>();

  /** From a KubeConnection (readKubeconfig), or the current context of a client-node KubeConfig. */
  constructor(target: KubeConnection | KubeConfigLike) {
    this.conn = 'server' in target ? target : connectionOf(target);
    this.tls = {
      ca: this.conn.caPem,
      ...(this.conn.clientCertPem === undefined
        ? {}
        : { cert: this.conn.clientCertPem, key: this.conn.clientKeyPem }),
    };
  }

  private send(
    method: string,
    path: string,
    body?: string,
    contentType = 'application/json',
  ): Promise<Reply> {
    return new Promise((resolve, reject) => {
      const req = request(`${this.conn.server}${path}`, {
        ...this.tls,
        method,
        timeout: REQUEST_TIMEOUT_MS,
        headers: {
          accept: 'application/json',
          ...(this.conn.token === undefined ? {} : { authorization: `Bearer ${this.conn.token}` }),
          ...(body === undefined ? {} : { 'content-type': contentType }),
        },
      });
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }),
        );
      });
      req.on('timeout', () => req.destroy(new Error(`no answer within ${REQUEST_TIMEOUT_MS} ms`)));
      req.on('error', reject);
      req.end(body);
    });
  }

  /** call resolves with the body of a 2xx answer, or null for a 404; any other status is an ApiFailure. */
  private async call(method: string, path: string, body?: string, contentType?: string): Promise<unknown> {
    const r = await this.send(method, path, body, contentType);
    if (r.status === 404) return null;
    if (r.status < 200 || r.status > 299) throw new ApiFailure(r.status, statusMessage(r.text));
    return JSON.parse(r.text) as unknown;
  }

  private static base(apiVersion: string): string {
    return apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
  }

  private discover(apiVersion: string): Promise<readonly ApiResource[] | null> {
    let found = this.resources.get(apiVersion);
    if (!found) {
      found = this.call('GET', KubeObjectClient.base(apiVersion)).then((d) =>
        d === null ? null : ((d as { resources?: ApiResource[] }).resources ?? []),
      );
      // A failed or empty look-up is asked again next time.
      found.then(
        (r) => (r === null ? this.resources.delete(apiVersion) : undefined),
        () => this.resources.delete(apiVersion),
      );
      this.resources.set(apiVersion, found);
    }
    return found;
  }

  /** resource finds a kind's resource name and scope; null if the server does not serve it. */
  private async resource(apiVersion: string, kind: string): Promise<ApiResource | null> {
    const pick = (rs: readonly ApiResource[] | null) =>
      rs?.find((r) => r.kind === kind && !r.name.includes('/')) ?? null;
    const first = pick(await this.discover(apiVersion));
    if (first) return first;
    this.resources.delete(apiVersion);
    return pick(await this.discover(apiVersion));
  }

  /** objectPath is the URL path of one object; a namespaced kind without a namespace is in `default`. */
  private async objectPath(ref: ObjectRef): Promise<string> {
    const r = await this.resource(ref.apiVersion, ref.kind);
    if (!r) throw new ApiFailure(404, `the server does not serve ${ref.kind} (${ref.apiVersion})`);
    const ns = r.namespaced ? `/namespaces/${encodeURIComponent(ref.namespace ?? 'default')}` : '';
    return `${KubeObjectClient.base(ref.apiVersion)}${ns}/${r.name}/${encodeURIComponent(ref.name)}`;
  }

  private fail(verb: string, what: string, e: unknown): never {
    const status = e instanceof ApiFailure ? e.status : undefined;
    if (status === 409) throw new ConflictError(what, { cause: e });
    throw new EdgeError('SITE_API', `${verb} ${what}: ${(e as Error).message}`, {
      hint:
        status === 401 || status === 403
          ? 'the kubeconfig edgectl uses must be cluster-admin (k3s: /etc/rancher/k3s/k3s.yaml)'
          : status === 422 || status === 400
            ? 'the API server refused the object: check the site spec, or report a bug with this message'
            : 'is the k3s server up? edgectl retries on the next reconcile',
      cause: e,
    });
  }

  async get(ref: ObjectRef): Promise<KubeObject | null> {
    try {
      const r = await this.resource(ref.apiVersion, ref.kind);
      if (!r) return null;
      return (await this.call('GET', await this.objectPath(ref))) as KubeObject | null;
    } catch (e) {
      return this.fail('read', describeRef(ref), e);
    }
  }

  async apply(obj: KubeObject): Promise<KubeObject> {
    try {
      const path = await this.objectPath(refOf(obj));
      // Server-side apply takes YAML, and JSON is YAML: the object goes as rendered.
      const applied = await this.call(
        'PATCH',
        `${path}?fieldManager=${MANAGER}&force=true`,
        JSON.stringify(obj),
        'application/apply-patch+yaml',
      );
      if (applied === null) throw new ApiFailure(404, 'not found');
      return applied as KubeObject;
    } catch (e) {
      return this.fail('apply', describeObject(obj), e);
    }
  }

  async list(apiVersion: string, kind: string, opts: ListOptions = {}): Promise<KubeObject[]> {
    try {
      // A CRD that is not installed: the server does not serve the kind, so nothing of it exists.
      const r = await this.resource(apiVersion, kind);
      if (!r) return [];
      const query = new URLSearchParams();
      if (opts.labelSelector) query.set('labelSelector', opts.labelSelector);
      if (opts.fieldSelector) query.set('fieldSelector', opts.fieldSelector);
      const q = query.size > 0 ? `?${query}` : '';
      const listed = (await this.call('GET', `${KubeObjectClient.base(apiVersion)}/${r.name}${q}`)) as {
        items?: KubeObject[];
      } | null;
      // List items carry no apiVersion/kind of their own.
      return (listed?.items ?? []).map((i) => ({ ...i, apiVersion, kind }));
    } catch (e) {
      return this.fail('list', `${kind} (${apiVersion})`, e);
    }
  }

  async mergePatch(
    ref: ObjectRef,
    patch: Record<string, unknown>,
    resourceVersion?: string,
  ): Promise<KubeObject> {
    const body =
      resourceVersion === undefined
        ? patch
        : { ...patch, metadata: { ...(patch.metadata as object | undefined), resourceVersion } };
    try {
      const patched = await this.call(
        'PATCH',
        `${await this.objectPath(ref)}?fieldManager=${MANAGER}`,
        JSON.stringify(body),
        'application/merge-patch+json',
      );
      if (patched === null) throw new ApiFailure(404, 'not found');
      return patched as KubeObject;
    } catch (e) {
      return this.fail('patch', describeRef(ref), e);
    }
  }

  async delete(ref: ObjectRef, opts: DeleteOptions = {}): Promise<boolean> {
    try {
      const r = await this.resource(ref.apiVersion, ref.kind);
      if (!r) return false;
      const q = opts.gracePeriodSeconds === undefined ? '' : `?gracePeriodSeconds=${opts.gracePeriodSeconds}`;
      return (await this.call('DELETE', `${await this.objectPath(ref)}${q}`)) !== null;
    } catch (e) {
      return this.fail('delete', describeRef(ref), e);
    }
  }
}
