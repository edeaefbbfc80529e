/**
 * ObjectClient: the few API-server operations the site applier needs (get, server-side apply, list,
 * merge patch, delete), on plain JSON objects. KubeObjectClient talks to a real API server through
 * @kubernetes/client-node's KubernetesObjectApi; InMemoryObjectClient (in-memory-client.ts) is its
 * twin. The applier's logic (applier.ts) is written once against this interface, and the SiteApplier
 * contract runs it against both.
 */
import {
  createConfiguration,
  KubernetesObjectApi,
  PatchStrategy,
  ServerConfiguration,
} from '@kubernetes/client-node';
import type { KubeConfig, RequestContext, ResponseContext } from '@kubernetes/client-node';
import { EdgeError } from '../errors.ts';
import { describeObject, MANAGER, type KubeObject } from './objects.ts';

export interface ObjectRef {
  readonly apiVersion: string;
  readonly kind: string;
  readonly name: string;
  readonly namespace?: string;
}

export interface ListOptions {
  /** Equality terms only: `a=b,c=d`. */
  readonly labelSelector?: string;
  /** Equality terms only, like `spec.nodeName=r3`. */
  readonly fieldSelector?: string;
}

export interface ObjectClient {
  /** get returns the object, or null if it does not exist. */
  get(ref: ObjectRef): Promise<KubeObject | null>;
  /** apply is server-side apply with fieldManager edgectl, forcing conflicts; returns the object. */
  apply(obj: KubeObject): Promise<KubeObject>;
  /**
   * list returns the objects of a kind in every namespace, each with apiVersion and kind set. A kind
   * the server does not serve (its CRD is not installed) lists as empty.
   */
  list(apiVersion: string, kind: string, opts?: ListOptions): Promise<KubeObject[]>;
  /**
   * mergePatch applies a JSON merge patch (RFC 7386). With `resourceVersion`, the patch applies only
   * to that version of the object, and a newer one throws ConflictError.
   */
  mergePatch(ref: ObjectRef, patch: Record<string, unknown>, resourceVersion?: string): Promise<KubeObject>;
  /**
   * delete returns false if the object was already gone. `gracePeriodSeconds: 0` deletes a pod at
   * once, without waiting for its kubelet to confirm (what the pod garbage collector does for the
   * pods of an out-of-service node).
   */
  delete(ref: ObjectRef, opts?: DeleteOptions): Promise<boolean>;
}

export interface DeleteOptions {
  readonly gracePeriodSeconds?: number;
}

/** ConflictError: the object changed since it was read (HTTP 409); read it again and retry. */
export class ConflictError extends EdgeError {
  constructor(what: string, opts: { cause?: unknown } = {}) {
    super('SITE_CONFLICT', `${what} changed while edgectl was updating it`, {
      ...opts,
      hint: 'edgectl retries this; if it persists, another controller is fighting over the object',
    });
  }
}

export function refOf(o: Pick<KubeObject, 'apiVersion' | 'kind' | 'metadata'>): ObjectRef {
  return {
    apiVersion: o.apiVersion,
    kind: o.kind,
    name: o.metadata.name,
    ...(o.metadata.namespace === undefined ? {} : { namespace: o.metadata.namespace }),
  };
}

function describeRef(ref: ObjectRef): string {
  return describeObject({ kind: ref.kind, metadata: ref });
}

/** An API error as the server reported it (HTTP status and Status.message). */
interface ApiFailure {
  code: number;
  message: string;
}

function apiFailure(e: unknown): ApiFailure | null {
  if (typeof e !== 'object' || e === null || typeof (e as { code?: unknown }).code !== 'number') return null;
  let body = (e as { body?: unknown }).body;
  // The library hands the error body over as text; the API server sends a Status object.
  if (typeof body === 'string')
    try {
      body = JSON.parse(body);
    } catch {
      // Not JSON: keep the text.
    }
  const message =
    typeof body === 'object' && body !== null && typeof (body as { message?: unknown }).message === 'string'
      ? (body as { message: string }).message
      : typeof body === 'string'
        ? body
        : (e as Error).message;
  return { code: (e as { code: number }).code, message };
}

/**
 * KubeObjectClient uses KubernetesObjectApi for what it does well (discovery of each kind's path,
 * auth, TLS, errors) but sends and reads JSON bytes itself. The library (re)serializes bodies through
 * its generated models, which rename fields: it drops a LimitRange's `default` (model field
 * `_default`) and a NetworkPolicy ingress rule's `from` (`_from`) from a plain object, and an
 * ingress rule without `from` allows everything. So a middleware swaps in our own request body and
 * keeps the raw response text, and every call runs alone (one at a time) so the two slots are ours.
 */
export class KubeObjectClient implements ObjectClient {
  private readonly api: KubernetesObjectApi;
  private nextBody: string | undefined;
  private lastResponse = '';
  private queue: Promise<unknown> = Promise.resolve();

  constructor(kubeConfig: KubeConfig) {
    const cluster = kubeConfig.getCurrentCluster();
    if (!cluster)
      throw new EdgeError('KUBECONFIG_NO_CLUSTER', 'the kubeconfig has no current cluster', {
        hint: 'set current-context in the kubeconfig',
      });
    this.api = new KubernetesObjectApi(
      createConfiguration({
        baseServer: new ServerConfiguration(cluster.server, {}),
        authMethods: { default: kubeConfig },
        promiseMiddleware: [
          {
            pre: async (ctx: RequestContext) => {
              const m = ctx.getHttpMethod();
              if (this.nextBody !== undefined && (m === 'PATCH' || m === 'POST' || m === 'PUT')) {
                ctx.setBody(this.nextBody);
                this.nextBody = undefined;
              }
              return ctx;
            },
            post: async (rsp: ResponseContext) => {
              // The body can be read once: keep the text, and give the library a copy to parse.
              const text = await rsp.body.text();
              this.lastResponse = text;
              rsp.body = {
                text: async () => text,
                binary: async () => Buffer.from(text),
                stream: () => null,
              };
              return rsp;
            },
          },
        ],
      }),
    );
  }

  /** exclusive runs calls one at a time: the middleware's two slots belong to the running call. */
  private exclusive<T>(f: () => Promise<T>): Promise<T> {
    const run = this.queue.then(f, f);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private parsedResponse(): KubeObject {
    return JSON.parse(this.lastResponse) as KubeObject;
  }

  private header(ref: ObjectRef) {
    return {
      apiVersion: ref.apiVersion,
      kind: ref.kind,
      metadata: { name: ref.name, ...(ref.namespace === undefined ? {} : { namespace: ref.namespace }) },
    };
  }

  private fail(verb: string, what: string, e: unknown): never {
    const f = apiFailure(e);
    if (f?.code === 409) throw new ConflictError(what, { cause: e });
    throw new EdgeError(
      'SITE_API',
      `${verb} ${what}: ${f ? `HTTP ${f.code}: ${f.message}` : (e as Error).message}`,
      {
        hint:
          f?.code === 401 || f?.code === 403
            ? 'the kubeconfig edgectl uses must be cluster-admin (k3s: /etc/rancher/k3s/k3s.yaml)'
            : f?.code === 422 || f?.code === 400
              ? 'the API server refused the object: check the site spec, or report a bug with this message'
              : 'is the k3s server up? edgectl retries on the next reconcile',
        cause: e,
      },
    );
  }

  get(ref: ObjectRef): Promise<KubeObject | null> {
    return this.exclusive(async () => {
      try {
        await this.api.read(this.header(ref));
        return this.parsedResponse();
      } catch (e) {
        if (apiFailure(e)?.code === 404) return null;
        return this.fail('read', describeRef(ref), e);
      }
    });
  }

  apply(obj: KubeObject): Promise<KubeObject> {
    return this.exclusive(async () => {
      try {
        this.nextBody = JSON.stringify(obj);
        await this.api.patch(
          this.header(refOf(obj)),
          undefined,
          undefined,
          MANAGER,
          true,
          PatchStrategy.ServerSideApply,
        );
        return this.parsedResponse();
      } catch (e) {
        return this.fail('apply', describeObject(obj), e);
      } finally {
        this.nextBody = undefined;
      }
    });
  }

  list(apiVersion: string, kind: string, opts: ListOptions = {}): Promise<KubeObject[]> {
    return this.exclusive(async () => {
      try {
        await this.api.list(
          apiVersion,
          kind,
          undefined,
          undefined,
          undefined,
          undefined,
          opts.fieldSelector,
          opts.labelSelector,
        );
      } catch (e) {
        // A CRD that is not installed: the kind is unknown to discovery, so nothing of it exists.
        if (apiFailure(e)?.code === 404 || /Unrecognized API version and kind/.test((e as Error).message))
          return [];
        return this.fail('list', `${kind} (${apiVersion})`, e);
      }
      const items = (JSON.parse(this.lastResponse) as { items?: KubeObject[] }).items ?? [];
      // List items carry no apiVersion/kind of their own.
      return items.map((i) => ({ ...i, apiVersion, kind }));
    });
  }

  mergePatch(ref: ObjectRef, patch: Record<string, unknown>, resourceVersion?: string): Promise<KubeObject> {
    return this.exclusive(async () => {
      const body =
        resourceVersion === undefined
          ? patch
          : { ...patch, metadata: { ...(patch.metadata as object | undefined), resourceVersion } };
      try {
        this.nextBody = JSON.stringify(body);
        await this.api.patch(
          this.header(ref),
          undefined,
          undefined,
          MANAGER,
          undefined,
          PatchStrategy.MergePatch,
        );
        return this.parsedResponse();
      } catch (e) {
        return this.fail('patch', describeRef(ref), e);
      } finally {
        this.nextBody = undefined;
      }
    });
  }

  delete(ref: ObjectRef, opts: DeleteOptions = {}): Promise<boolean> {
    return this.exclusive(async () => {
      try {
        await this.api.delete(this.header(ref), undefined, undefined, opts.gracePeriodSeconds);
        return true;
      } catch (e) {
        if (apiFailure(e)?.code === 404) return false;
        return this.fail('delete', describeRef(ref), e);
      }
    });
  }
}
