/**
 * InMemoryObjectClient: the ObjectClient twin. It keeps objects in a map and mimics the API-server
 * behaviour the applier depends on: resourceVersion bumps only on a real change (so a repeated
 * server-side apply is a no-op), label and field selectors, merge patches with a resourceVersion
 * precondition (409 on a stale one), CRDs that are Established at once, and 404 as null/false.
 */
import {
  ConflictError,
  type DeleteOptions,
  type ListOptions,
  type ObjectClient,
  type ObjectRef,
} from './object-client.ts';
import { objectKey, type KubeObject } from './objects.ts';

const clone = <T>(v: T): T => structuredClone(v);

/** The fields the server owns: an apply neither sets nor compares them. */
function withoutServerFields(o: KubeObject): KubeObject {
  const { resourceVersion: _rv, uid: _uid, ...metadata } = o.metadata;
  const { status: _status, ...rest } = o;
  return { ...rest, metadata } as KubeObject;
}

function canonical(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) =>
    x && typeof x === 'object' && !Array.isArray(x)
      ? Object.fromEntries(Object.entries(x as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1)))
      : x,
  );
}

/** RFC 7386: null deletes a key, objects merge, anything else replaces. */
function mergePatchValue(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return clone(patch);
  const out: Record<string, unknown> =
    target && typeof target === 'object' && !Array.isArray(target)
      ? { ...(target as Record<string, unknown>) }
      : {};
  for (const [k, v] of Object.entries(patch as Record<string, unknown>)) {
    if (v === null) delete out[k];
    else out[k] = mergePatchValue(out[k], v);
  }
  return out;
}

function matchesSelector(terms: string | undefined, read: (key: string) => string | undefined): boolean {
  if (!terms) return true;
  return terms.split(',').every((t) => {
    const [k, v] = t.split('=');
    return read(k!) === v;
  });
}

function fieldOf(o: KubeObject, path: string): string | undefined {
  let cur: unknown = o;
  for (const p of path.split('.'))
    cur = cur && typeof cur === 'object' ? (cur as Record<string, unknown>)[p] : undefined;
  return typeof cur === 'string' ? cur : undefined;
}

export class InMemoryObjectClient implements ObjectClient {
  private readonly objects = new Map<string, KubeObject>();
  private version = 0;
  /** Every write, in order, for tests that want to see what was done: `apply Kind ns/name` etc. */
  readonly writes: string[] = [];

  private key(ref: ObjectRef): string {
    return objectKey({ apiVersion: ref.apiVersion, kind: ref.kind, metadata: ref });
  }

  private store(o: KubeObject): KubeObject {
    const stored = clone(o);
    stored.metadata.resourceVersion = String(++this.version);
    stored.metadata.uid ??= `uid-${this.version}`;
    if (o.kind === 'CustomResourceDefinition')
      stored.status = { conditions: [{ type: 'Established', status: 'True' }] };
    this.objects.set(objectKey(stored), stored);
    return clone(stored);
  }

  /** create adds an object as another client would (a Node, a Pod, an IPPool): a test fixture. */
  create(o: KubeObject): KubeObject {
    if (this.objects.has(objectKey(o))) throw new ConflictError(objectKey(o));
    return this.store(o);
  }

  async get(ref: ObjectRef): Promise<KubeObject | null> {
    const o = this.objects.get(this.key(ref));
    return o ? clone(o) : null;
  }

  async apply(obj: KubeObject): Promise<KubeObject> {
    const existing = this.objects.get(objectKey(obj));
    this.writes.push(`apply ${obj.kind} ${obj.metadata.namespace ?? ''}/${obj.metadata.name}`);
    if (!existing) return this.store(withoutServerFields(obj));
    const next: KubeObject = {
      ...withoutServerFields(obj),
      metadata: { ...withoutServerFields(obj).metadata, uid: existing.metadata.uid },
      ...(existing.status === undefined ? {} : { status: existing.status }),
    };
    if (canonical(withoutServerFields(next)) === canonical(withoutServerFields(existing)))
      return clone(existing);
    return this.store(next);
  }

  async list(apiVersion: string, kind: string, opts: ListOptions = {}): Promise<KubeObject[]> {
    return [...this.objects.values()]
      .filter((o) => o.apiVersion === apiVersion && o.kind === kind)
      .filter((o) => matchesSelector(opts.labelSelector, (k) => o.metadata.labels?.[k]))
      .filter((o) => matchesSelector(opts.fieldSelector, (k) => fieldOf(o, k)))
      .map(clone);
  }

  async mergePatch(
    ref: ObjectRef,
    patch: Record<string, unknown>,
    resourceVersion?: string,
  ): Promise<KubeObject> {
    const existing = this.objects.get(this.key(ref));
    this.writes.push(`patch ${ref.kind} ${ref.namespace ?? ''}/${ref.name}`);
    if (!existing) throw new Error(`${ref.kind} ${ref.name} not found`);
    if (resourceVersion !== undefined && existing.metadata.resourceVersion !== resourceVersion)
      throw new ConflictError(`${ref.kind} ${ref.name}`);
    const next = mergePatchValue(existing, patch) as KubeObject;
    next.metadata.uid = existing.metadata.uid;
    return canonical(next) === canonical(existing) ? clone(existing) : this.store(next);
  }

  async delete(ref: ObjectRef, opts: DeleteOptions = {}): Promise<boolean> {
    const grace = opts.gracePeriodSeconds === undefined ? '' : ` grace=${opts.gracePeriodSeconds}`;
    this.writes.push(`delete ${ref.kind} ${ref.namespace ?? ''}/${ref.name}${grace}`);
    return this.objects.delete(this.key(ref));
  }

  /** all returns every stored object, for tests. */
  all(): KubeObject[] {
    return [...this.objects.values()].map(clone);
  }
}
