/**
 * ChildObjectClient: the ObjectClient a robot's leader reaches its k3s server with, run in a
 * short-lived child process. The HTTPS client (kube-client.ts) needs node:https, and with it tls
 * and all of node:crypto; a module once loaded stays in a process for its whole life, so a robot
 * that led once would keep them in the agent's memory for good. The child (kube-worker.ts, in the
 * bundle edgectl-agent-kube.cjs beside the entry) holds one KubeObjectClient for the admin
 * kubeconfig and answers the ObjectClient's calls as newline-delimited JSON on its stdin and
 * stdout, several at a time, each under its own id.
 *
 * The parent starts the child on the first call, keeps it while calls come, and ends it once it has
 * had nothing to answer for IDLE_CLOSE_MS, or on close(); the next call starts a new one, which
 * reads the kubeconfig again (k3s rewrites it when its server's certificates change). Errors cross
 * as data: a ConflictError comes back a ConflictError (the applier retries on `instanceof`), an
 * EdgeError with its code, message and hint. A child that dies, cannot start or stops answering
 * fails the calls it held with an EdgeError that says what happened and ends with its stderr.
 *
 * Both ends of the protocol are here (serveObjectClient is the child's). This module imports
 * node:child_process only, which the agent has loaded already: its config loader runs in a child.
 */
import type { ChildProcess } from 'node:child_process';
import { EdgeError } from '../errors.ts';
import { startHelperChild } from '../exec/helper-child.ts';
import {
  ConflictError,
  type DeleteOptions,
  type ListOptions,
  type ObjectClient,
  type ObjectRef,
} from './object-client.ts';
import type { KubeObject } from './objects.ts';

/**
 * How long a child with no call to answer is kept. An apply, and the marks of a lost robot, are
 * bursts of calls close together, which one child serves; the leader reconciles far less often
 * than this, so between bursts no child runs and nothing of the HTTPS client is in memory.
 */
export const IDLE_CLOSE_MS = 5_000;

/**
 * How long one call may take before it fails: KubeObjectClient gives each HTTPS request 15 s, and a
 * call makes up to three (the kind's discovery, again for a CRD just installed, then the call
 * itself), after the child's own start. A child that lets a call pass this is stuck, and is killed.
 */
export const CALL_TIMEOUT_MS = 60_000;

/** How long a child whose stdin has ended has to exit before it is killed: it exits once it has answered. */
const CLOSE_GRACE_MS = 2_000;

const OPS = ['get', 'apply', 'list', 'mergePatch', 'delete'] as const;
type Op = (typeof OPS)[number];

/** One call, as the parent writes it on the child's stdin: a line of JSON. */
export interface WireRequest {
  readonly id: number;
  readonly op: Op;
  readonly args: readonly unknown[];
}

/** The cause of an error, as far as it crosses: its message and its code (a TLS failure's). */
interface WireCause {
  readonly message: string;
  readonly code?: string;
}

/** An error, as data: what the parent needs to throw the same one. */
export type WireError =
  | { readonly kind: 'conflict'; readonly what: string; readonly cause?: WireCause }
  | {
      readonly kind: 'edge';
      readonly code: string;
      readonly message: string;
      readonly hint?: string;
      readonly cause?: WireCause;
    }
  | { readonly kind: 'error'; readonly name: string; readonly message: string };

/** The child's answer to one call: a line of JSON on its stdout. */
export type WireReply =
  | { readonly id: number; readonly ok: true; readonly value: unknown }
  | { readonly id: number; readonly ok: false; readonly error: WireError };

function toWireCause(cause: unknown): WireCause | undefined {
  if (cause === undefined) return undefined;
  if (!(cause instanceof Error)) return { message: String(cause) };
  const code = (cause as { code?: unknown }).code;
  return { message: cause.message, ...(typeof code === 'string' ? { code } : {}) };
}

function fromWireCause(c: WireCause | undefined): { cause?: Error } {
  if (c === undefined) return {};
  return { cause: Object.assign(new Error(c.message), c.code === undefined ? {} : { code: c.code }) };
}

/** toWireError turns an error thrown in the child into data. */
export function toWireError(e: unknown): WireError {
  const cause = e instanceof Error ? toWireCause(e.cause) : undefined;
  const withCause = cause === undefined ? {} : { cause };
  if (e instanceof ConflictError) return { kind: 'conflict', what: e.what, ...withCause };
  if (e instanceof EdgeError)
    return {
      kind: 'edge',
      code: e.code,
      message: e.message,
      ...(e.hint === undefined ? {} : { hint: e.hint }),
      ...withCause,
    };
  if (e instanceof Error) return { kind: 'error', name: e.name, message: e.message };
  return { kind: 'error', name: 'Error', message: String(e) };
}

/** fromWireError makes the error the child threw, in this process. */
export function fromWireError(w: WireError): Error {
  switch (w.kind) {
    case 'conflict':
      return new ConflictError(w.what, fromWireCause(w.cause));
    case 'edge':
      return new EdgeError(w.code, w.message, {
        ...(w.hint === undefined ? {} : { hint: w.hint }),
        ...fromWireCause(w.cause),
      });
    case 'error':
      return Object.assign(new Error(w.message), { name: w.name });
  }
}

/** answer runs one call against the client. */
async function answer(client: ObjectClient, req: WireRequest): Promise<unknown> {
  const a = req.args;
  switch (req.op) {
    case 'get':
      return client.get(a[0] as ObjectRef);
    case 'apply':
      return client.apply(a[0] as KubeObject);
    case 'list':
      return client.list(a[0] as string, a[1] as string, a[2] as ListOptions | undefined);
    case 'mergePatch':
      return client.mergePatch(
        a[0] as ObjectRef,
        a[1] as Record<string, unknown>,
        a[2] as string | undefined,
      );
    case 'delete':
      return client.delete(a[0] as ObjectRef, a[1] as DeleteOptions | undefined);
  }
}

/**
 * serveObjectClient is the child's side: it answers each line of its stdin with a line on its
 * stdout, from the client `makeClient` makes on the first call (again on the next, if that threw),
 * and exits once its stdin has ended and every call is answered. It exits rather than waits for
 * its event loop to empty: the HTTPS client keeps idle connections open for a while.
 */
export function serveObjectClient(makeClient: () => ObjectClient): void {
  let client: ObjectClient | undefined;
  let inFlight = 0;
  let ended = false;
  let buffered = '';
  const exitIfDone = () => {
    if (ended && inFlight === 0) process.stdout.write('', () => process.exit(0));
  };
  const handle = (line: string) => {
    let req: WireRequest;
    try {
      req = JSON.parse(line) as WireRequest;
      if (!Number.isSafeInteger(req.id) || !OPS.includes(req.op) || !Array.isArray(req.args))
        throw new Error('not a call');
    } catch {
      // Nothing to answer it under: the parent fails its calls with this, from the stderr.
      process.stderr.write(`the Kubernetes client's child got what is not a call: ${line.slice(0, 200)}\n`);
      process.exit(70);
    }
    inFlight++;
    void (async (): Promise<WireReply> => {
      try {
        client ??= makeClient();
        return { id: req.id, ok: true, value: await answer(client, req) };
      } catch (e) {
        return { id: req.id, ok: false, error: toWireError(e) };
      }
    })().then((reply) => {
      process.stdout.write(`${JSON.stringify(reply)}\n`);
      inFlight--;
      exitIfDone();
    });
  };
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (d: string) => {
    buffered += d;
    for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      if (line.trim()) handle(line);
    }
  });
  process.stdin.on('end', () => {
    ended = true;
    exitIfDone();
  });
}

export interface ChildObjectClientOptions {
  /** The child's entry: agent/site/kube-worker.ts from the sources, edgectl-agent-kube.cjs bundled. */
  readonly worker: string;
  /** Its arguments: the kubeconfig's path, for kube-worker.ts. */
  readonly args?: readonly string[];
  /** Default IDLE_CLOSE_MS. */
  readonly idleCloseMs?: number;
  /** Default CALL_TIMEOUT_MS. */
  readonly callTimeoutMs?: number;
}

interface PendingCall {
  readonly op: Op;
  readonly resolve: (value: unknown) => void;
  readonly reject: (e: Error) => void;
  readonly timer: NodeJS.Timeout;
}

interface Child {
  readonly proc: ChildProcess;
  readonly calls: Map<number, PendingCall>;
  /** The part of a line read so far. */
  stdout: string;
  /** The end of what it wrote on stderr. */
  readonly stderr: () => string;
  /** Set when this side ended it: why, for the calls it still held. */
  endedBecause: string | null;
  killTimer: NodeJS.Timeout | null;
  gone: boolean;
  readonly exited: Promise<void>;
}

const CHILD_HINT =
  "edgectl retries on the next reconcile; if this repeats, the child's stderr above says why (a missing agent file: install the agent bundle again)";

export class ChildObjectClient implements ObjectClient {
  private readonly worker: string;
  private readonly args: readonly string[];
  private readonly idleCloseMs: number;
  private readonly callTimeoutMs: number;
  private child: Child | null = null;
  private nextId = 1;
  private idleTimer: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(o: ChildObjectClientOptions) {
    this.worker = o.worker;
    this.args = o.args ?? [];
    this.idleCloseMs = o.idleCloseMs ?? IDLE_CLOSE_MS;
    this.callTimeoutMs = o.callTimeoutMs ?? CALL_TIMEOUT_MS;
  }

  /** The process id of the child that runs now, if one does. */
  get pid(): number | undefined {
    return this.child?.proc.pid;
  }

  get(ref: ObjectRef): Promise<KubeObject | null> {
    return this.call('get', [ref]) as Promise<KubeObject | null>;
  }

  apply(obj: KubeObject): Promise<KubeObject> {
    return this.call('apply', [obj]) as Promise<KubeObject>;
  }

  list(apiVersion: string, kind: string, opts: ListOptions = {}): Promise<KubeObject[]> {
    return this.call('list', [apiVersion, kind, opts]) as Promise<KubeObject[]>;
  }

  mergePatch(ref: ObjectRef, patch: Record<string, unknown>, resourceVersion?: string): Promise<KubeObject> {
    // Not [ref, patch, undefined]: JSON would make that a null version.
    const args = resourceVersion === undefined ? [ref, patch] : [ref, patch, resourceVersion];
    return this.call('mergePatch', args) as Promise<KubeObject>;
  }

  delete(ref: ObjectRef, opts: DeleteOptions = {}): Promise<boolean> {
    return this.call('delete', [ref, opts]) as Promise<boolean>;
  }

  /** close fails the calls in flight, ends the child and refuses every later call. */
  async close(): Promise<void> {
    this.closed = true;
    this.cancelIdle();
    const child = this.child;
    if (!child) return;
    for (const [id, c] of child.calls) {
      clearTimeout(c.timer);
      child.calls.delete(id);
      c.reject(
        new EdgeError('SITE_API_CLOSED', `${c.op}: the Kubernetes client was closed before it answered`, {
          hint: 'the robot stopped serving its k3s server, or its agent is stopping: the next leader applies the site',
        }),
      );
    }
    this.end(child, 'was closed');
    await child.exited;
  }

  private call(op: Op, args: readonly unknown[]): Promise<unknown> {
    if (this.closed)
      return Promise.reject(
        new EdgeError('SITE_API_CLOSED', `${op}: the Kubernetes client is closed`, {
          hint: 'the robot stopped serving its k3s server, or its agent is stopping: the next leader applies the site',
        }),
      );
    this.cancelIdle();
    const child = this.child ?? this.start();
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.timedOut(child, id), this.callTimeoutMs);
      child.calls.set(id, { op, resolve, reject, timer });
      child.proc.stdin!.write(`${JSON.stringify({ id, op, args } satisfies WireRequest)}\n`);
    });
  }

  private describe(): string {
    return `the Kubernetes client's child process (node ${[this.worker, ...this.args].join(' ')})`;
  }

  private start(): Child {
    const started = startHelperChild(this.worker, this.args);
    const proc = started.proc;
    let exited!: () => void;
    const child: Child = {
      proc,
      calls: new Map(),
      stdout: '',
      stderr: started.stderr,
      endedBecause: null,
      killTimer: null,
      gone: false,
      exited: new Promise<void>((r) => (exited = r)),
    };
    this.child = child;
    proc.stdout!.setEncoding('utf8');
    proc.stdout!.on('data', (d: string) => this.read(child, d));
    proc.on('error', (e) => {
      this.gone(child, `could not start: ${e.message}`);
      exited();
    });
    proc.on('close', (code, signal) => {
      this.gone(child, code === null ? `was killed by ${signal}` : `exited with code ${code}`);
      exited();
    });
    return child;
  }

  private read(child: Child, data: string): void {
    child.stdout += data;
    for (let nl = child.stdout.indexOf('\n'); nl >= 0; nl = child.stdout.indexOf('\n')) {
      const line = child.stdout.slice(0, nl);
      child.stdout = child.stdout.slice(nl + 1);
      let reply: WireReply;
      try {
        reply = JSON.parse(line) as WireReply;
      } catch {
        this.kill(child, `printed what is not an answer (${line.slice(0, 200)})`);
        return;
      }
      const c = child.calls.get(reply.id);
      // A call that timed out, or that close() failed, is answered late: nobody waits for it.
      if (!c) continue;
      clearTimeout(c.timer);
      child.calls.delete(reply.id);
      if (reply.ok) c.resolve(reply.value);
      else c.reject(fromWireError(reply.error));
    }
    if (this.child === child && child.calls.size === 0) this.armIdle(child);
  }

  private armIdle(child: Child): void {
    this.cancelIdle();
    this.idleTimer = setTimeout(() => {
      this.idleTimer = null;
      if (this.child === child && child.calls.size === 0) this.end(child, 'was idle');
    }, this.idleCloseMs);
  }

  private cancelIdle(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
  }

  /** end lets the child finish: its stdin ends, and it is killed if it has not exited by the grace. */
  private end(child: Child, because: string): void {
    if (this.child === child) this.child = null;
    child.endedBecause ??= because;
    child.proc.stdin!.end();
    child.killTimer ??= setTimeout(() => child.proc.kill('SIGKILL'), CLOSE_GRACE_MS);
  }

  private kill(child: Child, because: string): void {
    if (this.child === child) this.child = null;
    child.endedBecause ??= because;
    child.proc.kill('SIGKILL');
  }

  private timedOut(child: Child, id: number): void {
    const c = child.calls.get(id);
    if (!c) return;
    child.calls.delete(id);
    const s = this.callTimeoutMs / 1000;
    c.reject(
      new EdgeError('SITE_API_TIMEOUT', `${c.op}: ${this.describe()} answered nothing within ${s} s`, {
        hint: 'the child is stuck past its own request timeouts: it is killed, and the next call (edgectl retries on the next reconcile) starts a new one',
      }),
    );
    this.kill(child, `was killed: a call went unanswered for ${s} s`);
  }

  /** gone: the child has exited (or never started); the calls it still held fail, saying why. */
  private gone(child: Child, how: string): void {
    if (child.gone) return;
    child.gone = true;
    if (this.child === child) {
      this.child = null;
      this.cancelIdle();
    }
    if (child.killTimer) clearTimeout(child.killTimer);
    const why = child.endedBecause === null ? how : `${child.endedBecause} (it ${how})`;
    const stderr = child.stderr();
    for (const [id, c] of child.calls) {
      clearTimeout(c.timer);
      child.calls.delete(id);
      c.reject(
        new EdgeError(
          'SITE_API_CHILD',
          `${c.op}: ${this.describe()} ${why} before it answered; its stderr: ${stderr || '(nothing)'}`,
          { hint: CHILD_HINT },
        ),
      );
    }
  }
}
