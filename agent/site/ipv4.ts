/**
 * IPv4 arithmetic for validating Whereabouts ranges. Addresses are unsigned 32-bit integers held in
 * plain numbers (never bitwise-and'ed without `>>> 0`, which would turn them negative), so every
 * comparison is an ordinary `<`. Pure: no I/O.
 *
 * The parser is strict on purpose: Go's ParseIPSloppy (which Whereabouts uses) accepts octets with
 * leading zeros, and some tools read those as octal. We refuse them rather than guess.
 */

export interface Cidr {
  /** The network address (host bits cleared). */
  readonly network: number;
  readonly prefix: number;
}

const OCTET = /^(0|[1-9][0-9]{0,2})$/;

/** parseIpv4 returns the address as an unsigned integer, or null when `text` is not dotted quad. */
export function parseIpv4(text: string): number | null {
  const parts = text.split('.');
  if (parts.length !== 4) return null;
  let value = 0;
  for (const p of parts) {
    if (!OCTET.test(p)) return null;
    const n = Number(p);
    if (n > 255) return null;
    value = value * 256 + n;
  }
  return value;
}

export function formatIpv4(value: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256).join('.');
}

/** blockSize is the number of addresses in a prefix: 2^(32-prefix). */
export function blockSize(prefix: number): number {
  return 2 ** (32 - prefix);
}

/** networkOf clears the host bits of `address` for `prefix`. */
export function networkOf(address: number, prefix: number): number {
  const size = blockSize(prefix);
  return Math.floor(address / size) * size;
}

export type CidrParse =
  | { ok: true; cidr: Cidr }
  | { ok: false; reason: 'syntax' | 'prefix' | 'host-bits'; network?: number; prefix?: number };

/**
 * parseCidr reads `a.b.c.d/len`. Host bits set (192.168.2.225/28) is reported as 'host-bits' with
 * the network it would mean, so the caller can name the fix: Whereabouts would silently normalize it,
 * and the person who wrote .225 probably meant something else.
 */
export function parseCidr(text: string): CidrParse {
  const slash = text.indexOf('/');
  if (slash < 0) return { ok: false, reason: 'syntax' };
  const address = parseIpv4(text.slice(0, slash));
  const prefixText = text.slice(slash + 1);
  if (address === null || !/^(0|[1-9][0-9]?)$/.test(prefixText)) return { ok: false, reason: 'syntax' };
  const prefix = Number(prefixText);
  if (prefix > 32) return { ok: false, reason: 'prefix' };
  const network = networkOf(address, prefix);
  if (network !== address) return { ok: false, reason: 'host-bits', network, prefix };
  return { ok: true, cidr: { network, prefix } };
}

export function formatCidr(c: Cidr): string {
  return `${formatIpv4(c.network)}/${c.prefix}`;
}

/** lastAddress is the broadcast address of the block (its highest address). */
export function lastAddress(c: Cidr): number {
  return c.network + blockSize(c.prefix) - 1;
}

export function cidrContains(c: Cidr, address: number): boolean {
  return address >= c.network && address <= lastAddress(c);
}

/** cidrWithin: every address of `inner` lies in `outer`. */
export function cidrWithin(inner: Cidr, outer: Cidr): boolean {
  return inner.network >= outer.network && lastAddress(inner) <= lastAddress(outer);
}

/** cidrsOverlap: the two blocks share at least one address. CIDR blocks either nest or are disjoint. */
export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
  return a.network <= lastAddress(b) && b.network <= lastAddress(a);
}

/** An inclusive span of addresses [first, last]. */
export interface Span {
  readonly first: number;
  readonly last: number;
}

/**
 * usableSpan is what Whereabouts allocates from by default: the block without its network and
 * broadcast addresses. Null for /31 and /32, which Whereabouts rejects ("net mask is too short").
 */
export function usableSpan(c: Cidr): Span | null {
  if (c.prefix > 30) return null;
  return { first: c.network + 1, last: lastAddress(c) - 1 };
}

/** countOutside counts the addresses of `span` that no block in `holes` covers. */
export function countOutside(span: Span, holes: readonly Cidr[]): number {
  // Blocks nest or are disjoint; clip each to the span, merge, and subtract the union's size.
  const clipped = holes
    .map((h) => ({ first: Math.max(h.network, span.first), last: Math.min(lastAddress(h), span.last) }))
    .filter((s) => s.first <= s.last)
    .sort((a, b) => a.first - b.first);
  let covered = 0;
  let end = span.first - 1;
  for (const s of clipped) {
    if (s.last <= end) continue;
    covered += s.last - Math.max(s.first, end + 1) + 1;
    end = s.last;
  }
  return span.last - span.first + 1 - covered;
}
