/**
 * Site spec versions in the replicated site log (docs/protocol.md §4, docs/site.md "The site log").
 * Pure: no I/O and no clock; the agent passes the log, the commit index and the time.
 *
 * A site spec (canonical JSON, agent/site/spec-source.ts) does not fit one datagram, so one version
 * is a run of `site` entries the leader appends in one synchronous step, hence at consecutive
 * indices of one term:
 *
 *   part 1/n … part n/n   `edgectl-site part <version> <k>/<n> <sha256>` + newline + a slice of the text
 *   manifest              `edgectl-site version <version> <n> <sha256> <bytes> <at>`
 *
 * A version exists only through its manifest, and only once the manifest is committed: the n
 * entries right before it must be its parts, in order, and their text must hash to the manifest's
 * digest. A run cut short by a leader change (parts without their manifest) is therefore never a
 * version, whatever of it is committed later.
 *
 * The site's membership (agent/site/members.ts) is a second document carried the same way, under
 * `edgectl-members` instead of `edgectl-site`, with versions of its own.
 */
import type { LogEntry } from '../../statecharts/messages.ts';
import { entryBytes } from '../../statecharts/site-log.ts';
import { sha256Digest } from '../sha256.ts';

/**
 * The documents the site log carries this way: the site spec (`edgectl-site`), and the site's
 * membership (`edgectl-members`: the robots that do not vote, docs/protocol.md "Membership").
 * Each has its own versions; a run of one never counts as the other.
 */
export type SiteDocument = 'site' | 'members';

const PREFIX: Record<SiteDocument, string> = { site: 'edgectl-site', members: 'edgectl-members' };
const PATTERNS: Record<SiteDocument, { part: RegExp; manifest: RegExp }> = {
  site: patterns('edgectl-site'),
  members: patterns('edgectl-members'),
};

function patterns(prefix: string): { part: RegExp; manifest: RegExp } {
  return {
    part: new RegExp(`^${prefix} part (\\d+) (\\d+)\\/(\\d+) ([0-9a-f]{64})\\n`),
    manifest: new RegExp(`^${prefix} version (\\d+) (\\d+) ([0-9a-f]{64}) (\\d+) (\\S+)$`),
  };
}

/** One committed version of the site spec. */
export interface SiteSpecVersion {
  readonly version: number;
  /** The term and index of its manifest entry. */
  readonly term: number;
  readonly index: number;
  /** sha256 of `text`, hex. */
  readonly digest: string;
  /** When the leader proposed it (its wall clock, RFC 3339). */
  readonly at: string;
  /** The spec as canonical JSON. */
  readonly text: string;
}

/** specDigest is the hex sha256 of a spec's canonical JSON. */
export function specDigest(text: string): string {
  return Buffer.from(sha256Digest(Buffer.from(text, 'utf8'))).toString('hex');
}

/**
 * specEntries cuts a spec into the data of its `site` entries, parts then manifest, each at most
 * `maxEntryBytes` bytes. `at` is the proposer's wall-clock time.
 */
export function specEntries(
  version: number,
  text: string,
  at: string,
  maxEntryBytes: number,
  doc: SiteDocument = 'site',
): string[] {
  const digest = specDigest(text);
  const header = (k: number, n: number) => `${PREFIX[doc]} part ${version} ${k}/${n} ${digest}\n`;
  // The widest header this spec can need: its part numbers are at most as long as its byte count.
  const bytes = Buffer.byteLength(text, 'utf8');
  const room = maxEntryBytes - Buffer.byteLength(header(bytes, bytes), 'utf8');
  if (room < 16)
    throw new RangeError(`maxEntryBytes ${maxEntryBytes} leaves no room for a site spec part's data`);
  const slices: string[] = [];
  let start = 0;
  while (start < text.length) {
    let end = start;
    let used = 0;
    while (end < text.length) {
      const cp = text.codePointAt(end)!;
      const w = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
      if (used + w > room) break;
      used += w;
      end += cp >= 0x10000 ? 2 : 1;
    }
    slices.push(text.slice(start, end));
    start = end;
  }
  const n = slices.length;
  const out = slices.map((s, i) => header(i + 1, n) + s);
  out.push(`${PREFIX[doc]} version ${version} ${n} ${digest} ${bytes} ${at}`);
  for (const d of out) {
    if (entryBytes({ term: 0, kind: 'site', data: d }) > maxEntryBytes)
      throw new RangeError(`a site spec entry of version ${version} exceeds maxEntryBytes ${maxEntryBytes}`);
  }
  return out;
}

/** versionAt reads the version whose manifest is at `index` (1-based), or null if there is none. */
function versionAt(log: readonly LogEntry[], index: number, doc: SiteDocument): SiteSpecVersion | null {
  const m = log[index - 1];
  if (m?.kind !== 'site') return null;
  const { part, manifest } = PATTERNS[doc];
  const h = manifest.exec(m.data);
  if (!h) return null;
  const version = Number(h[1]);
  const n = Number(h[2]);
  const digest = h[3]!;
  if (n < 1 || n >= index) return null;
  let text = '';
  for (let k = 1; k <= n; k++) {
    const e = log[index - 1 - n + k - 1]!;
    const p = e.kind === 'site' && e.term === m.term ? part.exec(e.data) : null;
    if (!p || Number(p[1]) !== version || Number(p[2]) !== k || Number(p[3]) !== n || p[4] !== digest)
      return null;
    text += e.data.slice(p[0].length);
  }
  if (Buffer.byteLength(text, 'utf8') !== Number(h[4]) || specDigest(text) !== digest) return null;
  return { version, term: m.term, index, digest, at: h[5]!, text };
}

/** committedSpecs lists every version in the committed prefix of the log, oldest first. */
export function committedSpecs(
  log: readonly LogEntry[],
  commitIndex: number,
  doc: SiteDocument = 'site',
): SiteSpecVersion[] {
  const out: SiteSpecVersion[] = [];
  const end = Math.min(commitIndex, log.length);
  for (let i = 1; i <= end; i++) {
    if (log[i - 1]!.kind !== 'site' || !log[i - 1]!.data.startsWith(`${PREFIX[doc]} version `)) continue;
    const v = versionAt(log, i, doc);
    if (v) out.push(v);
  }
  return out;
}

/**
 * newestCommittedSpec is the spec a leader applies: the last version in the committed prefix, or
 * null when no version was ever committed (the leader then applies the spec installed with it).
 */
export function newestCommittedSpec(
  log: readonly LogEntry[],
  commitIndex: number,
  doc: SiteDocument = 'site',
): SiteSpecVersion | null {
  const end = Math.min(commitIndex, log.length);
  for (let i = end; i >= 1; i--) {
    if (log[i - 1]!.kind !== 'site' || !log[i - 1]!.data.startsWith(`${PREFIX[doc]} version `)) continue;
    const v = versionAt(log, i, doc);
    if (v) return v;
  }
  return null;
}

/** highestSpecVersion is the highest version number anywhere in the log, committed or not. */
export function highestSpecVersion(log: readonly LogEntry[], doc: SiteDocument = 'site'): number {
  const { part, manifest } = PATTERNS[doc];
  let max = 0;
  for (const e of log) {
    if (e.kind !== 'site') continue;
    const h = manifest.exec(e.data) ?? part.exec(e.data);
    if (h) max = Math.max(max, Number(h[1]));
  }
  return max;
}

/** SpecChange is one leaf that differs between two specs: `path` in dotted form, JSON values. */
export interface SpecChange {
  readonly path: string;
  readonly before: string | undefined;
  readonly after: string | undefined;
}

/**
 * diffSpecs lists the leaves (and whole arrays) that differ between two specs given as canonical
 * JSON, in the order of `after`'s keys, then keys only `before` has. `before` null is the empty spec.
 */
export function diffSpecs(before: string | null, after: string): SpecChange[] {
  const out: SpecChange[] = [];
  const walk = (path: string, a: unknown, b: unknown): void => {
    if (isObject(a) && isObject(b)) {
      for (const k of Object.keys(b)) walk(join(path, k), a[k], b[k]);
      for (const k of Object.keys(a)) if (!(k in b)) walk(join(path, k), a[k], undefined);
      return;
    }
    const sa = a === undefined ? undefined : JSON.stringify(a);
    const sb = b === undefined ? undefined : JSON.stringify(b);
    if (sa !== sb) out.push({ path: path || '(spec)', before: sa, after: sb });
  };
  walk('', before === null ? undefined : JSON.parse(before), JSON.parse(after));
  return out;
}

/** formatChange renders one change as `path: before → after` (`(none)` for a missing side). */
export function formatChange(c: SpecChange): string {
  return `${c.path}: ${c.before ?? '(none)'} → ${c.after ?? '(none)'}`;
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const join = (path: string, key: string): string => (path ? `${path}.${key}` : key);
