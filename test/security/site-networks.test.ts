/**
 * Secondary networks against the site's isolation, attacked on a REAL kube-apiserver + etcd
 * (lab/kube-apiserver/apiserver.ts): the rendered site (addons, admission policy, Role) is applied,
 * then the site's operator, as the API server authenticates and authorizes it (impersonation of a
 * user in the site's operator group), tries every way we know to put a workload on a network other
 * than the site's own: a NAD of another namespace (the robots' management LAN), the JSON form that
 * asks for addresses, a second name after an allowed one, the cluster network replaced, the host's
 * network, a pod template, an update of a running pod's annotation, its own NAD or Endpoints, and a
 * Service that claims a robot's address. Each is refused by the API server; the site's own network
 * is admitted. No kubelet runs: this is about admission, which is where the guard lives.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  createApiServerIdentity,
  startApiServer,
  type ApiServerHandle,
} from '../../lab/kube-apiserver/apiserver.ts';
import { readAddonTemplates } from '../../agent/site/addons.ts';
import { KubeSiteApplier } from '../../agent/site/kube-site.ts';
import { admissionPolicyName } from '../../agent/site/render.ts';
import { parseSiteSpec, siteNamespace } from '../../agent/site/spec.ts';

const spec = parseSiteSpec(
  {
    id: 'sec-net',
    // No controller-manager runs to fill a ResourceQuota's status, and without it the quota's
    // admission refuses every pod; the quota is not what this test is about.
    quota: { hard: {} },
    management: { cidrs: ['10.20.0.0/28'] },
    networks: [
      { name: 'dds', master: 'wlan1', range: '192.168.50.0/24', rangeStart: '192.168.50.20' },
      { name: 'cam', type: 'macvlan', master: 'eth1', range: '192.168.60.0/24' },
    ],
  },
  'test',
  { management: { interfaces: ['wlan0'], addresses: [{ robot: 'spot-1', address: '10.20.0.11' }] } },
);
const NS = siteNamespace(spec);
const OPERATOR = { user: 'mallory@example.com', group: `${NS}-operators` };
const POLICY = admissionPolicyName(spec.id);

const dir = mkdtempSync(join(tmpdir(), 'edgectl-site-networks-'));
let server: ApiServerHandle;

interface Reply {
  readonly status: number;
  readonly body: { message?: string; [k: string]: unknown };
}

/** call sends one API request, as the admin or, with `as`, as that user and group (impersonated). */
function call(
  method: string,
  path: string,
  body?: unknown,
  as?: { user: string; group: string },
  contentType = 'application/json',
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${server.url}${path}`,
      {
        method,
        ca: server.caPem,
        headers: {
          authorization: `Bearer ${server.adminToken}`,
          'content-type': contentType,
          ...(as ? { 'impersonate-user': as.user, 'impersonate-group': as.group } : {}),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: Reply['body'];
          try {
            parsed = JSON.parse(text) as Reply['body'];
          } catch {
            parsed = { message: text };
          }
          resolve({ status: res.statusCode ?? 0, body: parsed });
        });
      },
    );
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

const pod = (
  name: string,
  annotations: Record<string, string> = {},
  extra: Record<string, unknown> = {},
) => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, annotations },
  spec: { containers: [{ name: 'c', image: 'registry.invalid/ros:jazzy' }], ...extra },
});

/** createPod creates a pod in the site's namespace as `as` (null: the admin). */
const createPod = (
  p: ReturnType<typeof pod>,
  as: { user: string; group: string } | null = OPERATOR,
  dryRun = false,
) => call('POST', `/api/v1/namespaces/${NS}/pods${dryRun ? '?dryRun=All' : ''}`, p, as ?? undefined);

/** assertRefusedByPolicy: the API server refused the request, and our policy is what refused it. */
function assertRefusedByPolicy(r: Reply, what: RegExp): void {
  assert.equal(r.status, 403, JSON.stringify(r.body));
  assert.match(r.body.message ?? '', new RegExp(`ValidatingAdmissionPolicy '${POLICY}'`));
  assert.match(r.body.message ?? '', what);
}

const NETWORKS = 'k8s.v1.cni.cncf.io/networks';
const FOREIGN = { [NETWORKS]: 'kube-system/robots-lan@net1' };

before(async () => {
  const identity = await createApiServerIdentity(join(dir, 'identity'), { sans: [], nodes: [] });
  server = await startApiServer({ identity, dir: join(dir, 'server') });
  await new KubeSiteApplier({ kubeConfig: server.kubeConfig(), spec, templates: readAddonTemplates() }).apply(
    1,
  );
  // The robots' own LAN as a NAD in another namespace: what a workload would ask for to reach the
  // robots' management addresses.
  const robotsLan = await call(
    'POST',
    '/apis/k8s.cni.cncf.io/v1/namespaces/kube-system/network-attachment-definitions',
    {
      apiVersion: 'k8s.cni.cncf.io/v1',
      kind: 'NetworkAttachmentDefinition',
      metadata: { name: 'robots-lan' },
      spec: { config: JSON.stringify({ cniVersion: '1.0.0', type: 'ipvlan', master: 'wlan0' }) },
    },
  );
  assert.equal(robotsLan.status, 201, JSON.stringify(robotsLan.body));
  // The policy is enforced once the API server has loaded it (an informer, so not at once): wait
  // until a dry run of the foreign pod is refused.
  for (let i = 0; ; i++) {
    const r = await createPod(pod('probe', FOREIGN), OPERATOR, true);
    if (r.status === 403 && (r.body.message ?? '').includes(POLICY)) break;
    assert.ok(i < 120, `the policy was not enforced: ${JSON.stringify(r.body)}`);
    await sleep(250);
  }
});

after(async () => {
  try {
    await server?.stop();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

describe("a site operator cannot put a workload on a network that is not the site's", () => {
  test("a pod on the site's own networks is admitted, in each short form", async () => {
    for (const [name, value] of [
      ['own-dds', 'dds'],
      ['own-both', `dds@net1, ${NS}/cam@net2`],
    ] as const) {
      const r = await createPod(pod(name, { [NETWORKS]: value }));
      assert.equal(r.status, 201, `${value}: ${JSON.stringify(r.body)}`);
    }
    assert.equal((await createPod(pod('plain'))).status, 201, 'a pod with no secondary network');
  });

  test("the robots' management LAN (a NAD of another namespace) is refused", async () => {
    assertRefusedByPolicy(
      await createPod(pod('foreign', FOREIGN)),
      /may attach only the site's own networks \(dds, cam\)/,
    );
  });

  test('every other spelling that reaches another network is refused', async () => {
    for (const value of [
      'robots-lan', // a NAD of that name in the site's namespace
      'dds,kube-system/robots-lan', // a foreign network after an allowed one
      'default/dds', // the same name in another namespace
      '[{"name":"dds","ips":["10.20.0.11/24"]}]', // the JSON form, which asks for an address
      '[{"name":"dds","namespace":"kube-system"}]',
    ])
      assertRefusedByPolicy(await createPod(pod('spelling', { [NETWORKS]: value })), /site's own networks/);
  });

  test('replacing the cluster network, or using the host network, is refused', async () => {
    assertRefusedByPolicy(
      await createPod(pod('default-net', { 'v1.multus-cni.io/default-network': 'kube-system/robots-lan' })),
      /may not replace their cluster network/,
    );
    const host = await createPod(pod('host', {}, { hostNetwork: true }));
    assert.equal(host.status, 403, JSON.stringify(host.body));
    assert.match(host.body.message ?? '', /host/);
    // The policy refuses it on its own, whatever Pod Security level the namespace enforces.
    assert.match(host.body.message ?? '', new RegExp(`${POLICY}|hostNetwork`));
  });

  test('a privileged or NET_ADMIN container is refused', async () => {
    const netAdmin = pod('net-admin');
    (netAdmin.spec.containers[0] as Record<string, unknown>).securityContext = {
      capabilities: { add: ['NET_ADMIN'] },
    };
    const r = await createPod(netAdmin);
    assert.equal(r.status, 403, JSON.stringify(r.body));
  });

  test("a workload's pod template is checked too, and so is the admin (the controllers' pods)", async () => {
    const deployment = (name: string, annotations: Record<string, string>) => ({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name },
      spec: {
        selector: { matchLabels: { app: name } },
        template: {
          metadata: { labels: { app: name }, annotations },
          spec: { containers: [{ name: 'c', image: 'registry.invalid/ros:jazzy' }] },
        },
      },
    });
    const path = `/apis/apps/v1/namespaces/${NS}/deployments`;
    assertRefusedByPolicy(
      await call('POST', path, deployment('bad', FOREIGN), OPERATOR),
      /site's own networks/,
    );
    const cron = {
      apiVersion: 'batch/v1',
      kind: 'CronJob',
      metadata: { name: 'bad-cron' },
      spec: {
        schedule: '*/5 * * * *',
        jobTemplate: {
          spec: {
            template: {
              metadata: { annotations: FOREIGN },
              spec: { restartPolicy: 'Never', containers: [{ name: 'c', image: 'registry.invalid/x' }] },
            },
          },
        },
      },
    };
    assertRefusedByPolicy(
      await call('POST', `/apis/batch/v1/namespaces/${NS}/cronjobs`, cron, OPERATOR),
      /site's own networks/,
    );
    const ok = await call('POST', path, deployment('good', { [NETWORKS]: 'dds@net1' }), OPERATOR);
    assert.equal(ok.status, 201, JSON.stringify(ok.body));
    // A controller creates the pods of a Deployment: the policy matches pods whoever creates them.
    assertRefusedByPolicy(await createPod(pod('as-admin', FOREIGN), null), /site's own networks/);
  });

  test("a running pod's annotation cannot be changed to a foreign network", async () => {
    const r = await call(
      'PATCH',
      `/api/v1/namespaces/${NS}/pods/plain`,
      { metadata: { annotations: FOREIGN } },
      OPERATOR,
      'application/merge-patch+json',
    );
    assertRefusedByPolicy(r, /site's own networks/);
  });

  test('the operator may not write NADs or Endpoints (RBAC), nor claim a robot address for a Service', async () => {
    const nad = await call(
      'POST',
      `/apis/k8s.cni.cncf.io/v1/namespaces/${NS}/network-attachment-definitions`,
      {
        apiVersion: 'k8s.cni.cncf.io/v1',
        kind: 'NetworkAttachmentDefinition',
        metadata: { name: 'robots-lan' },
        spec: { config: JSON.stringify({ cniVersion: '1.0.0', type: 'ipvlan', master: 'wlan0' }) },
      },
      OPERATOR,
    );
    assert.equal(nad.status, 403, JSON.stringify(nad.body));
    assert.match(nad.body.message ?? '', /cannot create resource "network-attachment-definitions"/);
    const dds = await call(
      'PATCH',
      `/apis/k8s.cni.cncf.io/v1/namespaces/${NS}/network-attachment-definitions/dds`,
      { spec: { config: '{}' } },
      OPERATOR,
      'application/merge-patch+json',
    );
    assert.equal(dds.status, 403, JSON.stringify(dds.body));
    const endpoints = await call(
      'POST',
      `/api/v1/namespaces/${NS}/endpoints`,
      {
        apiVersion: 'v1',
        kind: 'Endpoints',
        metadata: { name: 'kubelet' },
        subsets: [{ addresses: [{ ip: '10.20.0.11' }], ports: [{ port: 10250 }] }],
      },
      OPERATOR,
    );
    assert.equal(endpoints.status, 403, JSON.stringify(endpoints.body));
    assert.match(endpoints.body.message ?? '', /cannot create resource "endpoints"/);
    const service = await call(
      'POST',
      `/api/v1/namespaces/${NS}/services`,
      {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: 'mitm' },
        spec: { ports: [{ port: 6443 }], externalIPs: ['10.20.0.11'] },
      },
      OPERATOR,
    );
    assertRefusedByPolicy(service, /may not set externalIPs/);
    const plain = await call(
      'POST',
      `/api/v1/namespaces/${NS}/services`,
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 'ok' }, spec: { ports: [{ port: 80 }] } },
      OPERATOR,
    );
    assert.equal(plain.status, 201, JSON.stringify(plain.body));
  });
});
