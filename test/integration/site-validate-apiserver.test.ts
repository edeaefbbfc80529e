/**
 * The site validator against a REAL kube-apiserver: for each spec below, validateSiteSpec refuses
 * it exactly when the API server refuses the namespace, quota or limit range the leader would
 * apply (with its network policies and RBAC), or a plain pod in that namespace afterwards (a limit range the server stores can still
 * make every pod fail). Specs pass the schema only, so their objects can be rendered and sent.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { EdgeError } from '../../agent/errors.ts';
import { KubeObjectClient } from '../../agent/site/kube-client.ts';
import { renderSite } from '../../agent/site/render.ts';
import { siteSpecSchema, type SiteSpecInput } from '../../agent/site/spec.ts';
import { validateSiteSpec } from '../../agent/site/validate.ts';
import {
  createApiServerIdentity,
  startApiServer,
  type ApiServerHandle,
} from '../../lab/kube-apiserver/apiserver.ts';

const dir = mkdtempSync(join(tmpdir(), 'edgectl-site-validate-'));
let server: ApiServerHandle | undefined;
let client: KubeObjectClient;
before(async () => {
  const identity = await createApiServerIdentity(join(dir, 'identity'), { sans: [], nodes: [] });
  server = await startApiServer({ identity, dir: join(dir, 'server') });
  client = new KubeObjectClient(server.kubeConfig());
});
after(async () => {
  try {
    await server?.stop();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const quota = (hard: Record<string, string>): Partial<SiteSpecInput> => ({ quota: { hard } });
const limits = (container: Record<string, Record<string, string>>): Partial<SiteSpecInput> => ({
  limits: { container },
});

const CASES: readonly [string, Partial<SiteSpecInput>][] = [
  ['the defaults', {}],
  ['a negative pod count', quota({ pods: '-5' })],
  ['a negative cpu request', quota({ 'requests.cpu': '-1' })],
  ['request.cpu (for requests.cpu)', quota({ 'request.cpu': '1' })],
  ['an unknown resource', quota({ bananas: '3' })],
  ['a fraction of a secret', quota({ secrets: '2.5' })],
  ['pods in millis', quota({ pods: '500m' })],
  ['object counts', quota({ 'count/deployments.apps': '10', 'requests.storage': '100Gi' })],
  ['a fraction of an object count', quota({ 'count/deployments.apps': '1.5' })],
  ['an extended resource request', quota({ 'requests.nvidia.com/gpu': '2' })],
  ['huge pages', quota({ 'hugepages-2Mi': '1Gi', 'requests.hugepages-1Gi': '2Gi' })],
  ['a name with two slashes', quota({ 'a/b/c': '1' })],
  ['a memory quota in bytes with a fraction', quota({ 'requests.memory': '1.5Gi' })],
  ['a negative default cpu', limits({ default: { cpu: '-1' }, defaultRequest: { cpu: '-2' } })],
  ['a zero minimum', limits({ min: { memory: '0' } })],
  [
    'named ports',
    {
      networkPolicy: { egress: [{ cidrs: ['10.1.0.0/16'], ports: [{ port: 'http' }, { port: 'dns-tcp' }] }] },
    },
  ],
  [
    'a port name of digits',
    { networkPolicy: { egress: [{ cidrs: ['10.1.0.0/16'], ports: [{ port: '8080' }] }] } },
  ],
  [
    'a port name with --',
    { networkPolicy: { egress: [{ cidrs: ['10.1.0.0/16'], ports: [{ port: 'a--b' }] }] } },
  ],
  [
    'a port name ending in -',
    { networkPolicy: { ingress: [{ cidrs: ['10.1.0.0/16'], ports: [{ port: 'web-' }] }] } },
  ],
  ['service accounts', { operators: { serviceAccounts: ['ci/deployer', 'gitops/flux.reconciler'] } }],
  ['a service account name starting with -', { operators: { serviceAccounts: ['ci/-deployer'] } }],
  ['a service account name with ..', { operators: { serviceAccounts: ['ci/a..b'] } }],
  ['a 200 KB display name', { name: 'n'.repeat(200 * 1024) }],
  ['a 300 KB display name', { name: 'n'.repeat(300 * 1024) }],
];

async function serverRefuses(
  objects: readonly Parameters<KubeObjectClient['apply']>[0][],
): Promise<string | null> {
  for (const o of objects) {
    try {
      await client.apply(o);
    } catch (e) {
      if (e instanceof EdgeError && /HTTP (400|422)/.test(e.message)) return e.message;
      throw e;
    }
  }
  return null;
}

/**
 * Specs the server stores but that can never work: the validator refuses them on purpose, and the
 * server's acceptance is checked too, so the difference stays known.
 */
const STRICTER: readonly [string, Partial<SiteSpecInput>, string][] = [
  [
    'a service account namespace ending in -',
    { operators: { serviceAccounts: ['ci-/deployer'] } },
    'no namespace can have that name, so the binding never grants anything',
  ],
];

STRICTER.forEach(([what, over, why], i) =>
  test(`validate refuses what the API server stores but cannot work: ${what} (${why})`, async () => {
    const spec = siteSpecSchema.parse({ id: `s${i}`, ...over });
    const objects = renderSite(spec, { epoch: 1 }).filter((o) =>
      ['Namespace', 'Role', 'RoleBinding'].includes(o.kind),
    );
    assert.equal(await serverRefuses(objects), null, 'the server stores it');
    assert.notDeepEqual(validateSiteSpec(spec), [], 'the validator refuses it');
  }),
);

CASES.forEach(([what, over], i) =>
  test(`validate and the API server agree: ${what}`, async () => {
    const spec = siteSpecSchema.parse({ id: `v${i}`, ...over });
    const objects = renderSite(spec, { epoch: 1 }).filter((o) =>
      ['Namespace', 'ResourceQuota', 'LimitRange', 'NetworkPolicy', 'Role', 'RoleBinding'].includes(o.kind),
    );
    // A pod with no resources of its own: the LimitRanger admission fills in the site's defaults,
    // so a limit range the server stored but no pod can satisfy shows here.
    const probe = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'probe', namespace: objects.find((o) => o.kind === 'Namespace')!.metadata.name },
      spec: { containers: [{ name: 'c', image: 'registry.invalid/probe' }] },
    };
    const refusedBy = await serverRefuses([...objects, probe]);
    const problems = validateSiteSpec(spec);
    assert.equal(
      problems.length > 0,
      refusedBy !== null,
      `validator: ${JSON.stringify(problems)}; server: ${refusedBy ?? 'accepted'}`,
    );
  }),
);
