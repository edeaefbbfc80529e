import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { validateAgentConfig } from '../../agent/config.ts';
import { ConfigError } from '../../agent/errors.ts';
import { checkInventoryFiles, readInventoryFile, resolveInventoryPaths } from './inventory-files.ts';
import { parseInventory, renderAgentConfig, seedRobots } from './inventory.ts';
import { testPrivateKey } from './testing/test-key.ts';

const example = fileURLToPath(new URL('../../templates/inventory/site.example.yaml', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'edgectl-inventory-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const robot = (name: string, address: string, extra: Record<string, unknown> = {}) => ({
  name,
  address,
  ssh: { user: 'edgectl', keyFile: 'id' },
  ...extra,
});
const minimal = () => ({
  site: { id: 'lab' },
  robots: [
    robot('r1', '10.0.0.1', { serverCapable: true }),
    robot('r2', '10.0.0.2', { serverCapable: true }),
    robot('r3', '10.0.0.3'),
  ],
});

function problemsOf(raw: unknown): string[] {
  try {
    parseInventory(raw, 'site.yaml');
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    return [...e.problems];
  }
  assert.fail('expected a ConfigError');
}

test('the shipped example inventory is valid, and every robot gets a valid agent config', () => {
  const inv = readInventoryFile(example);
  assert.equal(inv.site.id, 'dock-a');
  assert.deepEqual(inv.voters, ['spot-1', 'spot-2', 'amr-1']);
  for (const r of inv.robots) {
    const c = validateAgentConfig(renderAgentConfig(inv, r.name));
    assert.equal(c.node.id, r.name);
    assert.equal(c.controlPlane.runtime, 'k3s');
  }
});

test('defaults: voters are the server-capable robots, seeds are the other voters', () => {
  const inv = parseInventory(minimal());
  assert.deepEqual(inv.voters, ['r1', 'r2']);
  assert.deepEqual(
    seedRobots(inv, 'r3').map((r) => r.name),
    ['r1', 'r2'],
  );
  assert.deepEqual(
    seedRobots(inv, 'r1').map((r) => r.name),
    ['r2'],
  );
  const c = renderAgentConfig(inv, 'r1');
  assert.deepEqual(c.network?.seeds, [{ node: 'r2', host: '10.0.0.2', port: 7946 }]);
  assert.equal(inv.robots[0]!.sudo, 'nopasswd');
  assert.equal(inv.install.root, '/');
});

test('every problem is reported at once, each naming the field and the fix', () => {
  const raw = {
    site: { id: 'Bad_Id' },
    robots: [
      robot('r1', '10.0.0.1'),
      robot('r1', '10.0.0.1', { ssh: { user: 'edgectl' } }),
      robot('r3', '10.0.0.3', { ssh: { user: 'edgectl', keyFile: 'k', hostKey: 'md5:aa' } }),
    ],
    voters: ['r9'],
    extra: 1,
  };
  const p = problemsOf(raw);
  assert.ok(
    p.some((x) => /^site\.id: must be a DNS label/.test(x)),
    p.join('\n'),
  );
  assert.ok(p.some((x) => /^robots\[2\]\.ssh\.hostKey: must be an OpenSSH SHA256 fingerprint/.test(x)));
  assert.ok(p.some((x) => /^\(top level\): unknown field\(s\) extra: remove/.test(x)));
});

test('cross-field rules: names, addresses, credentials, voters, server-capable robots', () => {
  const raw = {
    site: { id: 'lab' },
    robots: [
      robot('r1', '10.0.0.1'),
      robot('r1', '10.0.0.1', { ssh: { user: 'edgectl' } }),
      robot('r3', '10.0.0.3', { ssh: { user: 'root', agent: true, keyFile: 'k' } }),
    ],
    voters: ['r9', 'r3', 'r3'],
  };
  const p = problemsOf(raw);
  const expect = [
    /^robots\[1\]\.name: r1 is also robots\[0\]\.name: give every robot its own name/,
    /^robots\[1\]\.address: 10\.0\.0\.1:22 is also robots\[0\]'s address/,
    /^robots\[1\]\.ssh: no credentials: set keyFile .* or agent: true/,
    /^robots\[2\]\.ssh: both keyFile and agent are set/,
    /^robots\[2\]\.sudo: ssh\.user is root, so sudo is not needed: set sudo: none/,
    /^robots: no robot is server-capable: set serverCapable: true/,
    /^voters\[0\]: r9 is not a robot of this inventory/,
    /^voters\[1\]: r3 is not server-capable: set robots\[2\]\.serverCapable: true/,
    /^voters\[2\]: r3 is listed twice/,
  ];
  for (const re of expect)
    assert.ok(
      p.some((x) => re.test(x)),
      `${re} not in:\n${p.join('\n')}`,
    );
});

test('more than 7 voters, or 8 server-capable robots and no voters list, are refused', () => {
  const robots = Array.from({ length: 8 }, (_, i) =>
    robot(`r${i}`, `10.0.0.${i + 1}`, { serverCapable: true }),
  );
  assert.match(
    problemsOf({ site: { id: 'lab' }, robots }).join('\n'),
    /8 robots are server-capable but at most 7/,
  );
  assert.match(
    problemsOf({ site: { id: 'lab' }, robots, voters: robots.map((r) => r.name) }).join('\n'),
    /voters: 8 voters, at most 7/,
  );
  assert.deepEqual(parseInventory({ site: { id: 'lab' }, robots, voters: ['r0', 'r1', 'r2'] }).voters, [
    'r0',
    'r1',
    'r2',
  ]);
});

test("a robot's agent config that the agent would refuse is refused in the inventory", () => {
  const p = problemsOf({ ...minimal(), timing: { heartbeatMs: 5000 } });
  assert.ok(
    p.some((x) => /^robots\[0\] \(r1\) agent config: timing/.test(x)),
    p.join('\n'),
  );
});

test('a site spec problem is reported with its path under site', () => {
  const p = problemsOf({
    ...minimal(),
    site: {
      id: 'lab',
      networks: [{ name: 'a', master: 'eth1', range: '10.9.0.0/24', rangeStart: '10.9.1.5' }],
    },
  });
  assert.ok(
    p.some((x) => /^site\.networks\[0\]\.rangeStart: 10\.9\.1\.5 is outside range/.test(x)),
    p.join('\n'),
  );
});

test("a site network stays off the robots' management NIC and never hands out a robot's address", () => {
  const withNetwork = (network: Record<string, unknown>, wifiInterface = 'wlan0') => ({
    ...minimal(),
    site: { id: 'lab', networks: [{ name: 'dds', range: '10.0.0.0/24', ...network }] },
    robots: minimal().robots.map((r) => ({ ...r, wifiInterface })),
  });
  assert.deepEqual(problemsOf(withNetwork({ master: 'wlp1s0', range: '10.1.0.0/24' }, 'wlp1s0')), [
    "site.networks[0].master: wlp1s0 is a management NIC of the robots: pods on dds would share the robots' own LAN and reach their agents, SSH, k3s and kubelet; put the network on its own NIC or VLAN (like wlp1s0.50), or set sharesManagementLan: true to accept that",
  ]);
  const shared = problemsOf(
    withNetwork({ master: 'wlan0', sharesManagementLan: true, rangeStart: '10.0.0.2' }),
  );
  assert.deepEqual(shared, [
    `robots[1].address: 10.0.0.2 is in the pool of site.networks[0] (dds), so Whereabouts could hand the robot's address to a pod: add "10.0.0.2" to its exclude, or move the pool with rangeStart/rangeEnd`,
    `robots[2].address: 10.0.0.3 is in the pool of site.networks[0] (dds), so Whereabouts could hand the robot's address to a pod: add "10.0.0.3" to its exclude, or move the pool with rangeStart/rangeEnd`,
  ]);
  parseInventory(withNetwork({ master: 'wlan0', sharesManagementLan: true, rangeStart: '10.0.0.16' }));
});

test("the site's grace period for a lost robot becomes every agent's membership.lostAfterMs", () => {
  const inv = parseInventory({ ...minimal(), site: { id: 'lab', nodeLoss: { graceSeconds: 90 } } });
  for (const r of ['r1', 'r2', 'r3'])
    assert.equal(validateAgentConfig(renderAgentConfig(inv, r)).membership.lostAfterMs, 90_000);
  assert.equal(
    validateAgentConfig(renderAgentConfig(parseInventory(minimal()), 'r1')).membership.lostAfterMs,
    60_000,
    'the default grace period is 60 s',
  );
  // Shorter than membership takes to call a robot dead: refused in the inventory, naming the field.
  const p = problemsOf({ ...minimal(), site: { id: 'lab', nodeLoss: { graceSeconds: 5 } } });
  assert.ok(
    p.some((x) => x.startsWith('site.nodeLoss.graceSeconds')),
    p.join('\n'),
  );
});

test('mdns off and no seeds leaves robots unable to find each other', () => {
  assert.match(
    problemsOf({ ...minimal(), discovery: { mdns: false, seeds: 'none' } }).join('\n'),
    /discovery: mdns is off and seeds is none/,
  );
});

test('install.root puts each robot in its own tree in the agent config', () => {
  const inv = parseInventory({ ...minimal(), install: { root: '/srv/lab/{robot}', service: 'none' } });
  const c = renderAgentConfig(inv, 'r2');
  assert.equal(c.stateDir, '/srv/lab/r2/var/lib/edgectl');
  assert.equal(c.siteKeyFile, '/srv/lab/r2/etc/edgectl/site-keys.json');
});

test('file checks: missing and world-readable key files, no ssh-agent, missing bundle files', () => {
  const good = join(dir, 'good_key');
  writeFileSync(good, testPrivateKey());
  chmodSync(good, 0o600);
  const open = join(dir, 'open_key');
  writeFileSync(open, testPrivateKey());
  chmodSync(open, 0o644);
  const invPath = join(dir, 'site.yaml');
  const inv = parseInventory({
    site: { id: 'lab' },
    robots: [
      robot('r1', '10.0.0.1', { serverCapable: true, ssh: { user: 'edgectl', keyFile: 'good_key' } }),
      robot('r2', '10.0.0.2', { ssh: { user: 'edgectl', keyFile: 'open_key' } }),
      robot('r3', '10.0.0.3', { ssh: { user: 'edgectl', keyFile: 'missing_key' } }),
      robot('r4', '10.0.0.4', { ssh: { user: 'edgectl', agent: true } }),
    ],
    bundle: { agent: 'nope.mjs', k3s: '/nonexistent/k3s', etcd: good },
  });
  const resolved = resolveInventoryPaths(inv, invPath, '/home/x');
  assert.equal(resolved.keyFiles.get('r1'), good);
  const p = checkInventoryFiles({ inventory: inv, ...resolved }, {});
  const expect = [
    /^robots\[1\]\.ssh\.keyFile: .*open_key is readable by other users: run chmod 600/,
    /^robots\[2\]\.ssh\.keyFile: .*missing_key does not exist: create it with ssh-keygen/,
    /^robots\[3\]\.ssh\.agent: SSH_AUTH_SOCK is not set/,
    /^bundle\.agent: .*nope\.mjs does not exist: run npm run build:agent/,
    /^bundle\.k3s: \/nonexistent\/k3s does not exist/,
    /^bundle\.etcd, bundle\.etcdctl, bundle\.etcdRevisionBump: set all three/,
  ];
  for (const re of expect)
    assert.ok(
      p.some((x) => re.test(x)),
      `${re} not in:\n${p.join('\n')}`,
    );
  assert.equal(p.length, expect.length, p.join('\n'));
});

test('file checks: a chunk the agent imports is missing beside it', () => {
  writeFileSync(join(dir, 'split-agent.mjs'), 'import"./edgectl-agent-HERE.mjs";');
  writeFileSync(
    join(dir, 'edgectl-agent-HERE.mjs'),
    'export const k=()=>import("./edgectl-agent-GONE.mjs");',
  );
  const inv = parseInventory({ ...minimal(), bundle: { agent: 'split-agent.mjs', node: 'split-agent.mjs' } });
  const resolved = resolveInventoryPaths(inv, join(dir, 'site.yaml'), '/home/x');
  const p = checkInventoryFiles({ inventory: inv, ...resolved, keyFiles: new Map() }, {});
  assert.equal(p.length, 1, p.join('\n'));
  assert.match(
    p[0]!,
    /^bundle\.agent: the agent's chunk .*\/edgectl-agent-GONE\.mjs is missing: edgectl-agent-HERE\.mjs imports it: run npm run build:agent/,
  );
  writeFileSync(join(dir, 'edgectl-agent-GONE.mjs'), 'export{};');
  assert.deepEqual(checkInventoryFiles({ inventory: inv, ...resolved, keyFiles: new Map() }, {}), []);
});
