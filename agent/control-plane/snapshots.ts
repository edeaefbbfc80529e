/**
 * Control-plane snapshots, so a leader change loses nothing the last snapshot holds (docs/k3s.md
 * "Snapshots"; the RPO is the snapshot interval). The leader snapshots etcd on a schedule, seals
 * each snapshot for each other voter and pushes it there; a new leader restores the newest snapshot
 * it holds before it serves.
 *
 * Sealing is AES-256-GCM under the snapshot key of the (leader, receiver) voter pair
 * (agent/site-key.ts Keyring.snapshotKeysFor: derived from their pair key, which no worker holds),
 * with the snapshot's record as associated data: the receiver learns that the voter the record
 * names as `from` sent it and that it is intact, and a snapshot (which holds the cluster's
 * Secrets) never crosses the Wi-Fi in clear.
 */
import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import { join } from 'node:path';
import { EdgeError } from '../errors.ts';
import type { SnapshotRecord } from './runtime.ts';

export type { SnapshotRecord };

export const SNAPSHOT_PORT = 7948;
const MAGIC = Buffer.from('EDGESNAP1');
const MAX_SNAPSHOT_BYTES = 512 * 1024 * 1024;

export function snapshotKey(siteKey: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', siteKey, Buffer.alloc(0), 'edgectl control-plane snapshot v1', 32));
}

/** seal: MAGIC | u32 record length | record JSON | 12-byte nonce | 16-byte tag | ciphertext. */
export function sealSnapshot(key: Buffer, record: SnapshotRecord, plain: Buffer): Buffer {
  const meta = Buffer.from(JSON.stringify(record));
  const nonce = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', key, nonce);
  c.setAAD(meta);
  const body = Buffer.concat([c.update(plain), c.final()]);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(meta.length);
  return Buffer.concat([MAGIC, len, meta, nonce, c.getAuthTag(), body]);
}

/**
 * openSnapshotFrom opens a sealed snapshot with the keys of the voter its record names as `from`
 * (each generation's key in turn, while keys rotate); it throws when none opens it.
 */
export function openSnapshotFrom(
  keysFor: (from: string) => readonly Buffer[],
  sealed: Buffer,
): { record: SnapshotRecord; plain: Buffer } {
  let from = '';
  if (sealed.length >= MAGIC.length + 4 && sealed.subarray(0, MAGIC.length).equals(MAGIC)) {
    const len = sealed.readUInt32BE(MAGIC.length);
    try {
      const claimed = (
        JSON.parse(sealed.subarray(MAGIC.length + 4, MAGIC.length + 4 + len).toString('utf8')) as {
          from?: unknown;
        }
      ).from;
      if (typeof claimed === 'string') from = claimed;
    } catch {
      // openSnapshot says what is wrong with it
    }
  }
  const keys = keysFor(from);
  if (keys.length === 0)
    throw new EdgeError(
      'SNAPSHOT_REJECTED',
      `snapshot rejected: no snapshot key shared with ${JSON.stringify(from)}`,
      {
        hint: 'only voters exchange snapshots: the sender is no voter of this site, or its keys were retired',
      },
    );
  let last: unknown;
  for (const key of keys) {
    try {
      return openSnapshot(key, sealed);
    } catch (e) {
      last = e;
    }
  }
  throw last;
}

/** openSnapshot verifies and decrypts a sealed snapshot; it throws on any tampering or wrong key. */
export function openSnapshot(key: Buffer, sealed: Buffer): { record: SnapshotRecord; plain: Buffer } {
  const bad = (why: string) =>
    new EdgeError('SNAPSHOT_REJECTED', `snapshot rejected: ${why}`, {
      hint: 'it was not sealed with this site key, or it was changed on the way; the leader sends the next one',
    });
  if (sealed.length < MAGIC.length + 4 + 28 || !sealed.subarray(0, MAGIC.length).equals(MAGIC))
    throw bad('not an edgectl snapshot');
  const len = sealed.readUInt32BE(MAGIC.length);
  const metaEnd = MAGIC.length + 4 + len;
  if (len > 4096 || metaEnd + 28 > sealed.length) throw bad('truncated');
  const meta = sealed.subarray(MAGIC.length + 4, metaEnd);
  const nonce = sealed.subarray(metaEnd, metaEnd + 12);
  const tag = sealed.subarray(metaEnd + 12, metaEnd + 28);
  const d = createDecipheriv('aes-256-gcm', key, nonce);
  d.setAAD(meta);
  d.setAuthTag(tag);
  let plain: Buffer;
  try {
    plain = Buffer.concat([d.update(sealed.subarray(metaEnd + 28)), d.final()]);
  } catch {
    throw bad('authentication failed');
  }
  const record = JSON.parse(meta.toString('utf8')) as SnapshotRecord;
  if (createHash('sha256').update(plain).digest('hex') !== record.sha256 || plain.length !== record.size)
    throw bad('content does not match its record');
  return { record, plain };
}

/** newestRecord orders snapshots by epoch, then time: what a new leader restores. */
export function newestRecord(records: readonly SnapshotRecord[]): SnapshotRecord | null {
  return [...records].sort((a, b) => b.epoch - a.epoch || b.createdAt.localeCompare(a.createdAt))[0] ?? null;
}

/** SnapshotStore keeps verified snapshots (plain etcd files, 0600) with their records, newest few. */
export class SnapshotStore {
  readonly dir: string;
  private readonly keep: number;
  private readonly suffix: string;

  /** `suffix` of the snapshot files: `.db` in the lab; none for k3s, which restores `<dir>/<name>`. */
  constructor(dir: string, keep = 3, suffix = '.db') {
    this.dir = dir;
    this.keep = keep;
    this.suffix = suffix;
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }

  records(): SnapshotRecord[] {
    return readdirSync(this.dir)
      .filter((f) => f.endsWith('.json'))
      .flatMap((f) => {
        try {
          return [JSON.parse(readFileSync(join(this.dir, f), 'utf8')) as SnapshotRecord];
        } catch {
          return []; // a torn write after a power loss: that snapshot does not count
        }
      });
  }

  newest(): SnapshotRecord | null {
    return newestRecord(this.records());
  }

  path(r: SnapshotRecord): string {
    return join(this.dir, `${r.name}${this.suffix}`);
  }

  /** save writes the file, then its record (the record is the commit point), then prunes. */
  save(r: SnapshotRecord, plain: Buffer): void {
    writeFileSync(`${this.path(r)}.tmp`, plain, { mode: 0o600 });
    renameSync(`${this.path(r)}.tmp`, this.path(r));
    writeFileSync(join(this.dir, `${r.name}.json.tmp`), JSON.stringify(r), { mode: 0o600 });
    renameSync(join(this.dir, `${r.name}.json.tmp`), join(this.dir, `${r.name}.json`));
    const all = this.records().sort((a, b) => b.epoch - a.epoch || b.createdAt.localeCompare(a.createdAt));
    for (const old of all.slice(this.keep)) {
      rmSync(this.path(old), { force: true });
      rmSync(join(this.dir, `${old.name}.json`), { force: true });
    }
  }
}

/** startSnapshotReceiver accepts sealed snapshots from the site's leader on `address:port`. */
export function startSnapshotReceiver(o: {
  address: string;
  port?: number;
  /** The snapshot keys shared with a voter (Keyring.snapshotKeysFor); empty for anyone else. */
  keysFor: (from: string) => readonly Buffer[];
  store: SnapshotStore;
  onSaved?: (r: SnapshotRecord) => void;
  onRejected?: (why: string) => void;
}): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.method !== 'PUT' || req.url !== '/snapshots') {
      res.writeHead(404).end();
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_SNAPSHOT_BYTES) {
        o.onRejected?.('too large');
        res.writeHead(413).end();
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      try {
        const { record, plain } = openSnapshotFrom(o.keysFor, Buffer.concat(chunks));
        o.store.save(record, plain);
        o.onSaved?.(record);
        res.writeHead(204).end();
      } catch (e) {
        o.onRejected?.((e as Error).message);
        res.writeHead(401).end();
      }
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port ?? SNAPSHOT_PORT, o.address, () => resolve(server));
  });
}

/** pushSnapshot sends a sealed snapshot to one robot; it resolves whether the robot kept it. */
export function pushSnapshot(
  host: string,
  sealed: Buffer,
  port = SNAPSHOT_PORT,
  timeoutMs = 10_000,
): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request(
      {
        host,
        port,
        method: 'PUT',
        path: '/snapshots',
        timeout: timeoutMs,
        headers: { 'content-length': sealed.length },
      },
      (res) => {
        res.resume();
        resolve(res.statusCode === 204);
      },
    );
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
    req.end(sealed);
  });
}
