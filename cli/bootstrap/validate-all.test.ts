/**
 * `inventory validate` finds every problem in one run: a schema error does not hide the
 * cross-field, CIDR, key-file or duplicate-name errors of the same file, and it refuses what a
 * later command (bootstrap, the API server, kubelet) would refuse.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { stringify } from 'yaml';
import { ConfigError } from '../../agent/errors.ts';
import { loadInventory } from './inventory-files.ts';
import { testPrivateKey } from './testing/test-key.ts';

const dir = mkdtempSync(join(tmpdir(), 'edgectl-validate-all-'));
after(() => rmSync(dir, { recursive: true, force: true }));
writeFileSync(join(dir, 'agent.mjs'), 'export {};\n');
writeFileSync(join(dir, 'node'), 'not really node\n');
writeFileSync(join(dir, 'id'), testPrivateKey(), { mode: 0o600 });

function problemsOf(doc: unknown): string[] {
  const path = join(dir, `inv-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(path, stringify(doc));
  try {
    loadInventory(path, { HOME: dir });
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    return [...e.problems];
  }
  assert.fail('expected a ConfigError');
}

const robot = (name: string, address: string, extra: Record<string, unknown> = {}) => ({
  name,
  address,
  ssh: { user: 'edgectl', keyFile: 'id' },
  ...extra,
});

test('one inventory with one error of each layer reports all of them in one run', () => {
  const problems = problemsOf({
    // schema: an unknown top-level field, and an unknown field on a robot
    colour: 'blue',
    site: {
      id: 'lab',
      // site schema: an unknown field; site cross-field: a CIDR with host bits set
      flavour: 'x',
      networks: [{ name: 'dds', master: 'eth1', range: '192.168.50.7/24' }],
    },
    robots: [
      robot('r1', '10.0.0.1', { serverCapable: true, colour: 'red' }),
      // duplicate name (the robot before it has an unknown field)
      robot('r1', '10.0.0.2', { serverCapable: true }),
      // key file: missing
      robot('r3', '10.0.0.3', { ssh: { user: 'edgectl', keyFile: 'missing-key' } }),
      // schema: no name at all (the robots after it keep their indexes)
      { address: '10.0.0.4', ssh: { user: 'edgectl', keyFile: 'id' } },
      // cross-field: sudo none for a user that is not root
      robot('r5', '10.0.0.5', { sudo: 'none' }),
    ],
    bundle: { agent: 'agent.mjs', node: 'node' },
    // cross-field: a voter that is not server-capable
    voters: ['r1', 'r3'],
  }).join('\n');
  for (const want of [
    /\(top level\): unknown field\(s\) colour/,
    /robots\[0\]: unknown field\(s\) colour/,
    /robots\[3\]\.name: missing/,
    /site: unknown field\(s\) flavour/,
    /site\.networks\[0\]\.range: "192\.168\.50\.7\/24" has host bits set/,
    /robots\[1\]\.name: r1 is also robots\[0\]\.name/,
    /robots\[4\]\.sudo: edgectl is not root and sudo is none/,
    /voters\[1\]: r3 is not server-capable: set robots\[2\]\.serverCapable/,
    /robots\[2\]\.ssh\.keyFile: .*missing-key does not exist/,
  ])
    assert.match(problems, want);
});

test('a site network that fails its schema still gets its CIDR checks, at its own index', () => {
  const problems = problemsOf({
    site: {
      id: 'lab',
      networks: [
        { master: 'eth1', range: '192.168.60.0/24' }, // no name: unrecoverable
        { name: 'b', master: 'eth1', range: '10.42.1.0/24', colour: 'red' }, // unknown field + inside k3s's pods
      ],
    },
    robots: [robot('r1', '10.0.0.1', { serverCapable: true })],
    bundle: { agent: 'agent.mjs', node: 'node' },
  }).join('\n');
  assert.match(problems, /site\.networks\[0\]\.name/);
  assert.match(problems, /site\.networks\[1\]: unknown field\(s\) colour/);
  assert.match(problems, /site\.networks\[1\]\.range: 10\.42\.1\.0\/24 overlaps 10\.42\.0\.0\/16/);
});

const valid = (over: Record<string, unknown> = {}, site: Record<string, unknown> = {}) => ({
  site: { id: 'lab', ...site },
  robots: [robot('r1', '10.0.0.1', { serverCapable: true }), robot('r2', '10.0.0.2')],
  bundle: { agent: 'agent.mjs', node: 'node' },
  ...over,
});

test('site specs the API server would refuse fail validation, each naming the field', () => {
  const problems = problemsOf(
    valid(
      {},
      {
        name: 'x'.repeat(300 * 1024),
        quota: {
          hard: {
            pods: '-5',
            'request.cpu': '1',
            bananas: '3',
            secrets: '2.5',
            'requests.memory': '4Gi',
            'count/deployments.apps': '10',
          },
        },
        limits: { container: { default: { cpu: '-1' } } },
      },
    ),
  ).join('\n');
  assert.match(problems, /site\.quota\.hard\.pods: -5 is negative/);
  assert.match(
    problems,
    /site\.quota\.hard\.request\.cpu: .*not a resource the API server knows.*requests\.cpu/,
  );
  assert.match(problems, /site\.quota\.hard\.bananas: .*not a resource the API server knows/);
  assert.match(problems, /site\.quota\.hard\.secrets: 2\.5 .*whole number/);
  assert.match(problems, /site\.name: .*262144 bytes/);
  assert.match(problems, /site\.limits\.container\.default\.cpu: -1 is negative/);
  assert.doesNotMatch(problems, /quota\.hard\.(requests\.memory|count\/deployments)/);
});

test('robot labels in the kubernetes.io and k8s.io namespaces that kubelet refuses fail validation', () => {
  const problems = problemsOf(
    valid({
      robots: [
        robot('r1', '10.0.0.1', {
          serverCapable: true,
          labels: {
            'kubernetes.io/role': 'x',
            'node-role.kubernetes.io/worker': 'true',
            'sub.k8s.io/thing': 'y',
            // allowed: kubelet's own namespaces and its listed labels
            'node.kubernetes.io/instance-type': 'amr',
            'topology.kubernetes.io/zone': 'dock',
            'feature.node.kubernetes.io/gpu': 'true',
            'robot.edgectl.io/kind': 'amr',
          },
        }),
      ],
    }),
  ).join('\n');
  assert.match(problems, /robots\[0\]\.labels\.kubernetes\.io\/role: kubelet refuses/);
  assert.match(problems, /robots\[0\]\.labels\.node-role\.kubernetes\.io\/worker: kubelet refuses/);
  assert.match(problems, /robots\[0\]\.labels\.sub\.k8s\.io\/thing: kubelet refuses/);
  assert.doesNotMatch(problems, /labels\.(node\.kubernetes|topology|feature\.node|robot\.edgectl)/);
});

test('network sanity: robot addresses that cannot be a robot, inside a pod pool, and special pod ranges', () => {
  const problems = problemsOf(
    valid(
      {
        robots: [
          robot('r1', '127.0.0.1', { serverCapable: true }),
          robot('r2', '0.0.0.0'),
          robot('r3', '255.255.255.255'),
          robot('r4', '192.168.50.20'),
          robot('r5', '10.42.0.9'),
          robot('r6', '192.168.50.1'), // the excluded gateway: fine
        ],
      },
      {
        networks: [
          {
            name: 'dds',
            master: 'eth1',
            range: '192.168.50.0/24',
            gateway: '192.168.50.1',
            exclude: ['192.168.50.1'],
          },
          { name: 'lo', master: 'eth1', range: '127.1.0.0/24' },
          { name: 'mc', master: 'eth1', range: '239.1.0.0/24' },
          { name: 'll', master: 'eth1', range: '169.254.10.0/24' },
        ],
      },
    ),
  ).join('\n');
  assert.match(problems, /robots\[0\]\.address: 127\.0\.0\.1 is a loopback address/);
  assert.match(problems, /robots\[1\]\.address: 0\.0\.0\.0 /);
  assert.match(problems, /robots\[2\]\.address: 255\.255\.255\.255 /);
  assert.match(
    problems,
    /robots\[3\]\.address: 192\.168\.50\.20 is in the pool of site\.networks\[0\] \(dds\)/,
  );
  assert.match(problems, /robots\[4\]\.address: 10\.42\.0\.9 .*10\.42\.0\.0\/16/);
  assert.doesNotMatch(problems, /robots\[5\]/);
  assert.match(problems, /site\.networks\[1\]\.range: 127\.1\.0\.0\/24 .*loopback/);
  assert.match(problems, /site\.networks\[2\]\.range: 239\.1\.0\.0\/24 .*multicast/);
  assert.match(problems, /site\.networks\[3\]\.range: 169\.254\.10\.0\/24 .*link-local/);
});

test("the agents' own checks (timing) and k3s's run beside the inventory's, not after them", () => {
  const problems = problemsOf(
    valid({
      robots: [robot('r1', '10.0.0.1', { serverCapable: true }), robot('r1', '10.0.0.2')],
      timing: { heartbeatMs: 5000 },
    }),
  ).join('\n');
  assert.match(problems, /robots\[1\]\.name: r1 is also robots\[0\]\.name/);
  assert.match(problems, /agent config: timing \(profile fleet \+ overrides\): electionTimeoutMinMs/);
});
