/**
 * Control-plane snapshots between server-capable robots (docs/k3s.md "Snapshots", docs/protocol.md
 * "Snapshot pushes"). The leader snapshots its etcd on a schedule, pushes each snapshot to the other
 * voters and appends its record to the replicated site log; a new leader restores the newest
 * snapshot whose record is committed in that log and whose bytes match it.
 *
 * A push is one HTTP PUT. Its header names the sender, the receiver, the sender's term, the
 * snapshot's record and the exact size of the body, under an HMAC-SHA256 with the secret the two
 * robots share for snapshots. The receiver checks all of that before it reads one byte of the body:
 * the MAC, that it is the addressee, that the sender is the leader it follows in its current term,
 * that the record is well formed and fits its limit, and that no other upload is running. Only then
 * does it stream the body, AES-256-GCM with the header as associated data, into a temporary file
 * in its store, and keep the snapshot if the tag, the size and the record's SHA-256 all match. So a
 * host without the secret costs the receiver one small header, and a snapshot (which holds the
 * cluster's Secrets) never crosses the Wi-Fi in clear.
 *
 * The header MAC uses @noble/hashes, which the agent has loaded anyway. The AES-256-GCM of the body
 * runs in a short-lived child process per push, sent or received (snapshot-cipher.ts), and the
 * receiver's SHA-256 of the content with it: the agent's own process never loads node:crypto.
 */
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import {
  closeSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { NodeId } from '../../statecharts/messages.ts';
import { EdgeError } from '../errors.ts';
import { randomBytes } from '../random.ts';
import { constantTimeEqual, HmacSha256 } from '../sha256.ts';
import { SNAPSHOT_CIPHER, type OpenOutcome, type SnapshotCipher } from './snapshot-cipher.ts';
import type { LeaderEndpoint, SiteView, SnapshotRecord } from './runtime.ts';
import {
  checkSnapshotRecord,
  compareRecords,
  isCount,
  isNodeId,
  isSnapshotName,
  sameSnapshot,
  SNAPSHOT_SIZE_LIMIT,
  type Checked,
} from './snapshot-record.ts';

export type { SnapshotRecord };

export const SNAPSHOT_PORT = 7948;
/** The receiver's default limit on one snapshot's size. */
export const DEFAULT_MAX_SNAPSHOT_BYTES = 512 * 1024 * 1024;
const TAG_BYTES = 16;
const NONCE_BYTES = 12;
const HEADER = 'x-edgectl-snapshot';
const HEADER_MAC = 'x-edgectl-snapshot-mac';
/** Far above a real header (a record is a few hundred bytes), far below anything that costs memory. */
const MAX_HEADER_BYTES = 8 * 1024;
const READ_CHUNK = 1024 * 1024;

// ---- keys -------------------------------------------------------------------------------------

/**
 * SnapshotKeys: where the secret for snapshot pushes between this robot and a peer comes from. The
 * same secret authenticates pushes in both directions and seals their content.
 */
export interface SnapshotKeys {
  /**
   * The secrets this robot shares with `peer` for snapshots, one per key generation in use, the one
   * it sends with first (agent/site-key.ts Keyring.snapshotKeysFor: derived from the pair key of
   * the two voters, which no worker holds). Empty: `peer` takes no part in snapshots.
   */
  forPeer(peer: NodeId): readonly Uint8Array[];
}

interface PairKeys {
  readonly mac: HmacSha256;
  readonly seal: Uint8Array;
}

const pairKeysCache = new WeakMap<Uint8Array, PairKeys>();

/** The header's MAC key and the body's AES key, each derived from the pair's secret for its use. */
function pairKeys(secret: Uint8Array): PairKeys {
  let k = pairKeysCache.get(secret);
  if (!k) {
    k = {
      mac: new HmacSha256(hkdf(sha256, secret, undefined, Buffer.from('edgectl snapshot push header'), 32)),
      seal: hkdf(sha256, secret, undefined, Buffer.from('edgectl snapshot push body'), 32),
    };
    pairKeysCache.set(secret, k);
  }
  return k;
}

function headerMac(secret: Uint8Array, headerText: string): Uint8Array {
  const out = new Uint8Array(32);
  pairKeys(secret).mac.macInto(Buffer.from(`edgectl snapshot push v2\n${headerText}`, 'latin1'), out);
  return out;
}

// ---- the push header ----------------------------------------------------------------------------

/** PushHeader: what a push announces, and what its MAC covers. */
export interface PushHeader {
  readonly v: 2;
  readonly from: NodeId;
  readonly to: NodeId;
  /** The sender's term: the receiver accepts only the leader of its own current term. */
  readonly term: number;
  /** The body's exact size: the sealed snapshot and its tag. */
  readonly size: number;
  readonly nonce: string;
  readonly record: SnapshotRecord;
}

const HEADER_KEYS = ['v', 'from', 'to', 'term', 'size', 'nonce', 'record'];

export function encodePushHeader(h: PushHeader): string {
  return Buffer.from(JSON.stringify(h), 'utf8').toString('base64url');
}

/** decodePushHeader reads the header field; it trusts nothing, and the MAC is checked after it. */
export function decodePushHeader(text: string): Checked<PushHeader> {
  const bad = (problem: string): Checked<PushHeader> => ({ ok: false, problem });
  if (!/^[A-Za-z0-9_-]+$/.test(text)) return bad('the header is not base64url');
  let o: unknown;
  try {
    o = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'));
  } catch {
    return bad('the header is not JSON');
  }
  if (typeof o !== 'object' || o === null || Array.isArray(o)) return bad('the header is not an object');
  const h = o as Record<string, unknown>;
  if (Object.keys(h).length !== HEADER_KEYS.length || !HEADER_KEYS.every((k) => k in h))
    return bad(`the header must have exactly ${HEADER_KEYS.join(', ')}`);
  if (h['v'] !== 2) return bad('unknown header version');
  if (!isNodeId(h['from']) || !isNodeId(h['to'])) return bad('from and to must be node ids');
  if (!isCount(h['term'])) return bad('term must be a safe integer ≥ 0');
  if (!isCount(h['size'], SNAPSHOT_SIZE_LIMIT + TAG_BYTES)) return bad('size is out of range');
  if (typeof h['nonce'] !== 'string' || !/^[0-9a-f]{24}$/.test(h['nonce']))
    return bad('nonce must be 24 hex digits');
  const record = checkSnapshotRecord(h['record']);
  if (!record.ok) return bad(`record: ${record.problem}`);
  return {
    ok: true,
    value: {
      v: 2,
      from: h['from'],
      to: h['to'],
      term: h['term'],
      size: h['size'],
      nonce: h['nonce'],
      record: record.value,
    },
  };
}

// ---- the store ----------------------------------------------------------------------------------

/**
 * SnapshotStore keeps snapshot files (0600) with their records in one directory. Every path it
 * touches is built from a checked record name and confirmed to lie directly in that directory.
 * Pruning keeps the newest `keep` snapshots whose records are committed in the site log and, apart
 * from those, the newest `pending` others (just received, their record not yet committed): a
 * snapshot that was never committed cannot push a committed one out.
 */
export class SnapshotStore {
  readonly dir: string;
  private readonly keep: number;
  private readonly pending: number;
  private readonly suffix: string;

  /** `suffix` of the snapshot files: `.db` in the lab; none for k3s, which restores `<dir>/<name>`. */
  constructor(dir: string, keep = 3, suffix = '.db', pending = 2) {
    this.dir = resolve(dir);
    this.keep = Math.max(1, keep);
    this.pending = Math.max(1, pending);
    this.suffix = suffix;
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    // An upload or a save cut short by a power loss: never part of the store.
    for (const f of readdirSync(this.dir))
      if (/^\.upload-[0-9a-f]+\.part$/.test(f) || f.endsWith('.tmp'))
        rmSync(join(this.dir, f), { force: true });
  }

  /** The valid records in the store (a record file is named after its record's snapshot). */
  records(): SnapshotRecord[] {
    return readdirSync(this.dir)
      .filter((f) => f.endsWith('.json'))
      .flatMap((f) => {
        let parsed: unknown;
        try {
          parsed = JSON.parse(readFileSync(join(this.dir, f), 'utf8'));
        } catch {
          return []; // a torn write after a power loss: that snapshot does not count
        }
        const r = checkSnapshotRecord(parsed);
        return r.ok && f === `${r.value.name}.json` ? [r.value] : [];
      });
  }

  /** The newest record held, committed or not (for /status). */
  newest(): SnapshotRecord | null {
    return this.records().sort(compareRecords).at(-1) ?? null;
  }

  /** path: where `r`'s snapshot file is; it throws for a name that would lead out of the store. */
  path(r: SnapshotRecord): string {
    return this.inStore(`${r.name}${this.suffix}`, r.name);
  }

  private recordPath(r: SnapshotRecord): string {
    return this.inStore(`${r.name}.json`, r.name);
  }

  /** uploadPath: a fresh temporary file for an upload in progress. */
  uploadPath(id: string): string {
    if (!/^[0-9a-f]{8,64}$/.test(id)) throw new EdgeError('SNAPSHOT_STORE', `bad upload id ${id}`);
    return join(this.dir, `.upload-${id}.part`);
  }

  private inStore(file: string, name: string): string {
    const p = resolve(this.dir, file);
    if (!isSnapshotName(name) || dirname(p) !== this.dir)
      throw new EdgeError(
        'SNAPSHOT_NAME_INVALID',
        `snapshot name ${JSON.stringify(name)} leads out of ${this.dir}`,
        {
          hint: 'a snapshot name is one plain file name; this record was not made by edgectl',
        },
      );
    return p;
  }

  /** save writes a snapshot this robot took: the file, then its record (the commit point), then prunes. */
  save(r: SnapshotRecord, plain: Uint8Array, committed: readonly SnapshotRecord[]): void {
    const path = this.path(r);
    writeFileSync(`${path}.tmp`, plain, { mode: 0o600 });
    renameSync(`${path}.tmp`, path);
    this.writeRecord(r, committed);
  }

  /** adopt moves a verified upload into the store under its record, then prunes. */
  adopt(uploaded: string, r: SnapshotRecord, committed: readonly SnapshotRecord[]): void {
    if (dirname(resolve(uploaded)) !== this.dir)
      throw new EdgeError('SNAPSHOT_STORE', `${uploaded} is not in ${this.dir}`);
    renameSync(uploaded, this.path(r));
    this.writeRecord(r, committed);
  }

  private writeRecord(r: SnapshotRecord, committed: readonly SnapshotRecord[]): void {
    const path = this.recordPath(r);
    writeFileSync(`${path}.tmp`, JSON.stringify(r), { mode: 0o600 });
    renameSync(`${path}.tmp`, path);
    this.prune(committed);
  }

  /** prune deletes what the keep rule (above) does not keep; only files of checked records. */
  prune(committed: readonly SnapshotRecord[]): SnapshotRecord[] {
    const all = this.records().sort(compareRecords).reverse();
    const isCommitted = (r: SnapshotRecord) => committed.some((c) => sameSnapshot(c, r));
    const kept = new Set([
      ...all.filter(isCommitted).slice(0, this.keep),
      ...all.filter((r) => !isCommitted(r)).slice(0, this.pending),
    ]);
    const gone = all.filter((r) => !kept.has(r));
    for (const r of gone) {
      rmSync(this.path(r), { force: true });
      rmSync(this.recordPath(r), { force: true });
    }
    return gone;
  }

  /**
   * restorable: the newest of the `committed` records whose file this store holds with the same
   * size and SHA-256 (hashed now, so a file changed on disk does not count), or null.
   */
  restorable(committed: readonly SnapshotRecord[]): { record: SnapshotRecord; path: string } | null {
    for (const record of [...committed].sort(compareRecords).reverse()) {
      const path = this.path(record);
      if (fileDigest(path, record.size) === record.sha256) return { record, path };
    }
    return null;
  }
}

/**
 * The SHA-256 of a file that has exactly `size` bytes, read in chunks; null otherwise. With
 * @noble/hashes, which the agent has loaded anyway, not node:crypto: only the lab's runtime
 * restores from this store (the k3s runtime checks the files it restores with sha256sum on the
 * robot, agent/k3s/robot-io.ts heldSnapshots), and the lab's snapshots are small, so the slower
 * hash costs less than a child process would.
 */
function fileDigest(path: string, size: number): string | null {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return null;
  }
  try {
    const hash = sha256.create();
    const buf = Buffer.alloc(READ_CHUNK);
    let total = 0;
    for (let n; (n = readSync(fd, buf, 0, buf.length, null)) > 0;) {
      total += n;
      if (total > size) return null;
      hash.update(buf.subarray(0, n));
    }
    return total === size ? Buffer.from(hash.digest()).toString('hex') : null;
  } finally {
    closeSync(fd);
  }
}

// ---- the receiver -------------------------------------------------------------------------------

/** How a push ended; the receiver counts each (edgectl_snapshot_pushes_total). */
export const PUSH_RESULTS = [
  'kept',
  'malformed',
  'unauthenticated',
  'misdirected',
  'not-leader',
  'stale-term',
  'bad-record',
  'too-large',
  'busy',
  'truncated',
  'corrupt',
  'failed',
] as const;
export type PushResult = (typeof PUSH_RESULTS)[number];

const STATUS: Record<PushResult, number> = {
  kept: 204,
  malformed: 400,
  unauthenticated: 401,
  misdirected: 421,
  'not-leader': 409,
  'stale-term': 409,
  'bad-record': 422,
  'too-large': 413,
  busy: 503,
  truncated: 400,
  corrupt: 422,
  failed: 500,
};

export interface PushEvent {
  readonly result: PushResult;
  readonly detail: string;
  /** Set once the header is authenticated. */
  readonly from?: NodeId;
  readonly term?: number;
  readonly record?: SnapshotRecord;
}

export interface SnapshotReceiverOptions {
  /** This robot: pushes addressed to another are refused. */
  readonly self: NodeId;
  readonly address: string;
  readonly port?: number;
  readonly keys: SnapshotKeys;
  readonly store: SnapshotStore;
  /** The largest snapshot accepted (default 512 MiB). */
  readonly maxBytes?: number;
  /** Time to send the whole header (default 5 s). */
  readonly headersTimeoutMs?: number;
  /** A connection idle this long is closed, during the body too (default 15 s). */
  readonly idleTimeoutMs?: number;
  /** Every push, kept or refused, once (for the log). */
  readonly onPush?: (e: PushEvent) => void;
  /** What opens the bodies (default: the child process beside the agent, snapshot-cipher.ts). */
  readonly cipher?: SnapshotCipher;
}

/**
 * SnapshotReceiver accepts snapshot pushes from the leader (see the module comment). Until the
 * agent gives it the election's view (setSiteView) it refuses every push: it knows no leader.
 */
export class SnapshotReceiver {
  readonly server: Server;
  private readonly o: SnapshotReceiverOptions;
  private readonly maxBytes: number;
  private readonly cipher: SnapshotCipher;
  private view: SiteView | null = null;
  private uploading = false;
  private readonly counts = Object.fromEntries(PUSH_RESULTS.map((r) => [r, 0])) as Record<PushResult, number>;

  private constructor(o: SnapshotReceiverOptions) {
    this.o = o;
    this.maxBytes = Math.min(o.maxBytes ?? DEFAULT_MAX_SNAPSHOT_BYTES, SNAPSHOT_SIZE_LIMIT);
    this.cipher = o.cipher ?? SNAPSHOT_CIPHER;
    const handle = (req: IncomingMessage, res: ServerResponse) => this.handle(req, res);
    this.server = createServer(
      {
        maxHeaderSize: MAX_HEADER_BYTES,
        headersTimeout: o.headersTimeoutMs ?? 5_000,
        // A snapshot over a slow link may take minutes: the idle timeout bounds a stalled one.
        requestTimeout: 0,
        connectionsCheckingInterval: 1_000,
      },
      handle,
    );
    // With a listener here, a sender that asks `Expect: 100-continue` sends its body only once the
    // header has passed every check; refused, it never sends it.
    this.server.on('checkContinue', handle);
    this.server.maxConnections = 16;
    this.server.setTimeout(o.idleTimeoutMs ?? 15_000, (socket) => socket.destroy());
  }

  static start(o: SnapshotReceiverOptions): Promise<SnapshotReceiver> {
    const r = new SnapshotReceiver(o);
    return new Promise((resolve, reject) => {
      r.server.once('error', reject);
      r.server.listen(o.port ?? SNAPSHOT_PORT, o.address, () => {
        r.server.off('error', reject);
        resolve(r);
      });
    });
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  setSiteView(view: SiteView): void {
    this.view = view;
  }

  /** Pushes handled so far, by result. */
  stats(): Readonly<Record<PushResult, number>> {
    return { ...this.counts };
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private note(e: PushEvent): void {
    this.counts[e.result]++;
    this.o.onPush?.(e);
  }

  /** refuse answers and closes the connection, so an unread body is never read. */
  private refuse(req: IncomingMessage, res: ServerResponse, e: PushEvent, cut = false): void {
    this.note(e);
    // A request that was destroyed mid-body has let go of its socket; the response still holds it.
    const socket = req.socket ?? res.socket;
    // Mid-body (a body over its announced size) there is nothing more to say: cut the connection.
    if (cut || res.headersSent || !socket || socket.destroyed) {
      socket?.destroy();
      return;
    }
    res.writeHead(STATUS[e.result], { 'content-type': 'text/plain; charset=utf-8', connection: 'close' });
    res.end(`${e.result}: ${e.detail}\n`, () => socket.destroy());
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const refuse = (result: PushResult, detail: string, h?: PushHeader) =>
      this.refuse(req, res, { result, detail, from: h?.from, term: h?.term, record: h?.record });
    if (req.method !== 'PUT' || req.url !== '/snapshots') return refuse('malformed', 'only PUT /snapshots');
    const text = req.headers[HEADER];
    const mac = req.headers[HEADER_MAC];
    if (typeof text !== 'string' || typeof mac !== 'string' || !/^[0-9a-f]{64}$/.test(mac))
      return refuse('unauthenticated', 'no snapshot header and MAC');
    const parsed = decodePushHeader(text);
    if (!parsed.ok) return refuse('malformed', parsed.problem);
    const h = parsed.value;
    // While keys rotate, the sender may use either generation: the one whose MAC matches is its.
    const given = Buffer.from(mac, 'hex');
    const secret = this.o.keys.forPeer(h.from).find((k) => constantTimeEqual(headerMac(k, text), given));
    if (!secret) return refuse('unauthenticated', `the header is not authenticated as ${h.from}'s`);
    // Authenticated: what is left to catch is a robot of the site that may not push this now.
    if (h.to !== this.o.self) return refuse('misdirected', `addressed to ${h.to}, not ${this.o.self}`, h);
    const now = this.view?.leadership() ?? null;
    if (!now) return refuse('not-leader', 'this robot does not follow the election yet', h);
    if (h.term < now.term)
      return refuse('stale-term', `term ${h.term} is over; this robot is at term ${now.term}`, h);
    if (h.term > now.term || h.from !== now.leader || h.from === this.o.self)
      return refuse(
        'not-leader',
        `${h.from} is not the leader of term ${now.term} (${now.leader ?? 'none known'})`,
        h,
      );
    if (h.record.from !== h.from)
      return refuse('bad-record', `the snapshot was taken by ${h.record.from}, not by its sender`, h);
    if (h.record.epoch > h.term)
      return refuse('bad-record', `epoch ${h.record.epoch} is later than the sender's term ${h.term}`, h);
    if (h.size !== h.record.size + TAG_BYTES)
      return refuse(
        'bad-record',
        `the body of ${h.size} bytes does not fit a snapshot of ${h.record.size}`,
        h,
      );
    if (h.record.size > this.maxBytes)
      return refuse('too-large', `${h.record.size} bytes is over this robot's limit of ${this.maxBytes}`, h);
    const length = req.headers['content-length'];
    if (length !== undefined && Number(length) !== h.size)
      return refuse('malformed', `content-length ${length} is not the ${h.size} bytes announced`, h);
    if (this.uploading) return refuse('busy', 'another snapshot is being received; send it again later', h);
    this.uploading = true;
    this.receive(req, res, h, text, secret)
      .catch((e: unknown) => refuse('failed', `could not receive it: ${(e as Error).message}`, h))
      .finally(() => {
        this.uploading = false;
      });
  }

  private async receive(
    req: IncomingMessage,
    res: ServerResponse,
    h: PushHeader,
    headerText: string,
    secret: Uint8Array,
  ): Promise<void> {
    const store = this.o.store;
    const tmp = store.uploadPath(randomBytes(8).toString('hex'));
    // The child writes the plaintext into `tmp` and reports the tag's verdict and the content's
    // SHA-256 once the body has ended; this process checks the body's size as it arrives.
    const opening = this.cipher.open({
      key: pairKeys(secret).seal,
      nonce: Buffer.from(h.nonce, 'hex'),
      aad: Buffer.from(headerText, 'latin1'),
      sealedLength: h.record.size,
      into: tmp,
    });
    let received = 0;
    let failure: { result: PushResult; detail: string } | null = null;
    const measure = new Transform({
      transform(chunk: Buffer, _enc, done) {
        if (received + chunk.length > h.size) {
          failure = { result: 'too-large', detail: `the body runs past the ${h.size} bytes announced` };
          done(new Error(failure.detail));
          return;
        }
        received += chunk.length;
        done(null, chunk);
      },
      flush(done) {
        if (received !== h.size)
          failure = { result: 'truncated', detail: `the body ended after ${received} of ${h.size} bytes` };
        done();
      },
    });
    const refuse = (result: PushResult, detail: string) => {
      rmSync(tmp, { force: true });
      const e = { result, detail, from: h.from, term: h.term, record: h.record };
      this.refuse(req, res, e, result === 'too-large');
    };
    if (req.headers.expect?.toLowerCase() === '100-continue') res.writeContinue();
    let broke: Error | null = null;
    try {
      await pipeline(req, measure, opening.input);
    } catch (e) {
      broke = e as Error;
      // Stopped before the file is removed, so that nothing writes to it afterwards.
      opening.abort();
    }
    const out: OpenOutcome = await opening.outcome;
    if (failure) {
      const f = failure as { result: PushResult; detail: string };
      return refuse(f.result, f.detail);
    }
    if (!out.ok && !out.stopped) return refuse('failed', `could not open it: ${out.problem}`);
    if (broke) return refuse('truncated', `the upload broke off: ${broke.message}`);
    if (!out.ok) return refuse('failed', `could not open it: ${out.problem}`);
    if (!out.verdict.complete) return refuse('failed', 'the snapshot cipher did not get the whole body');
    if (!out.verdict.verified)
      return refuse('corrupt', 'the body is not sealed for this header (authentication failed)');
    if (out.verdict.sha256 !== h.record.sha256)
      return refuse('corrupt', 'the content does not match its record');
    // The election may have moved on while the body arrived.
    const now = this.view?.leadership() ?? null;
    if (now?.term !== h.term || now.leader !== h.from)
      return refuse('stale-term', `${h.from} no longer leads term ${h.term} here`);
    try {
      store.adopt(tmp, h.record, this.view?.committedSnapshots() ?? []);
    } catch (e) {
      return refuse('failed', `could not keep it: ${(e as Error).message}`);
    }
    this.note({
      result: 'kept',
      detail: `kept ${h.record.name}`,
      from: h.from,
      term: h.term,
      record: h.record,
    });
    res.writeHead(204, { connection: 'close' }).end();
  }
}

// ---- the sender ---------------------------------------------------------------------------------

export interface PushOutcome {
  readonly to: NodeId;
  readonly kept: boolean;
  /** The receiver's HTTP status, or null if it did not answer. */
  readonly status: number | null;
  readonly reason: string;
}

export interface PushOptions {
  readonly self: NodeId;
  /** This leader's term, as the election has it now. */
  readonly term: number;
  readonly to: LeaderEndpoint;
  readonly record: SnapshotRecord;
  /** The snapshot's bytes; they must be what the record says. */
  readonly content: Uint8Array;
  readonly keys: SnapshotKeys;
  readonly port?: number;
  /** Idle time after which the push gives up (default 15 s). */
  readonly timeoutMs?: number;
  /** What seals the body (default: the child process beside the agent, snapshot-cipher.ts). */
  readonly cipher?: SnapshotCipher;
}

/** A push ready to send: its HTTP header fields, and its body sealed a chunk at a time. */
export interface PreparedPush {
  readonly header: PushHeader;
  readonly fields: Readonly<Record<string, string>>;
  /** The sealed body, as it is sealed: the stream errors if the sealing fails. */
  body(content: Uint8Array): Readable;
}

/**
 * preparePush builds and authenticates the header of a push of `record` from `self` to `to`, or
 * returns null if the two robots share no snapshot secret.
 */
export function preparePush(o: {
  readonly self: NodeId;
  readonly term: number;
  readonly to: NodeId;
  readonly record: SnapshotRecord;
  readonly keys: SnapshotKeys;
  readonly cipher?: SnapshotCipher;
}): PreparedPush | null {
  const secret = o.keys.forPeer(o.to)[0];
  if (!secret) return null;
  const nonce = randomBytes(NONCE_BYTES);
  const header: PushHeader = {
    v: 2,
    from: o.self,
    to: o.to,
    term: o.term,
    size: o.record.size + TAG_BYTES,
    nonce: nonce.toString('hex'),
    record: o.record,
  };
  const text = encodePushHeader(header);
  return {
    header,
    fields: { [HEADER]: text, [HEADER_MAC]: Buffer.from(headerMac(secret, text)).toString('hex') },
    body: (content) =>
      (o.cipher ?? SNAPSHOT_CIPHER).seal(
        { key: pairKeys(secret).seal, nonce, aad: Buffer.from(text, 'latin1') },
        content,
      ),
  };
}

/**
 * pushSnapshot sends one snapshot to one robot: the header first, the body (sealed as it goes, a
 * chunk at a time) only once the receiver accepts the header.
 */
export function pushSnapshot(o: PushOptions): Promise<PushOutcome> {
  const done = (kept: boolean, status: number | null, reason: string): PushOutcome => ({
    to: o.to.id,
    kept,
    status,
    reason,
  });
  if (o.content.length !== o.record.size)
    return Promise.resolve(
      done(false, null, `the content has ${o.content.length} bytes, the record ${o.record.size}`),
    );
  const push = preparePush({
    self: o.self,
    term: o.term,
    to: o.to.id,
    record: o.record,
    keys: o.keys,
    cipher: o.cipher,
  });
  if (!push) return Promise.resolve(done(false, null, `no snapshot key for ${o.to.id}`));
  return new Promise((resolvePush) => {
    let settled = false;
    const settle = (r: PushOutcome) => {
      if (!settled) resolvePush(r);
      settled = true;
    };
    const req = request({
      host: o.to.host,
      port: o.port ?? SNAPSHOT_PORT,
      method: 'PUT',
      path: '/snapshots',
      agent: false,
      timeout: o.timeoutMs ?? 15_000,
      headers: {
        'content-length': push.header.size,
        expect: '100-continue',
        connection: 'close',
        ...push.fields,
      },
    });
    req.on('continue', () => {
      // A sealing that fails destroys the request: its 'error' settles the push.
      pipeline(push.body(o.content), req).catch(() => {});
    });
    req.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        if (text.length < 1024) text += c;
      });
      res.on('end', () =>
        settle(done(res.statusCode === 204, res.statusCode ?? null, text.trim() || `HTTP ${res.statusCode}`)),
      );
      res.on('error', (e) => settle(done(false, res.statusCode ?? null, e.message)));
    });
    req.on('timeout', () => req.destroy(new Error(`no progress for ${o.timeoutMs ?? 15_000} ms`)));
    req.on('error', (e) => settle(done(false, null, e.message)));
    req.flushHeaders();
  });
}

/**
 * logSnapshotPush: the receiver's log line for a push. A refusal of an authenticated robot is a
 * warning that names the reason; a request without a valid header is only counted (and logged at
 * debug), so that a host flooding the port cannot flood the journal too.
 */
export function logSnapshotPush(
  log: {
    info(o: object, msg: string): void;
    warn(o: object, msg: string): void;
    debug(o: object, msg: string): void;
  },
  self: NodeId,
): (e: PushEvent) => void {
  return (e) => {
    const fields = { result: e.result, peer: e.from, pushTerm: e.term, snapshot: e.record?.name };
    if (e.result === 'kept')
      log.info(fields, `${self} kept snapshot ${e.record?.name} from ${e.from} (term ${e.term})`);
    else if (e.from === undefined)
      log.debug(fields, `${self} refused a snapshot push: ${e.result}: ${e.detail}`);
    else
      log.warn(
        fields,
        `${self} refused a snapshot push from ${e.from} (term ${e.term}): ${e.result}: ${e.detail}`,
      );
  };
}
