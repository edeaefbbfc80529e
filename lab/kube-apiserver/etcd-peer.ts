/**
 * etcd peer TLS for replication (docs/k3s.md "Replication"). The peer CA is its own CA, apart from
 * the cluster CA that signs kubelet and client certificates: it signs one certificate per voter and
 * nothing else, so etcd's --peer-client-cert-auth admits exactly the voters. A worker never holds a
 * certificate of this CA (lab up writes each voter's into that robot's own directory only), so a
 * stolen worker cannot join the datastore, read it off the Wi-Fi, or pose as a replica.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync, copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

/** The files of one voter's peer identity, as etcd's --peer-* flags name them. */
export interface EtcdPeerTls {
  readonly caCert: string;
  readonly cert: string;
  readonly key: string;
}

export function etcdPeerTlsIn(dir: string): EtcdPeerTls {
  return { caCert: join(dir, 'peer-ca.crt'), cert: join(dir, 'peer.crt'), key: join(dir, 'peer.key') };
}

/** etcdPeerFlags: TLS both ways on the peer port, and only certificates of the peer CA. */
export function etcdPeerFlags(tls: EtcdPeerTls): string[] {
  return [
    `--peer-cert-file=${tls.cert}`,
    `--peer-key-file=${tls.key}`,
    `--peer-trusted-ca-file=${tls.caCert}`,
    '--peer-client-cert-auth=true',
  ];
}

/**
 * issueEtcdPeerCerts makes the peer CA in `caDir` (once) and, for each voter, a certificate for its
 * address (server and client use: a peer both dials and listens) in `outDir(voter)`.
 */
export async function issueEtcdPeerCerts(
  caDir: string,
  voters: readonly {
    readonly name: string;
    readonly address: string;
    readonly alsoIps?: readonly string[];
  }[],
  outDir: (name: string) => string,
): Promise<void> {
  const ssl = (args: string[]) => execFileP('openssl', args);
  mkdirSync(caDir, { recursive: true, mode: 0o700 });
  const caKey = join(caDir, 'etcd-peer-ca.key');
  const caCrt = join(caDir, 'etcd-peer-ca.crt');
  if (!existsSync(caCrt)) {
    await ssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', caKey]);
    await ssl([
      'req',
      '-x509',
      '-new',
      '-key',
      caKey,
      '-subj',
      '/CN=edgectl-etcd-peer-ca',
      '-days',
      '3650',
      '-out',
      caCrt,
    ]);
  }
  for (const v of voters) {
    const dir = outDir(v.name);
    const tls = etcdPeerTlsIn(dir);
    if (existsSync(tls.cert)) continue;
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    await ssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', tls.key]);
    const csr = join(dir, 'peer.csr');
    await ssl(['req', '-new', '-key', tls.key, '-subj', `/CN=${v.name}`, '-out', csr]);
    const ext = join(dir, 'peer.ext');
    // etcd also checks that a peer connects from an address its certificate names.
    const ips = [v.address, ...(v.alsoIps ?? [])].map((ip) => `IP:${ip}`).join(',');
    writeFileSync(ext, `subjectAltName=${ips}\nextendedKeyUsage=serverAuth,clientAuth\n`);
    await ssl([
      'x509',
      '-req',
      '-in',
      csr,
      '-CA',
      caCrt,
      '-CAkey',
      caKey,
      '-CAcreateserial',
      '-days',
      '3650',
      '-extfile',
      ext,
      '-out',
      tls.cert,
    ]);
    copyFileSync(caCrt, tls.caCert);
  }
}
