/**
 * SSH host keys: OpenSSH fingerprints, the known_hosts format (plain and hashed host names), and
 * the one decision the SSH runner makes before it sends a single byte of credentials: trust this
 * host key, record it (trust on first use, only when the operator said --accept-new-host-keys),
 * or refuse the robot with an error that names both fingerprints and the fix.
 *
 * ssh2 has no known_hosts support (docs in /work/shared/research/libraries.md §6): the key ssh2
 * hands to `hostVerifier` is the wire-format public key, which is exactly the base64 field of a
 * known_hosts line, so both are compared as bytes.
 */
import { createHash, createHmac } from 'node:crypto';
import { appendFile, mkdir, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { EdgeError } from '../../agent/errors.ts';

/** fingerprint is OpenSSH's SHA256 fingerprint of a wire-format public key (ssh-keygen -lf). */
export function fingerprint(key: Buffer): string {
  return `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;
}

/** keyType reads the algorithm name a wire-format public key starts with (ssh-ed25519, ...). */
export function keyType(key: Buffer): string {
  if (key.length < 4) return 'unknown';
  const len = key.readUInt32BE(0);
  return len > 0 && len < 64 && key.length >= 4 + len
    ? key.subarray(4, 4 + len).toString('ascii')
    : 'unknown';
}

export interface KnownHostEntry {
  /** 1-based line number in the file, for error messages (ssh-keygen -R works by host). */
  readonly line: number;
  /** The host field: comma-separated patterns, or one hashed `|1|salt|hmac`. */
  readonly hosts: string;
  readonly type: string;
  readonly key: Buffer;
  readonly marker?: '@revoked' | '@cert-authority';
}

/** parseKnownHosts reads a known_hosts file; comment, blank and malformed lines are skipped. */
export function parseKnownHosts(text: string): KnownHostEntry[] {
  const out: KnownHostEntry[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const fields = line.split(/\s+/);
    let marker: KnownHostEntry['marker'];
    if (fields[0] === '@revoked' || fields[0] === '@cert-authority') marker = fields.shift() as typeof marker;
    const [hosts, type, b64] = fields;
    if (!hosts || !type || !b64 || !/^[A-Za-z0-9+/]+=*$/.test(b64)) return;
    out.push({ line: i + 1, hosts, type, key: Buffer.from(b64, 'base64'), ...(marker ? { marker } : {}) });
  });
  return out;
}

/** hostName is how OpenSSH names a host in known_hosts: `host`, or `[host]:port` off port 22. */
export function hostName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

function globMatch(pattern: string, name: string): boolean {
  const re = new RegExp(
    `^${pattern
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replaceAll('*', '.*')
      .replaceAll('?', '.')}$`,
  );
  return re.test(name);
}

/** matchesHost says whether a known_hosts entry names this host and port (hashed names too). */
export function matchesHost(entry: KnownHostEntry, host: string, port: number): boolean {
  const name = hostName(host, port);
  if (entry.hosts.startsWith('|1|')) {
    const [, , salt, hash] = entry.hosts.split('|');
    if (!salt || !hash) return false;
    const h = createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest('base64');
    return h === hash;
  }
  let matched = false;
  for (const p of entry.hosts.split(',')) {
    if (p.startsWith('!')) {
      if (globMatch(p.slice(1), name)) return false;
    } else if (globMatch(p, name)) matched = true;
  }
  return matched;
}

/** knownHostsLine is the line trust-on-first-use appends. */
export function knownHostsLine(host: string, port: number, key: Buffer): string {
  return `${hostName(host, port)} ${keyType(key)} ${key.toString('base64')}`;
}

/** KnownHostsStore is the site's known_hosts: the file, or an in-memory twin in tests. */
export interface KnownHostsStore {
  /** Where it lives, for messages and hints. */
  readonly path: string;
  entries(): Promise<KnownHostEntry[]>;
  add(host: string, port: number, key: Buffer): Promise<void>;
}

/** KnownHostsFile is an OpenSSH known_hosts file (created 0600 in a 0700 directory on first add). */
export class KnownHostsFile implements KnownHostsStore {
  readonly path: string;
  constructor(path: string) {
    this.path = path;
  }
  async entries(): Promise<KnownHostEntry[]> {
    try {
      return parseKnownHosts(await readFile(this.path, 'utf8'));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
  }
  async add(host: string, port: number, key: Buffer): Promise<void> {
    await mkdir(dirname(this.path), { recursive: true, mode: 0o700 });
    // O_APPEND: robots connecting in parallel each add one whole line.
    await appendFile(this.path, `${knownHostsLine(host, port, key)}\n`, { mode: 0o600 });
  }
}

export class InMemoryKnownHosts implements KnownHostsStore {
  readonly path = '(in memory)';
  text: string;
  constructor(text = '') {
    this.text = text;
  }
  async entries(): Promise<KnownHostEntry[]> {
    return parseKnownHosts(this.text);
  }
  async add(host: string, port: number, key: Buffer): Promise<void> {
    this.text += `${knownHostsLine(host, port, key)}\n`;
  }
}

export interface HostKeyQuestion {
  /** The robot's name, for messages. */
  readonly robot: string;
  readonly host: string;
  readonly port: number;
  /** The wire-format key the server offered. */
  readonly offered: Buffer;
  /** A fingerprint pinned in the inventory: when set, it alone decides. */
  readonly pinned?: string | undefined;
  /** Where the pin lives, for the fix (like robots[2].ssh.hostKey in site.yaml). */
  readonly pinnedAt?: string | undefined;
  readonly known: readonly KnownHostEntry[];
  readonly knownHostsPath: string;
  readonly acceptNew: boolean;
}

/**
 * HostKeyError: a host key was refused. It carries what the way out needs (which known_hosts entry,
 * or which pin), so a report can give the commands that recover rather than "run it again".
 */
export class HostKeyError extends EdgeError {
  readonly robot: string;
  /** The known_hosts name of the robot (`host` or `[host]:port`). */
  readonly hostName: string;
  readonly knownHostsPath: string;
  /** Where the inventory pins the key, when the refused key was checked against a pin. */
  readonly pinnedAt: string | undefined;
  constructor(
    code: 'HOST_KEY_MISMATCH' | 'HOST_KEY_REVOKED' | 'HOST_KEY_UNKNOWN',
    message: string,
    q: HostKeyQuestion,
    opts: { hint: string; pinned?: boolean },
  ) {
    super(code, message, { hint: opts.hint });
    this.robot = q.robot;
    this.hostName = hostName(q.host, q.port);
    this.knownHostsPath = q.knownHostsPath;
    this.pinnedAt = opts.pinned ? (q.pinnedAt ?? 'the pinned key') : undefined;
  }
}

export type HostKeyDecision =
  { readonly accept: true; readonly record: boolean } | { readonly accept: false; readonly error: EdgeError };

/** decideHostKey is the host key policy (docs/bootstrap.md, "Host keys"). Pure. */
export function decideHostKey(q: HostKeyQuestion): HostKeyDecision {
  const got = fingerprint(q.offered);
  const type = keyType(q.offered);
  const where = `${q.robot} (${hostName(q.host, q.port)})`;
  if (q.pinned !== undefined) {
    if (got === q.pinned) return { accept: true, record: false };
    return {
      accept: false,
      error: new HostKeyError(
        'HOST_KEY_MISMATCH',
        `host key of ${where} does not match the pinned key: expected ${q.pinned} (${q.pinnedAt ?? 'pinned'}), got ${got} (${type})`,
        q,
        {
          hint: `if ${q.robot} was reinstalled, check the new key on its console (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub) and update ${q.pinnedAt ?? 'the pinned key'}; otherwise something may be intercepting the connection: do not continue`,
          pinned: true,
        },
      ),
    };
  }
  const mine = q.known.filter((e) => matchesHost(e, q.host, q.port));
  if (mine.some((e) => e.marker === '@revoked' && e.key.equals(q.offered)))
    return {
      accept: false,
      error: new HostKeyError(
        'HOST_KEY_REVOKED',
        `host key ${got} of ${where} is revoked in ${q.knownHostsPath}`,
        q,
        {
          hint: `give ${q.robot} a new host key, then remove its lines from ${q.knownHostsPath}`,
        },
      ),
    };
  const plain = mine.filter((e) => e.marker === undefined);
  if (plain.some((e) => e.key.equals(q.offered))) return { accept: true, record: false };
  if (plain.length > 0) {
    const expected = plain.map((e) => `${fingerprint(e.key)} (${e.type}, line ${e.line})`).join(', ');
    return {
      accept: false,
      error: new HostKeyError(
        'HOST_KEY_MISMATCH',
        `host key of ${where} changed: ${q.knownHostsPath} has ${expected}, the robot offered ${got} (${type})`,
        q,
        {
          hint: `if ${q.robot} was reinstalled, check the new key on its console (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub), then run ssh-keygen -R '${hostName(q.host, q.port)}' -f ${q.knownHostsPath} and bootstrap again with --accept-new-host-keys, or pin it in the inventory (ssh.hostKey); otherwise something may be intercepting the connection: do not continue`,
        },
      ),
    };
  }
  if (q.acceptNew) return { accept: true, record: true };
  return {
    accept: false,
    error: new HostKeyError(
      'HOST_KEY_UNKNOWN',
      `${where} offered host key ${got} (${type}), which this site has never seen`,
      q,
      {
        hint: `check it on the robot's console (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub) and pin it as ssh.hostKey in the inventory, or run again with --accept-new-host-keys to record it in ${q.knownHostsPath}`,
      },
    ),
  };
}

/** hostKeyAlgorithms: the algorithms to ask for when known_hosts already has keys of these types. */
export function hostKeyAlgorithms(types: readonly string[]): string[] {
  const out: string[] = [];
  for (const t of types) {
    const algs = t === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'] : [t];
    for (const a of algs) if (!out.includes(a)) out.push(a);
  }
  return out;
}
