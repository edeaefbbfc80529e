/**
 * Operator requests to the running site (`edgectl site apply`, and the membership changes of
 * `edgectl robot add|remove`): authenticated with the operator key
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

/** Each request kind has its own label, so a tag for one is never valid for the other. */
type RequestKind = 'edgectl-site-apply v1' | 'edgectl-site-members v1';

function claimBytes(kind: RequestKind, c: SiteApplyClaim): Uint8Array {
  return new TextEncoder().encode(`${kind}\n${c.site}\n${c.baseVersion}\n${c.digest}`);
}

function sign(kind: RequestKind, key: Uint8Array, claim: SiteApplyClaim): string {
  const out = new Uint8Array(32);
  new HmacSha256(key).macInto(claimBytes(kind, claim), out);
  return Buffer.from(out).toString('hex');
}

function verify(kind: RequestKind, key: Uint8Array, claim: SiteApplyClaim, tag: string): boolean {
  if (!/^[0-9a-f]{64}$/.test(tag)) return false;
  return constantTimeEqual(Buffer.from(sign(kind, key, claim), 'hex'), Buffer.from(tag, 'hex'));
}

/** signSiteApply returns the request's tag, hex. */
export function signSiteApply(key: Uint8Array, claim: SiteApplyClaim): string {
  return sign('edgectl-site-apply v1', key, claim);
}

/** verifySiteApply checks a tag in constant time. */
export function verifySiteApply(key: Uint8Array, claim: SiteApplyClaim, tag: string): boolean {
  return verify('edgectl-site-apply v1', key, claim, tag);
}

/**
 * signMembers returns the tag of a membership change (edgectl robot add|remove); the claim's
 * digest is membersDigest of the new membership (agent/site/members.ts).
 */
export function signMembers(key: Uint8Array, claim: SiteApplyClaim): string {
  return sign('edgectl-site-members v1', key, claim);
}

/** verifyMembers checks a membership change's tag in constant time. */
export function verifyMembers(key: Uint8Array, claim: SiteApplyClaim, tag: string): boolean {
  return verify('edgectl-site-members v1', key, claim, tag);
}
