/**
 * The agent's Kubernetes client (agent/site/kube-client.ts) against a REAL kube-apiserver + etcd
 * (lab/kube-apiserver/apiserver.ts), authenticated as k3s's admin kubeconfig does it: a client
 * certificate signed by the cluster's CA, in a kubeconfig laid out as k3s writes
 * /etc/rancher/k3s/k3s.yaml, read by kubeObjectClient (agent/site/kube-site.ts). The SiteApplier
 * contract runs over it, and again, on a second server, through the Kubernetes client's child
 * process (agent/site/kube-child.ts), the way a robot's leader reaches k3s; site-apiserver.test.ts
 * runs it with a bearer token. Then what the contract does not reach: a certificate from another
 * CA, a server whose certificate the CA did not sign (in this process and through the child), an
 * immediate delete, a kind the server does not serve.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import {
  createApiServerIdentity,
  startApiServer,
  type ApiServerHandle,
  type ApiServerIdentity,
} from '../../lab/kube-apiserver/apiserver.ts';
import { readAddonTemplates, renderSiteAddons } from '../../agent/site/addons.ts';
import { describeSiteApplierContract } from '../../agent/site/applier.contract.ts';
import { ObjectSiteApplier } from '../../agent/site/applier.ts';
import { ChildObjectClient } from '../../agent/site/kube-child.ts';
import { KubeObjectClient } from '../../agent/site/kube-client.ts';
import { readKubeconfig } from '../../agent/site/kube-config.ts';
import { KubeSiteApplier, kubeObjectClient } from '../../agent/site/kube-site.ts';
import { renderSite } from '../../agent/site/render.ts';
import { k3sKubeconfigText } from '../../agent/site/testing/k3s-kubeconfig.ts';

const KUBE_WORKER = fileURLToPath(new URL('../../agent/site/kube-worker.ts', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'edgectl-kube-client-'));
let server: ApiServerHandle | undefined;
let identity: ApiServerIdentity | undefined;
/** The second server, which the contract reaches through the Kubernetes client's child process. */
let childServer: ApiServerHandle | undefined;
let childClient: ChildObjectClient | undefined;
after(async () => {
  try {
    await childClient?.close();
    await childServer?.stop();
    await server?.stop();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const ssl = (args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });

/** clientCert issues a client certificate for `subject`, signed by the CA in `caDir` (ca.crt, ca.key). */
function clientCert(caDir: string, name: string, subject: string): { cert: string; key: string } {
  const f = (n: string) => join(dir, `${name}.${n}`);
  ssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', f('key')]);
  ssl(['req', '-new', '-key', f('key'), '-subj', subject, '-out', f('csr')]);
  writeFileSync(f('ext'), 'extendedKeyUsage=clientAuth\n');
  ssl([
    'x509',
    '-req',
    '-in',
    f('csr'),
    '-CA',
    join(caDir, 'ca.crt'),
    '-CAkey',
    join(caDir, 'ca.key'),
    '-CAcreateserial',
    '-days',
    '1',
    '-extfile',
    f('ext'),
    '-out',
    f('crt'),
  ]);
  return { cert: readFileSync(f('crt'), 'utf8'), key: readFileSync(f('key'), 'utf8') };
}

/** k3sKubeconfig writes a kubeconfig in k3s.yaml's layout and returns its path. */
function k3sKubeconfig(
  name: string,
  o: { server: string; caPem: string; cert: string; key: string },
): string {
  const path = join(dir, `${name}.yaml`);
  writeFileSync(path, k3sKubeconfigText(o), { mode: 0o600 });
  return path;
}

let admin: string;
describeSiteApplierContract(
  'kube-apiserver through a k3s-style admin kubeconfig (client certificate)',
  async () => {
    identity = await createApiServerIdentity(join(dir, 'identity'), { sans: [], nodes: [] });
    server = await startApiServer({ identity, dir: join(dir, 'server') });
    // k3s's admin: group system:masters, as k3s issues it.
    const { cert, key } = clientCert(identity.dir, 'admin', '/O=system:masters/CN=system:admin');
    admin = k3sKubeconfig('k3s', { server: server.url, caPem: server.caPem, cert, key });
    const templates = readAddonTemplates();
    return {
      cluster: kubeObjectClient(admin),
      applier: (spec) => new KubeSiteApplier({ kubeConfig: readKubeconfig(admin), spec, templates }),
      render: (spec, epoch) => [
        ...renderSiteAddons(templates, { site: spec.id, epoch }),
        ...renderSite(spec, { epoch }),
      ],
    };
  },
);

// The same contract through the robot leader's own path: the Kubernetes client's child process
// (agent/site/kube-worker.ts, as the k3s runtime starts it) and the k3s-style admin kubeconfig. A
// server of its own: the contract's site ids are the same in every run of it.
describeSiteApplierContract(
  "kube-apiserver through the Kubernetes client's child process (ChildObjectClient)",
  async () => {
    const childIdentity = await createApiServerIdentity(join(dir, 'child-identity'), { sans: [], nodes: [] });
    childServer = await startApiServer({ identity: childIdentity, dir: join(dir, 'child-server') });
    const { cert, key } = clientCert(childIdentity.dir, 'child-admin', '/O=system:masters/CN=system:admin');
    const kubeconfig = k3sKubeconfig('child-k3s', {
      server: childServer.url,
      caPem: childServer.caPem,
      cert,
      key,
    });
    const client = new ChildObjectClient({ worker: KUBE_WORKER, args: [kubeconfig] });
    childClient = client;
    const templates = readAddonTemplates();
    return {
      // Results and fixtures are read and written in this process; the applier writes through the child.
      cluster: kubeObjectClient(kubeconfig),
      applier: (spec) => new ObjectSiteApplier(client, { spec, templates }),
      render: (spec, epoch) => [
        ...renderSiteAddons(templates, { site: spec.id, epoch }),
        ...renderSite(spec, { epoch }),
      ],
    };
  },
);

let other: { caDir: string; caPem: string };
before(() => {
  // A second CA, which the server does not trust and whose certificates it does not present.
  const caDir = join(dir, 'other-ca');
  mkdirSync(caDir);
  ssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', join(caDir, 'ca.key')]);
  ssl([
    'req',
    '-x509',
    '-new',
    '-key',
    join(caDir, 'ca.key'),
    '-subj',
    '/CN=other-ca',
    '-days',
    '1',
    '-out',
    join(caDir, 'ca.crt'),
  ]);
  other = { caDir, caPem: readFileSync(join(caDir, 'ca.crt'), 'utf8') };
});

test('a client certificate the cluster CA did not sign is refused as unauthorized, with the kubeconfig hint', async () => {
  if (!server) throw new Error('the contract above starts the server');
  const { cert, key } = clientCert(other.caDir, 'intruder', '/O=system:masters/CN=system:admin');
  const client = kubeObjectClient(
    k3sKubeconfig('intruder', { server: server.url, caPem: server.caPem, cert, key }),
  );
  await assert.rejects(
    client.get({ apiVersion: 'v1', kind: 'Namespace', name: 'default' }),
    (e: Error & { code?: string; hint?: string }) => {
      assert.equal(e.code, 'EDGE_SITE_API');
      assert.match(e.message, /HTTP 401/);
      assert.match(e.hint ?? '', /cluster-admin/);
      return true;
    },
  );
});

test('a server whose certificate the kubeconfig CA did not sign is not talked to, in this process or through the child', async () => {
  if (!server) throw new Error('the contract above starts the server');
  const { cert, key } = clientCert(identity!.dir, 'admin2', '/O=system:masters/CN=system:admin');
  const wrongCa = k3sKubeconfig('wrong-ca', { server: server.url, caPem: other.caPem, cert, key });
  const child = new ChildObjectClient({ worker: KUBE_WORKER, args: [wrongCa] });
  try {
    for (const client of [kubeObjectClient(wrongCa), child])
      await assert.rejects(
        client.list('v1', 'Node'),
        (e: Error & { code?: string; cause?: { code?: string } }) => {
          assert.equal(e.code, 'EDGE_SITE_API');
          assert.match(String(e.cause?.code), /CERT|SIGNATURE|ISSUER/);
          return true;
        },
      );
  } finally {
    await child.close();
  }
});

test('delete with gracePeriodSeconds 0 removes a bound pod at once; a second delete reports it gone', async () => {
  const client = kubeObjectClient(admin);
  const ref = { apiVersion: 'v1', kind: 'Pod', name: 'gone-at-once', namespace: 'default' };
  await client.apply({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: ref.name, namespace: ref.namespace },
    spec: { nodeName: 'nowhere', containers: [{ name: 'c', image: 'registry.invalid/x' }] },
  });
  assert.equal(await client.delete(ref, { gracePeriodSeconds: 0 }), true);
  assert.equal(await client.get(ref), null);
  assert.equal(await client.delete(ref), false);
});

test('a kind the server does not serve lists as empty and reads as absent; applying it names the kind', async () => {
  const client = new KubeObjectClient(readKubeconfig(admin));
  assert.deepEqual(await client.list('example.invalid/v1', 'Widget'), []);
  assert.equal(await client.get({ apiVersion: 'example.invalid/v1', kind: 'Widget', name: 'w' }), null);
  await assert.rejects(
    client.apply({ apiVersion: 'example.invalid/v1', kind: 'Widget', metadata: { name: 'w' } }),
    { code: 'EDGE_SITE_API', message: /does not serve Widget/ },
  );
});
