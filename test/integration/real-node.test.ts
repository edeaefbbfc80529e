/**
 * One real Kubernetes node in a lab robot's namespace, as root: etcd + kube-apiserver +
 * kube-controller-manager + kube-scheduler on the host, containerd + kubelet in the robot's
 * namespace (lab/node/real-node.ts), and the site's addons (templates/site: the Multus and
 * Whereabouts DaemonSets) from the locally built images the node imported; they must run on the
 * node and install Multus, Whereabouts and the reference plugins. The NAD is what the leader renders for a site network
 * (renderCniConfig), with macvlan on the robot's interface because this kernel has no ipvlan. A
 * scheduled pod that asks for it must run with a second interface whose address Whereabouts took
 * from the range (read from inside the pod's network namespace), must keep running untouched when
 * the node's kubelet re-joins (as on a leader change), and deleting the pod must free the address.
 * Stopping the node must leave no process, mount namespace or cgroup behind. Builds what it needs
 * on first use (lab/node/build.sh, cached in /var/cache/edgectl). Without root it fails.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { readAddonTemplates, renderSiteAddons, isCrd } from '../../agent/site/addons.ts';
import { KubeObjectClient } from '../../agent/site/kube-client.ts';
import type { KubeObject } from '../../agent/site/objects.ts';
import { renderCniConfig } from '../../agent/site/render.ts';
import { siteNetworkSchema } from '../../agent/site/spec.ts';
import { cidrContains, parseCidr, parseIpv4 } from '../../agent/site/ipv4.ts';
import {
  createApiServerIdentity,
  startApiServer,
  type ApiServerHandle,
} from '../../lab/kube-apiserver/apiserver.ts';
import { createSite, destroySite, requireRoot } from '../../lab/netns.ts';
import { startControllers, type ControllersHandle } from '../../lab/node/controllers.ts';
import { addonFilesMissing, addonsRunning, observeAddonPods } from '../../lab/node/addons.ts';
import { KubeHttp } from '../../lab/runtime/kube-http.ts';
import {
  labAddonImages,
  realNodeBundle,
  startRealNode,
  type RealNodeHandle,
} from '../../lab/node/real-node.ts';

const PREFIX = 'ernd-';
const SUBNET = '10.77.61';
const SITE = 'rn';
const NAMESPACE = 'site-rn';
const CGROUP_PREFIX = 'edgectl-it-rn-';

const cleanups: (() => Promise<unknown> | unknown)[] = [];
after(async () => {
  for (const c of cleanups.reverse())
    await Promise.resolve()
      .then(c)
      .catch((e) => console.error(e));
});

/** waitFor polls `probe` until it returns a value; fails with `what` and the last state. */
async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, limitMs = 180_000): Promise<T> {
  const deadline = performance.now() + limitMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    if (performance.now() > deadline) assert.fail(`${what} never happened (last error: ${String(last)})`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

const ipv4In = (range: string, ip: string): boolean => {
  const c = parseCidr(range);
  const a = parseIpv4(ip);
  return c.ok && a !== null && cidrContains(c.cidr, a);
};

/** The IPv4 addresses of an interface, read from inside a process's network namespace. */
function addressesIn(pid: number, ifname: string): string[] {
  const out = execFileSync(
    'nsenter',
    ['-t', String(pid), '-n', 'ip', '-4', '-o', 'addr', 'show', 'dev', ifname],
    {
      encoding: 'utf8',
    },
  );
  return [...out.matchAll(/inet (\d+\.\d+\.\d+\.\d+)\//g)].map((m) => m[1]!);
}

/** Every address some Whereabouts IPPool has allocated, with the pod it names. */
async function allocated(client: KubeObjectClient): Promise<string[]> {
  const pools = await client.list('whereabouts.cni.cncf.io/v1alpha1', 'IPPool');
  return pools.flatMap((p) =>
    Object.values(
      (p as { spec?: { allocations?: Record<string, { podref?: string }> } }).spec?.allocations ?? {},
    ).map((a) => a.podref ?? ''),
  );
}

test('a real node in a lab namespace runs a pod with a Whereabouts address on the site network, and frees it', async () => {
  requireRoot('the real-node integration test');
  const bundle = realNodeBundle();
  const dir = mkdtempSync(join(tmpdir(), 'edgectl-rn-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));

  const site = createSite(PREFIX, SUBNET, ['r1']);
  cleanups.push(() => destroySite(PREFIX));
  const robot = site.robots[0]!;

  const identity = await createApiServerIdentity(join(dir, 'identity'), {
    sans: [site.hostAddress],
    nodes: ['r1'],
    podServiceAccounts: true,
  });
  const server: ApiServerHandle = await startApiServer({
    identity,
    dir: join(dir, 'server'),
    bindAddress: site.hostAddress,
  });
  cleanups.push(() => server.stop());
  const controllers: ControllersHandle = await startControllers({
    url: server.url,
    identity,
    dir: join(dir, 'cp'),
    bundle,
  });
  cleanups.push(() => controllers.stop());

  const client = new KubeObjectClient(server.kubeConfig());
  // The addons the leader installs (templates/: CRDs, then Multus and Whereabouts) with the lab's
  // images, and the reconciler schedule the site render writes.
  const addons = renderSiteAddons(readAddonTemplates(), {
    site: SITE,
    epoch: 1,
    images: labAddonImages(bundle),
  });
  const crds = addons.filter(isCrd);
  for (const o of crds) await client.apply(o);
  for (const crd of crds)
    await waitFor(`CRD ${crd.metadata.name} Established`, async () => {
      const got = (await client.get({
        apiVersion: crd.apiVersion,
        kind: crd.kind,
        name: crd.metadata.name,
      })) as {
        status?: { conditions?: { type: string; status: string }[] };
      } | null;
      return got?.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True')
        ? true
        : undefined;
    });

  for (const o of addons.filter((x) => !isCrd(x))) await client.apply(o);
  await client.apply({
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: 'whereabouts-config', namespace: 'kube-system' },
    data: { 'cron-expression': '*/5 * * * *' },
  } as KubeObject);

  const node: RealNodeHandle = await startRealNode({
    name: 'r1',
    netns: robot.netns,
    address: robot.address,
    podCidr: '10.244.1.0/24',
    dir: join(dir, 'r1'),
    apiServer: {
      url: server.url,
      caPem: server.caPem,
      token: identity.nodeTokens['r1']!,
    },
    bundle,
    cgroupPrefix: CGROUP_PREFIX,
  });
  let nodeStopped = false;
  cleanups.push(() => (nodeStopped ? undefined : node.stop({ fast: true })));

  await waitFor('node r1 Ready', async () => {
    const n = (await client.get({ apiVersion: 'v1', kind: 'Node', name: 'r1' })) as {
      status?: { conditions?: { type: string; status: string }[] };
    } | null;
    return n?.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ? true : undefined;
  });

  // The addon DaemonSets run on the node from the imported images; until Multus has written its
  // config, a pod would get the pod network alone.
  const admin = new KubeHttp({
    server: server.url,
    caPem: server.caPem,
    token: identity.adminToken,
    timeoutMs: 5000,
  });
  await waitFor('Multus and Whereabouts running on r1', async () =>
    addonsRunning(await observeAddonPods(admin), ['r1']).ok ? true : undefined,
  );
  await waitFor('the DaemonSets installed the plugins and their configs on r1', async () =>
    addonFilesMissing(join(dir, 'r1')).length === 0 ? true : undefined,
  );

  // The site network as the leader renders it, on the robot's interface.
  const range = `${SUBNET}.0/24`;
  const network = siteNetworkSchema.parse({
    name: 'site',
    type: 'macvlan',
    master: 'eth0',
    range,
    rangeStart: `${SUBNET}.100`,
    rangeEnd: `${SUBNET}.120`,
  });
  const nad: KubeObject = {
    apiVersion: 'k8s.cni.cncf.io/v1',
    kind: 'NetworkAttachmentDefinition',
    metadata: { name: 'site', namespace: NAMESPACE },
    spec: { config: JSON.stringify(renderCniConfig(SITE, network)) },
  };
  await client.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NAMESPACE } });
  await client.apply(nad);

  const podRef = { apiVersion: 'v1', kind: 'Pod', name: 'demo', namespace: NAMESPACE };
  await client.apply({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'demo', namespace: NAMESPACE, annotations: { 'k8s.v1.cni.cncf.io/networks': 'site' } },
    spec: {
      terminationGracePeriodSeconds: 1,
      containers: [
        {
          name: 'demo',
          image: bundle.demoImage,
          imagePullPolicy: 'Never',
          env: [{ name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } }],
        },
      ],
    },
  } as KubeObject);

  type PodView = {
    metadata: { uid: string };
    spec?: { nodeName?: string };
    status?: {
      phase?: string;
      containerStatuses?: { containerID?: string; ready?: boolean; restartCount?: number }[];
    };
  };
  const pod = await waitFor('pod demo Running', async () => {
    const p = (await client.get(podRef)) as PodView | null;
    return p?.status?.phase === 'Running' && p.status.containerStatuses?.[0]?.containerID ? p : undefined;
  }).catch(async (e: Error) => {
    // Why it did not run (a sandbox's CNI error, say) is in the pod's events: say it.
    const events = (await admin.ok('GET', `/api/v1/namespaces/${NAMESPACE}/events`)) as {
      items: { reason?: string; message?: string }[];
    };
    throw new Error(
      `${e.message}; events: ${events.items.map((x) => `${x.reason}: ${x.message}`).join(' | ')}`,
      {
        cause: e,
      },
    );
  });
  assert.equal(pod.spec?.nodeName, 'r1', 'the scheduler put the pod on the real node');

  const pid = await node.taskPid(pod.status!.containerStatuses![0]!.containerID!);
  const siteAddrs = addressesIn(pid, 'net1');
  assert.equal(siteAddrs.length, 1, `net1 has one IPv4 address: ${siteAddrs.join(', ')}`);
  const siteIp = siteAddrs[0]!;
  assert.ok(ipv4In(range, siteIp), `${siteIp} is in ${range}`);
  const last = Number(siteIp.split('.')[3]);
  assert.ok(last >= 100 && last <= 120, `${siteIp} is within range_start..range_end`);
  assert.ok(
    addressesIn(pid, 'eth0').every((a) => ipv4In('10.244.1.0/24', a)),
    'eth0 is on the node pod network',
  );
  assert.deepEqual(
    await allocated(client),
    [`${NAMESPACE}/demo`],
    'Whereabouts holds the address for the pod',
  );
  // The locally built demo image runs and reports itself (asked from inside the pod's namespace).
  // Running means started, not yet listening: ask until it answers.
  const answer = await waitFor('the demo answers', async () =>
    execFileSync(
      'nsenter',
      ['-t', String(pid), '-n', 'curl', '-sS', '--max-time', '5', `http://${siteIp}:8080/`],
      {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    ),
  );
  assert.equal(answer, `pod=demo site=${siteIp}\n`);

  // A leader change re-points the node's kubelet at the new server: the running container must not
  // notice (same pod, same container and process, no restart, same site address).
  await node.rejoin({
    url: server.url,
    caPem: server.caPem,
    token: identity.nodeTokens['r1']!,
  });
  const rejoinedAt = Date.now();
  await waitFor('the new kubelet renews the node Lease', async () => {
    const lease = (await client.get({
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      name: 'r1',
      namespace: 'kube-node-lease',
    })) as { spec?: { renewTime?: string } } | null;
    const renewed = lease?.spec?.renewTime;
    return renewed && Date.parse(renewed) > rejoinedAt ? true : undefined;
  });
  const containerId = pod.status!.containerStatuses![0]!.containerID!;
  const still = (await client.get(podRef)) as PodView | null;
  assert.equal(still?.metadata.uid, pod.metadata.uid);
  assert.equal(still?.status?.phase, 'Running');
  assert.equal(still?.status?.containerStatuses?.[0]?.containerID, containerId);
  assert.equal(still?.status?.containerStatuses?.[0]?.restartCount, 0);
  assert.equal(await node.taskPid(containerId), pid, 'the same process runs');
  assert.deepEqual(addressesIn(pid, 'net1'), [siteIp]);

  assert.equal(await client.delete(podRef), true);
  await waitFor('pod demo gone', async () => ((await client.get(podRef)) === null ? true : undefined));
  await waitFor('the address freed', async () => ((await allocated(client)).length === 0 ? true : undefined));

  const nodeMountNs = readlinkSync(`/proc/${node.holderPid}/ns/mnt`);
  nodeStopped = true;
  await node.stop({ clean: true });
  const stillInNodeNs = readdirSync('/proc').filter((e) => {
    try {
      return /^\d+$/.test(e) && readlinkSync(`/proc/${e}/ns/mnt`) === nodeMountNs;
    } catch {
      return false; // exited meanwhile
    }
  });
  assert.deepEqual(stillInNodeNs, [], "no process is left in the node's mount namespace");
  const cgroupLeft = readdirSync('/sys/fs/cgroup').filter((h) =>
    existsSync(join('/sys/fs/cgroup', h, node.cgroupRoot)),
  );
  assert.deepEqual(cgroupLeft, [], 'no cgroup of the node is left');
  assert.equal(existsSync(`/proc/${node.holderPid}`), false, 'the holder is gone');
});
