/**
 * The I/O side of the site identity (identity.ts is the pure side): generate an identity directory
 * once per site with the `openssl` CLI and node:crypto randomness, and read one back, checking that
 * its tokens match its CA. Runs on the operator's machine (`edgectl bootstrap site`), never on a robot.
 *
 * The CA set follows k3s's contrib/util/generate-custom-ca-certs.sh (root CA, intermediate CA, five
 * leaf CAs, service.key), with one deliberate change: the root and intermediate keys are EC P-256,
 * not RSA 4096, like the leaf CAs and like the CAs k3s makes for itself. Generating takes well under a
 * second, and nothing in the chain needs RSA. service.key stays RSA 2048, as in the script.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { ConfigError, EdgeError } from '../../agent/errors.ts';
import {
  caHashOfBundle,
  ETCD_MEMBER_FILES,
  IDENTITY_ETCD_MEMBERS_DIR,
  leafCertificate,
  formatToken,
  IDENTITY_AGENT_TOKEN,
  IDENTITY_MANIFEST,
  IDENTITY_NODE_PASSWORD_KEY,
  IDENTITY_OFFLINE_DIR,
  IDENTITY_SERVER_TOKEN,
  IDENTITY_TLS_DIR,
  K3S_CA_FILES,
  LEAF_CA_TYPES,
  parseToken,
  type IdentityManifest,
  type SiteIdentityMaterial,
} from './identity.ts';

const execFileAsync = promisify(execFile);

export interface GenerateIdentityOptions {
  readonly site: string;
  /** Unix ms: names the CAs (`…@<seconds>`, as k3s does) and stamps the manifest. */
  readonly now: number;
  /** The openssl binary; tests may point at another. */
  readonly openssl?: string;
}

/** The openssl configuration of generate-custom-ca-certs.sh: every certificate made here is a CA. */
const OPENSSL_CONFIG = `[req]
distinguished_name = req_distinguished_name
[req_distinguished_name]
[v3_ca]
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
basicConstraints = critical, CA:true
keyUsage = critical, digitalSignature, keyEncipherment, keyCertSign
`;

/**
 * generateSiteIdentity writes a new identity directory at `dir` (layout: identity.ts). It refuses if
 * `dir` exists: a site has one identity, and a second one would split it into two clusters whose
 * tokens do not trust each other. It builds everything in a 0700 sibling directory and renames it
 * into place, so a failed run leaves nothing half-made at `dir`.
 */
export async function generateSiteIdentity(
  dir: string,
  opts: GenerateIdentityOptions,
): Promise<IdentityManifest> {
  if (await exists(dir)) {
    throw new EdgeError('IDENTITY_EXISTS', `a site identity already exists at ${dir}`, {
      hint: 'a site keeps one identity for its lifetime; reuse it, or move it away on purpose to start a new cluster',
    });
  }
  await mkdir(dirname(dir), { recursive: true, mode: 0o700 });
  const work = `${dir}.partial-${randomBytes(4).toString('hex')}`;
  await mkdir(work, { mode: 0o700 });
  try {
    const manifest = await generateInto(work, opts);
    await restrictModes(work);
    await rename(work, dir);
    return manifest;
  } catch (err) {
    await rm(work, { recursive: true, force: true });
    if (err instanceof EdgeError) throw err;
    throw new EdgeError(
      'IDENTITY_GENERATION_FAILED',
      `could not generate the site identity: ${message(err)}`,
      {
        hint: 'check that the openssl CLI (1.1 or 3.x, with EC support) is installed',
        cause: err,
      },
    );
  }
}

async function generateInto(work: string, opts: GenerateIdentityOptions): Promise<IdentityManifest> {
  const openssl = opts.openssl ?? 'openssl';
  const run = async (...args: string[]): Promise<string> =>
    (await execFileAsync(openssl, args, { cwd: work, maxBuffer: 1 << 20 })).stdout;
  const ts = Math.floor(opts.now / 1000);
  const offline = join(work, IDENTITY_OFFLINE_DIR);
  const tls = join(work, IDENTITY_TLS_DIR);
  await mkdir(offline, { mode: 0o700 });
  await mkdir(join(tls, 'etcd'), { recursive: true, mode: 0o700 });
  await mkdir(join(work, 'tokens'), { mode: 0o700 });
  const cfg = join(work, '.openssl.cnf');
  await writeFile(cfg, OPENSSL_CONFIG, { mode: 0o600 });

  const ecKey = (out: string) => run('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', out);
  const serial = () => `0x${randomBytes(16).toString('hex')}`;
  const signCa = async (
    subject: string,
    key: string,
    out: string,
    caPem: string,
    caKey: string,
    days: string,
  ) => {
    const csr = `${out}.csr`;
    await run('req', '-new', '-key', key, '-subj', subject, '-config', cfg, '-out', csr);
    await run(
      'x509',
      '-req',
      '-in',
      csr,
      '-CA',
      caPem,
      '-CAkey',
      caKey,
      '-set_serial',
      serial(),
      '-days',
      days,
      '-sha256',
      '-extfile',
      cfg,
      '-extensions',
      'v3_ca',
      '-out',
      out,
    );
    await rm(csr);
  };

  const rootKey = join(offline, 'root-ca.key');
  const rootPem = join(offline, 'root-ca.pem');
  await ecKey(rootKey);
  await run(
    'req',
    '-x509',
    '-new',
    '-nodes',
    '-sha256',
    '-days',
    '7300',
    '-subj',
    `/CN=edgectl-${opts.site}-root-ca@${ts}`,
    '-key',
    rootKey,
    '-config',
    cfg,
    '-extensions',
    'v3_ca',
    '-set_serial',
    serial(),
    '-out',
    rootPem,
  );
  const interKey = join(offline, 'intermediate-ca.key');
  const interPem = join(offline, 'intermediate-ca.pem');
  await ecKey(interKey);
  await signCa(
    `/CN=edgectl-${opts.site}-intermediate-ca@${ts}`,
    interKey,
    interPem,
    rootPem,
    rootKey,
    '3700',
  );

  const rootText = await readFile(rootPem, 'utf8');
  const interText = await readFile(interPem, 'utf8');
  for (const type of LEAF_CA_TYPES) {
    const key = join(tls, `${type}-ca.key`);
    const pem = join(tls, `${type}-ca.pem`);
    await ecKey(key);
    await signCa(`/CN=k3s-${type.replace('/', '-')}-ca@${ts}`, key, pem, interPem, interKey, '3700');
    // k3s reads <type>-ca.crt as the chain leaf, intermediate, root (as the script writes it).
    await writeFile(join(tls, `${type}-ca.crt`), (await readFile(pem, 'utf8')) + interText + rootText, {
      mode: 0o600,
    });
    await rm(pem);
  }
  const version = await run('version');
  const traditional = version.includes('OpenSSL 3') ? ['-traditional'] : [];
  await run('genrsa', ...traditional, '-out', join(tls, 'service.key'), '2048');
  await rm(cfg);

  const caHash = caHashOfBundle(await readFile(join(tls, 'server-ca.crt'), 'utf8'));
  const secret = () => randomBytes(32).toString('hex');
  await writeFile(join(work, IDENTITY_SERVER_TOKEN), `${formatToken(caHash, 'server', secret())}\n`, {
    mode: 0o600,
  });
  await writeFile(join(work, IDENTITY_AGENT_TOKEN), `${formatToken(caHash, 'node', secret())}\n`, {
    mode: 0o600,
  });
  await writeFile(join(work, IDENTITY_NODE_PASSWORD_KEY), `${secret()}\n`, { mode: 0o600 });
  const manifest: IdentityManifest = {
    version: 1,
    site: opts.site,
    caHash,
    createdAt: opts.now,
    keyAlgorithm: 'ecdsa-p256 (CAs), rsa-2048 (service.key)',
  };
  await writeFile(join(work, IDENTITY_MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`, { mode: 0o600 });
  return manifest;
}

/**
 * readSiteIdentity loads an identity directory and checks it: every file is there, both tokens
 * carry the CA hash of tls/server-ca.crt and the right user, and no file is readable by others.
 * All problems are reported at once.
 */
export async function readSiteIdentity(dir: string): Promise<SiteIdentityMaterial> {
  const problems: string[] = [];
  const files = new Map<string, string>();
  const read = async (rel: string): Promise<string | null> => {
    try {
      const path = join(dir, rel);
      const st = await stat(path);
      if ((st.mode & 0o077) !== 0)
        problems.push(`${rel}: mode ${(st.mode & 0o777).toString(8)} lets others read it; chmod 600 it`);
      return await readFile(path, 'utf8');
    } catch {
      problems.push(`${rel}: missing; the identity directory is incomplete`);
      return null;
    }
  };
  const manifestText = await read(IDENTITY_MANIFEST);
  for (const f of K3S_CA_FILES) {
    const text = await read(`${IDENTITY_TLS_DIR}/${f}`);
    if (text !== null) files.set(`${IDENTITY_TLS_DIR}/${f}`, text);
  }
  for (const rel of [IDENTITY_SERVER_TOKEN, IDENTITY_AGENT_TOKEN]) {
    const text = await read(rel);
    if (text !== null) files.set(rel, text);
  }
  const nodePasswordKey = (await read(IDENTITY_NODE_PASSWORD_KEY))?.trim() ?? '';
  // The voters' etcd certificates, issued on demand (issueEtcdMemberCertificates).
  const members = await readdir(join(dir, IDENTITY_ETCD_MEMBERS_DIR)).catch(() => [] as string[]);
  for (const m of members)
    for (const f of ETCD_MEMBER_FILES) {
      const rel = `${IDENTITY_ETCD_MEMBERS_DIR}/${m}/${f}`;
      if (existsSync(join(dir, rel))) {
        const text = await read(rel);
        if (text !== null) files.set(rel, text);
      }
    }

  let manifest: IdentityManifest | null = null;
  if (manifestText !== null) {
    try {
      manifest = JSON.parse(manifestText) as IdentityManifest;
    } catch {
      problems.push(`${IDENTITY_MANIFEST}: not JSON`);
    }
  }
  const serverCa = files.get(`${IDENTITY_TLS_DIR}/server-ca.crt`);
  const caHash = serverCa ? caHashOfBundle(serverCa) : null;
  if (manifest && caHash && manifest.caHash !== caHash) {
    problems.push(`${IDENTITY_MANIFEST}: caHash does not match tls/server-ca.crt (${caHash})`);
  }
  const expectUser: ReadonlyArray<[string, string]> = [
    [IDENTITY_SERVER_TOKEN, 'server'],
    [IDENTITY_AGENT_TOKEN, 'node'],
  ];
  for (const [rel, user] of expectUser) {
    const text = files.get(rel);
    if (text === undefined) continue;
    const t = parseToken(text);
    if (!t) problems.push(`${rel}: not a k3s secure token (K10<hash>::${user}:<secret>)`);
    else if (t.user !== user) problems.push(`${rel}: user is ${t.user}, must be ${user}`);
    else if (caHash && t.caHash !== caHash)
      problems.push(`${rel}: its CA hash is not the hash of tls/server-ca.crt`);
  }
  if (problems.length > 0 || !manifest) throw new ConfigError(`site identity ${dir}`, problems);
  return { manifest, files, nodePasswordKey };
}

/** The openssl configuration of a voter's etcd certificate: a leaf, for TLS both ways. */
const leafConfig = (san: string) => `[req]
distinguished_name = req_distinguished_name
[req_distinguished_name]
[v3_leaf]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth, clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
${san ? `subjectAltName = ${san}\n` : ''}`;

/**
 * issueEtcdMemberCertificates gives each voter in `members` its etcd certificates in the identity
 * directory (identity.ts IDENTITY_ETCD_MEMBERS_DIR), unless it has them for its current address:
 * a peer certificate of tls/etcd/peer-ca for its IP (etcd checks a peer's address against it), and
 * a serving (127.0.0.1) and a client certificate of tls/etcd/server-ca for the loopback client
 * port. Workers are never passed here: they get no etcd credential. Returns the voters issued.
 */
export async function issueEtcdMemberCertificates(
  dir: string,
  members: readonly { readonly name: string; readonly ip: string }[],
  opts: { readonly openssl?: string } = {},
): Promise<string[]> {
  const openssl = opts.openssl ?? 'openssl';
  const issued: string[] = [];
  for (const m of members) {
    const memberDir = join(dir, IDENTITY_ETCD_MEMBERS_DIR, m.name);
    const peer = join(memberDir, 'peer.crt');
    if (ETCD_MEMBER_FILES.every((f) => existsSync(join(memberDir, f)))) {
      const san = await execFileAsync(openssl, [
        'x509',
        '-in',
        peer,
        '-noout',
        '-ext',
        'subjectAltName',
      ]).then(
        (r) => r.stdout,
        () => '',
      );
      if (san.includes(`IP Address:${m.ip}`)) continue;
    }
    const work = `${memberDir}.partial-${randomBytes(4).toString('hex')}`;
    await mkdir(work, { recursive: true, mode: 0o700 });
    try {
      const run = (...args: string[]) => execFileAsync(openssl, args, { cwd: work, maxBuffer: 1 << 20 });
      const leaf = async (out: string, ca: string, cn: string, san: string) => {
        const caCrt = join(work, `${out}-ca.crt`);
        await writeFile(
          caCrt,
          leafCertificate(await readFile(join(dir, IDENTITY_TLS_DIR, `${ca}.crt`), 'utf8')),
        );
        const cfg = join(work, `${out}.cnf`);
        await writeFile(cfg, leafConfig(san), { mode: 0o600 });
        await run('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', `${out}.key`);
        await run(
          'req',
          '-new',
          '-key',
          `${out}.key`,
          '-subj',
          `/CN=${cn}`,
          '-config',
          cfg,
          '-out',
          `${out}.csr`,
        );
        await run(
          'x509',
          '-req',
          '-in',
          `${out}.csr`,
          '-CA',
          caCrt,
          '-CAkey',
          join(dir, IDENTITY_TLS_DIR, `${ca}.key`),
          '-set_serial',
          `0x${randomBytes(16).toString('hex')}`,
          '-days',
          '3650',
          '-sha256',
          '-extfile',
          cfg,
          '-extensions',
          'v3_leaf',
          '-out',
          `${out}.crt`,
        );
        for (const f of [caCrt, cfg, join(work, `${out}.csr`)]) await rm(f);
      };
      await leaf('peer', 'etcd/peer-ca', `etcd-peer-${m.name}`, `IP:${m.ip}`);
      await leaf('server', 'etcd/server-ca', `etcd-server-${m.name}`, 'IP:127.0.0.1');
      await leaf('client', 'etcd/server-ca', `etcd-client-${m.name}`, '');
      await restrictModes(work);
      await rm(memberDir, { recursive: true, force: true });
      await rename(work, memberDir);
      issued.push(m.name);
    } catch (err) {
      await rm(work, { recursive: true, force: true });
      throw new EdgeError(
        'ETCD_CERT_FAILED',
        `could not issue the etcd certificates of ${m.name}: ${message(err)}`,
        {
          hint: 'check that the openssl CLI (1.1 or 3.x, with EC support) is installed',
          cause: err,
        },
      );
    }
  }
  return issued;
}

async function restrictModes(dir: string): Promise<void> {
  await chmod(dir, 0o700);
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) await restrictModes(path);
    else await chmod(path, 0o600);
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

function message(err: unknown): string {
  if (err && typeof err === 'object' && 'stderr' in err && typeof err.stderr === 'string' && err.stderr) {
    return err.stderr.trim();
  }
  return err instanceof Error ? err.message : String(err);
}
