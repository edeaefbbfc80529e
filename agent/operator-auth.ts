/**
 * Operator requests to the running site (`edgectl site apply`): authenticated with an operator key
 * that the CLI and the voters derive from the same key material. Today that material is the site
 * key; operatorKey is the one place that says how, so per-robot key material slots in here alone.
 *
 * The tag covers the site, the committed version the operator diffed against and the digest of the
 * proposed spec. The leader refuses a request whose base is not the committed version, so a request
 * replayed after it was applied (or after any later change) is refused: the base has moved on.
 */
import { constantTimeEqual, HmacSha256 } from './sha256.ts';

const OPERATOR_KEY_LABEL = 'edgectl operator key v1';

/** operatorKey derives the key that signs operator requests from the site's key material. */
export function operatorKey(keyMaterial: Uint8Array): Uint8Array {
  const out = new Uint8Array(32);
  new HmacSha256(keyMaterial).macInto(new TextEncoder().encode(OPERATOR_KEY_LABEL), out);
  return out;
}

/** What a site-apply request asserts. */
export interface SiteApplyClaim {
  readonly site: string;
  /** The committed version the proposal replaces (0: none yet). */
  readonly baseVersion: number;
  /** specDigest of the proposed spec's canonical JSON. */
  readonly digest: string;
}

function claimBytes(c: SiteApplyClaim): Uint8Array {
  return new TextEncoder().encode(`edgectl-site-apply v1\n${c.site}\n${c.baseVersion}\n${c.digest}`);
}

/** signSiteApply returns the request's tag, hex. */
export function signSiteApply(key: Uint8Array, claim: SiteApplyClaim): string {
  const out = new Uint8Array(32);
  new HmacSha256(key).macInto(claimBytes(claim), out);
  return Buffer.from(out).toString('hex');
}

/** verifySiteApply checks a tag in constant time. */
export function verifySiteApply(key: Uint8Array, claim: SiteApplyClaim, tag: string): boolean {
  if (!/^[0-9a-f]{64}$/.test(tag)) return false;
  return constantTimeEqual(Buffer.from(signSiteApply(key, claim), 'hex'), Buffer.from(tag, 'hex'));
}
