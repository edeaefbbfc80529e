/**
 * Site identity: one custom cluster CA set, one server token and one agent token per site, made
 * once (identity-files.ts generates them) and given to robots so that whichever robot is elected
 * starts a server every worker's token still trusts (docs/k3s.md, "Site identity").
 *
 * This module is the pure part: the layout of an identity directory, the k3s secure token format
 * and its CA hash, the per-robot node password, and which file goes to which robot.
 *
 * Facts, checked against k3s rather than guessed:
 * - Custom CA files k3s requires in server/tls (docs.k3s.io/cli/certificate, "Using Custom CA
 *   Certificates"): server-ca, client-ca, request-header-ca, etcd/peer-ca, etcd/server-ca (.crt and
 *   .key each) and service.key. contrib/util/generate-custom-ca-certs.sh makes them as leaf CAs under
 *   one root and one intermediate CA, each .crt being the chain leaf, intermediate, root.
 * - Secure token format (docs.k3s.io/cli/token): `K10<cluster CA hash>::<username>:<password>`. The
 *   hash (k3s pkg/clientaccess/token.go, hashCA) is the SHA-256 of the file's bytes when the bundle
 *   holds one certificate, and of the DER of the chain's root when it holds more: with custom CAs, the
 *   root certificate's fingerprint. Servers authenticate as user `server`, agents as user `node`
 *   (pkg/passwd EnsureUser strips `K10…::<user>:` from a full token).
 */
import { createHash, createHmac, X509Certificate } from 'node:crypto';
import type { PlanStep } from '../../agent/plan/plan.ts';
import {
  AGENT_TOKEN_FILE,
  ETCD_CLIENT_DIR,
  ETCD_PEER_DIR,
  NODE_PASSWORD_FILE,
  SERVER_TOKEN_FILE,
  TLS_DIR,
} from '../../agent/k3s/paths.ts';

/** The CA files k3s needs in server/tls, relative to that directory (docs.k3s.io/cli/certificate). */
export const K3S_CA_FILES = [
  'server-ca.crt',
  'server-ca.key',
  'client-ca.crt',
  'client-ca.key',
  'request-header-ca.crt',
  'request-header-ca.key',
  'etcd/peer-ca.crt',
  'etcd/peer-ca.key',
  'etcd/server-ca.crt',
  'etcd/server-ca.key',
  'service.key',
] as const;

/** The leaf CAs, named as generate-custom-ca-certs.sh names them (`<type>-ca.{crt,key}`). */
export const LEAF_CA_TYPES = ['client', 'server', 'request-header', 'etcd/peer', 'etcd/server'] as const;

/**
 * The identity directory on the operator's machine (every file 0600, every directory 0700):
 *
 *   identity.json                 what, for which site, when, the CA hash (no secret)
 *   offline/root-ca.{pem,key}     the root and intermediate CAs; they never leave this directory
 *   offline/intermediate-ca.{pem,key}
 *   tls/<K3S_CA_FILES>            what a server-capable robot gets in /var/lib/rancher/k3s/server/tls
 *   tokens/server-token           K10<hash>::server:<secret>
 *   tokens/agent-token            K10<hash>::node:<secret>
 *   node-password.key             derives each robot's node password (nodePassword)
 */
export const IDENTITY_MANIFEST = 'identity.json';
export const IDENTITY_TLS_DIR = 'tls';
export const IDENTITY_OFFLINE_DIR = 'offline';
export const IDENTITY_SERVER_TOKEN = 'tokens/server-token';
export const IDENTITY_AGENT_TOKEN = 'tokens/agent-token';
export const IDENTITY_NODE_PASSWORD_KEY = 'node-password.key';
/**
 * Per voter, the certificates of the etcd edgectl runs as k3s's datastore (docs/k3s.md
 * "Replication"), issued by bootstrap (identity-files.ts issueEtcdMemberCertificates):
 *
 *   etcd-members/<robot>/peer.{crt,key}    of tls/etcd/peer-ca: the peer port, SAN the robot's IP
 *   etcd-members/<robot>/server.{crt,key}  of tls/etcd/server-ca: the loopback client port (127.0.0.1)
 *   etcd-members/<robot>/client.{crt,key}  of tls/etcd/server-ca: what k3s and etcdctl present
 */
export const IDENTITY_ETCD_MEMBERS_DIR = 'etcd-members';
export const ETCD_MEMBER_FILES = [
  'peer.crt',
  'peer.key',
  'server.crt',
  'server.key',
  'client.crt',
  'client.key',
] as const;

export interface IdentityManifest {
  readonly version: 1;
  readonly site: string;
  /** The cluster CA hash every token carries: SHA-256 of the root CA's DER, hex. */
  readonly caHash: string;
  /** Unix ms, from the caller's clock. */
  readonly createdAt: number;
  readonly keyAlgorithm: string;
}

export type RobotRole = 'server' | 'worker';

/** One identity file and where it goes on a robot. Every placed file is a secret, mode 0600. */
export interface IdentityPlacement {
  /** Path relative to the identity directory. */
  readonly from: string;
  /** Absolute path on the robot. */
  readonly to: string;
  readonly mode: number;
}

/**
 * identityPlacement says which identity files a robot gets. A server-capable robot gets the CA set
 * and both tokens: it may be elected and must then start a server of the same cluster. A worker
 * gets only the agent token: with it a node can join, not serve or read the CA keys. No robot gets
 * the root or intermediate CA keys, nor the key that derives node passwords.
 */
export function identityPlacement(role: RobotRole): IdentityPlacement[] {
  const agentToken = { from: IDENTITY_AGENT_TOKEN, to: AGENT_TOKEN_FILE, mode: 0o600 };
  if (role === 'worker') return [agentToken];
  return [
    ...K3S_CA_FILES.map((f) => ({ from: `${IDENTITY_TLS_DIR}/${f}`, to: `${TLS_DIR}/${f}`, mode: 0o600 })),
    { from: IDENTITY_SERVER_TOKEN, to: SERVER_TOKEN_FILE, mode: 0o600 },
    agentToken,
  ];
}

/** SiteIdentityMaterial is an identity directory read into memory (identity-files.ts readSiteIdentity). */
export interface SiteIdentityMaterial {
  readonly manifest: IdentityManifest;
  /** Content by identity-relative path, for every file identityPlacement can name. */
  readonly files: ReadonlyMap<string, string>;
  readonly nodePasswordKey: string;
}

/**
 * etcdMemberPlacement: a voter's etcd certificates and the two CAs it trusts. The trusted CA files
 * hold the leaf CA alone, not its chain: with the intermediate or the root in the pool, etcd would
 * also accept any certificate the other leaf CAs signed, kubelet client certificates of workers
 * included. Workers get none of this.
 */
export function etcdMemberPlacement(nodeName: string): { from: string; to: string; leafOnly?: true }[] {
  const own = (f: (typeof ETCD_MEMBER_FILES)[number]) => `${IDENTITY_ETCD_MEMBERS_DIR}/${nodeName}/${f}`;
  return [
    { from: own('peer.crt'), to: `${ETCD_PEER_DIR}/peer.crt` },
    { from: own('peer.key'), to: `${ETCD_PEER_DIR}/peer.key` },
    { from: `${IDENTITY_TLS_DIR}/etcd/peer-ca.crt`, to: `${ETCD_PEER_DIR}/peer-ca.crt`, leafOnly: true },
    { from: own('server.crt'), to: `${ETCD_CLIENT_DIR}/server.crt` },
    { from: own('server.key'), to: `${ETCD_CLIENT_DIR}/server.key` },
    { from: own('client.crt'), to: `${ETCD_CLIENT_DIR}/client.crt` },
    { from: own('client.key'), to: `${ETCD_CLIENT_DIR}/client.key` },
    { from: `${IDENTITY_TLS_DIR}/etcd/server-ca.crt`, to: `${ETCD_CLIENT_DIR}/ca.crt`, leafOnly: true },
  ];
}

/**
 * identityPlan writes a robot's share of the site identity, and its node password; a voter also
 * gets its etcd certificates (etcdMemberPlacement). Every step is a secret writeFile (plans print a
 * digest, never the content), root-owned, 0600.
 */
export function identityPlan(role: RobotRole, nodeName: string, identity: SiteIdentityMaterial): PlanStep[] {
  const steps: PlanStep[] = identityPlacement(role).map((p) => {
    const content = identity.files.get(p.from);
    if (content === undefined) throw new Error(`identity file ${p.from} is missing`);
    return {
      kind: 'writeFile',
      id: `identity:${p.from}`,
      description: `site identity: ${p.from}`,
      path: p.to,
      mode: p.mode,
      owner: 'root:root',
      content,
      secret: true,
    };
  });
  steps.push({
    kind: 'writeFile',
    id: 'identity:node-password',
    description: `node password of ${nodeName} (stable across reinstalls and snapshot restores)`,
    path: NODE_PASSWORD_FILE,
    mode: 0o600,
    owner: 'root:root',
    content: `${nodePassword(identity.nodePasswordKey, nodeName)}\n`,
    secret: true,
  });
  if (role === 'server')
    for (const p of etcdMemberPlacement(nodeName)) {
      const content = identity.files.get(p.from);
      if (content === undefined) throw new Error(`identity file ${p.from} is missing`);
      steps.push({
        kind: 'writeFile',
        id: `identity:etcd:${p.to.slice(p.to.lastIndexOf('/', p.to.lastIndexOf('/') - 1) + 1)}`,
        description: `etcd TLS of ${nodeName}: ${p.to}`,
        path: p.to,
        mode: 0o600,
        owner: 'root:root',
        content: p.leafOnly ? leafCertificate(content) : content,
        secret: true,
      });
    }
  return steps;
}

/** TokenUser: k3s authenticates servers as `server` and agents as `node`. */
export type TokenUser = 'server' | 'node';

export interface ParsedToken {
  readonly caHash: string;
  readonly user: string;
  readonly password: string;
}

const TOKEN_PREFIX = 'K10';
const HEX64 = /^[0-9a-f]{64}$/;

/** formatToken builds a k3s secure token: `K10<caHash>::<user>:<password>`. */
export function formatToken(caHash: string, user: TokenUser, password: string): string {
  if (!HEX64.test(caHash))
    throw new Error(`CA hash must be 64 lowercase hex digits (got ${caHash.length} chars)`);
  if (password.length === 0) throw new Error('token password must not be empty');
  return `${TOKEN_PREFIX}${caHash}::${user}:${password}`;
}

/** parseToken reads a secure token; it returns null for any other shape (short tokens included). */
export function parseToken(token: string): ParsedToken | null {
  const t = token.trim();
  if (!t.startsWith(TOKEN_PREFIX)) return null;
  const rest = t.slice(TOKEN_PREFIX.length);
  const sep = rest.indexOf('::');
  if (sep < 0) return null;
  const caHash = rest.slice(0, sep);
  const creds = rest.slice(sep + 2);
  const colon = creds.indexOf(':');
  if (!HEX64.test(caHash) || colon <= 0 || colon === creds.length - 1) return null;
  return { caHash, user: creds.slice(0, colon), password: creds.slice(colon + 1) };
}

/**
 * caHashOfBundle computes the cluster CA hash of a PEM bundle the way k3s does (pkg/clientaccess
 * hashCA): one certificate, the SHA-256 of the bytes as given; more, the SHA-256 of the DER of the
 * root the first certificate chains to. If the chain does not verify, k3s falls back to hashing
 * the bytes, and so does this. (k3s also checks validity dates with the clock; this is pure and
 * does not.)
 */
export function caHashOfBundle(pem: string): string {
  const certs = pemCertificates(pem).map((b) => new X509Certificate(b));
  if (certs.length === 0) throw new Error('the CA bundle holds no certificate');
  const root = certs.length > 1 ? chainRoot(certs) : null;
  return sha256Hex(root ? root.raw : Buffer.from(pem));
}

function chainRoot(certs: readonly X509Certificate[]): X509Certificate | null {
  const [first, ...pool] = certs;
  let cur = first;
  for (let hops = 0; cur && hops <= pool.length; hops++) {
    if (isSelfSigned(cur)) return cur;
    const at = cur;
    const issuer = pool.find((c) => at.checkIssued(c) && at.verify(c.publicKey));
    if (!issuer) return null;
    cur = issuer;
  }
  return null;
}

function isSelfSigned(c: X509Certificate): boolean {
  return c.checkIssued(c) && c.verify(c.publicKey);
}

/** pemCertificates splits a PEM bundle into its CERTIFICATE blocks, in order. */
/** leafCertificate: the first certificate of a chain file (a placeholder passes through). */
export function leafCertificate(pem: string): string {
  const first = pemCertificates(pem)[0];
  return first === undefined ? pem : `${first}\n`;
}

export function pemCertificates(pem: string): string[] {
  return pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

/**
 * nodePassword derives a robot's k3s node password from the site's node-password key. k3s keeps a
 * hash of the password a node first registered with (kube-system/<node>.node-password.k3s) and
 * rejects the node if it later presents another. A derived password is the same after a reinstall
 * and matches the secret in every snapshot, so no rejoin or restore ever needs to delete it.
 */
export function nodePassword(key: string, nodeName: string): string {
  return createHmac('sha256', key).update(`edgectl k3s node password\0${nodeName}`).digest('hex');
}

export function sha256Hex(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}
