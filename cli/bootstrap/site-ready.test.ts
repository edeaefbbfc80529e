import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parse } from 'yaml';
import type { AgentStatus } from '../../agent/agent.ts';
import { judgeProbe } from './multicast-probe.ts';
import { mergeKubeconfig, siteKubeconfig, siteReadiness } from './site-ready.ts';

const st = (node: string, role: string, term: number, leader: string | null, lifecycle: string) => ({
  status: { node, role, term, leader, lifecycle } as unknown as AgentStatus,
});

test('the site is ready when one leader serves and every robot is a ready worker of its term', () => {
  const robots = ['r1', 'r2', 'r3'];
  assert.deepEqual(
    siteReadiness(robots, {
      r1: st('r1', 'leader', 2, 'r1', 'leading.serving'),
      r2: st('r2', 'follower', 2, 'r1', 'following.ready'),
      r3: st('r3', 'follower', 2, 'r1', 'following.ready'),
    }),
    { ready: true, leader: 'r1', term: 2, waitingFor: [] },
  );
  const waiting = siteReadiness(robots, {
    r1: st('r1', 'leader', 2, 'r1', 'leading.applyingSite'),
    r2: st('r2', 'follower', 1, 'r3', 'following.ready'),
    r3: { error: 'connect ECONNREFUSED 127.0.0.1:7947' },
  });
  assert.equal(waiting.ready, false);
  assert.deepEqual(waiting.waitingFor, [
    'r1 leads term 2; its server is leading.applyingSite',
    'r2: follower in term 1, following.ready',
    'r3: connect ECONNREFUSED 127.0.0.1:7947',
  ]);
  assert.deepEqual(siteReadiness(['r1'], { r1: st('r1', 'follower', 0, null, 'discovering') }).waitingFor, [
    'no robot leads yet',
  ]);
});

const admin = `apiVersion: v1
kind: Config
clusters:
  - name: default
    cluster: { server: https://127.0.0.1:6443, certificate-authority-data: Q0E= }
users:
  - name: default
    user: { client-certificate-data: Q0VSVA==, client-key-data: S0VZ }
contexts:
  - name: default
    context: { cluster: default, user: default }
current-context: default
`;

test("the site's kubeconfig points at the leader and names everything edgectl-<site>", () => {
  const k = parse(
    siteKubeconfig(admin, { site: 'dock-a', server: 'https://10.20.0.12:6443', namespace: 'site-dock-a' }),
  );
  assert.deepEqual(k.clusters, [
    {
      name: 'edgectl-dock-a',
      cluster: { server: 'https://10.20.0.12:6443', 'certificate-authority-data': 'Q0E=' },
    },
  ]);
  assert.deepEqual(k.users, [
    { name: 'edgectl-dock-a', user: { 'client-certificate-data': 'Q0VSVA==', 'client-key-data': 'S0VZ' } },
  ]);
  assert.deepEqual(k.contexts, [
    {
      name: 'edgectl-dock-a',
      context: { cluster: 'edgectl-dock-a', user: 'edgectl-dock-a', namespace: 'site-dock-a' },
    },
  ]);
  assert.equal(k['current-context'], 'edgectl-dock-a');
});

test('merging keeps the user’s other clusters and current context, and replaces the site’s own entries', () => {
  const mine = `apiVersion: v1
kind: Config
clusters: [{ name: prod, cluster: { server: https://prod:6443 } }, { name: edgectl-dock-a, cluster: { server: https://old:6443 } }]
users: [{ name: me, user: { token: x } }]
contexts: [{ name: prod, context: { cluster: prod, user: me } }]
current-context: prod
preferences: {}
`;
  const site = siteKubeconfig(admin, {
    site: 'dock-a',
    server: 'https://10.20.0.12:6443',
    namespace: 'site-dock-a',
  });
  const m = parse(mergeKubeconfig(mine, site));
  assert.deepEqual(
    m.clusters.map((c: { name: string; cluster: { server: string } }) => [c.name, c.cluster.server]),
    [
      ['prod', 'https://prod:6443'],
      ['edgectl-dock-a', 'https://10.20.0.12:6443'],
    ],
  );
  assert.equal(m['current-context'], 'prod');
  assert.deepEqual(m.preferences, {});
  assert.equal(parse(mergeKubeconfig(null, site))['current-context'], 'edgectl-dock-a');
});

test('the multicast probe names the robots that cannot hear each other', () => {
  assert.deepEqual(judgeProbe(['r1', 'r2', 'r3'], { r1: ['r2', 'r3'], r2: ['r1', 'r3'], r3: ['r1', 'r2'] }), {
    ok: true,
    unheard: [],
    failed: [],
  });
  assert.deepEqual(judgeProbe(['r1', 'r2', 'r3'], { r1: ['r2'], r2: ['r1'], r3: { error: 'no node' } }), {
    ok: false,
    unheard: [
      { robot: 'r1', missing: ['r3'] },
      { robot: 'r2', missing: ['r3'] },
    ],
    failed: [{ robot: 'r3', error: 'no node' }],
  });
});
