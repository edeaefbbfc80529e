/**
 * ObjectClient: the few API-server operations the site applier needs (get, server-side apply, list,
 * merge patch, delete), on plain JSON objects. KubeObjectClient (kube-client.ts) talks to a real API
 * server over HTTPS; InMemoryObjectClient (in-memory-client.ts) is its twin. The applier's logic
 * (applier.ts) is written once against this interface, and the SiteApplier contract runs it against
 * both. This module does no I/O, so loading it loads no client.
 */
import { EdgeError } from '../errors.ts';
import type { KubeObject } from './objects.ts';

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
  /**
   * close releases what the client holds: the child process of ChildObjectClient (kube-child.ts),
   * whose calls fail after it. The other clients hold nothing to release.
   */
  close?(): Promise<void>;
}

export interface DeleteOptions {
  readonly gracePeriodSeconds?: number;
}

/** ConflictError: the object changed since it was read (HTTP 409); read it again and retry. */
export class ConflictError extends EdgeError {
  /** The object, as the message names it: what a copy of the error across a process is made from. */
  readonly what: string;
  constructor(what: string, opts: { cause?: unknown } = {}) {
    super('SITE_CONFLICT', `${what} changed while edgectl was updating it`, {
      ...opts,
      hint: 'edgectl retries this; if it persists, another controller is fighting over the object',
    });
    this.what = what;
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
