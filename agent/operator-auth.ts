/**
 * Operator requests to the running site (`edgectl site apply`): authenticated with the operator key
 * of the site's current key generation (agent/site-key.ts operatorKey), which the bootstrap machine
 * derives from the site's master secret and only voters hold.
 *
 * The tag covers the site, the committed version the operator diffed against and the digest of the
 * proposed spec. The leader refuses a request whose base is not the committed version, so a request
 * replayed after it was applied (or after any later change) is refused: the base has moved on.
 */
import { constantTimeEqual, HmacSha256 } from './sha256.ts';

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
