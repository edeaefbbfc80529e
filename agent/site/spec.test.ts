/** The site spec: defaults, strictness, and every Whereabouts/CIDR rule naming its field and fix. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { ConfigError } from '../errors.ts';
import { loadSiteSpec, parseSiteSpec, siteNamespace, type SiteSpecInput } from './spec.ts';
import { quantityValue, validateCron, cronField } from './validate.ts';

/** problemsOf returns the ConfigError's problems, or [] when the spec is valid. */
function problemsOf(input: unknown, opts?: Parameters<typeof parseSiteSpec>[2]): string[] {
  try {
    parseSiteSpec(input, 'test', opts);
    return [];
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    return [...e.problems];
  }
}

const net = (n: Record<string, unknown>): SiteSpecInput => ({
  id: 'a',
  networks: [
    { name: 'dds', master: 'eth1', range: '192.168.50.0/24', ...n } as SiteSpecInput['networks'] extends
      (infer T)[] | undefined
      ? T
      : never,
  ],
});

/** expectProblem asserts exactly one problem, at `path`, whose text matches `fix`. */
function expectProblem(input: unknown, path: string, fix: RegExp): void {
  const problems = problemsOf(input);
  assert.equal(problems.length, 1, `want one problem, got:\n${problems.join('\n')}`);
  assert.ok(problems[0]!.startsWith(`${path}: `), `want it at ${path}: ${problems[0]}`);
  assert.match(problems[0]!, fix);
}

function expectProblemWith(
  input: unknown,
  management: NonNullable<Parameters<typeof parseSiteSpec>[2]>['management'],
  path: string,
  fix: RegExp,
): void {
  const problems = problemsOf(input, { management });
  assert.equal(problems.length, 1, `want one problem, got:\n${problems.join('\n')}`);
  assert.ok(problems[0]!.startsWith(`${path}: `), `want it at ${path}: ${problems[0]}`);
  assert.match(problems[0]!, fix);
}

describe('site spec schema', () => {
  test('defaults: site-<id>, baseline enforced, restricted warn/audit, 60 s taint, 5-minute reconciler', () => {
    const s = parseSiteSpec({ id: 'dock' });
    assert.equal(siteNamespace(s), 'site-dock');
    assert.deepEqual(s.namespace.podSecurity, {
      enforce: 'baseline',
      warn: 'restricted',
      audit: 'restricted',
      version: 'latest',
    });
    assert.deepEqual(s.nodeLoss, { graceSeconds: 60, action: 'taint' });
    assert.equal(s.whereabouts.reconcilerCron, '*/5 * * * *');
    assert.deepEqual(s.networks, []);
    assert.equal(s.networkPolicy.defaultDeny, true);
    assert.equal(s.operators.networkAttachments, 'read');
  });

  test('a network defaults to ipvlan, not sharing the management LAN, and must name its NIC', () => {
    const s = parseSiteSpec(net({}));
    assert.equal(s.networks[0]!.type, 'ipvlan');
    assert.equal(s.networks[0]!.sharesManagementLan, false);
    assert.deepEqual(s.management, { interfaces: ['wlan0'], cidrs: [] });
    expectProblem(
      { id: 'a', networks: [{ name: 'dds', range: '192.168.50.0/24' }] },
      'networks[0].master',
      /missing: name the robots' NIC or VLAN interface/,
    );
  });

  test('NAD write for operators is no longer offered', () => {
    expectProblem(
      { id: 'a', operators: { networkAttachments: 'write' } },
      'operators.networkAttachments',
      /only read is offered: .*add the network to the site spec/,
    );
  });

  test('podSecurity may be a level, which sets enforce', () => {
    const s = parseSiteSpec({ id: 'a', namespace: { podSecurity: 'restricted' } });
    assert.equal(s.namespace.podSecurity.enforce, 'restricted');
    assert.equal(s.namespace.podSecurity.warn, 'restricted');
  });

  test('unknown fields are refused, each named', () => {
    assert.deepEqual(
      problemsOf({
        id: 'a',
        namespce: {},
        networks: [{ name: 'n', master: 'eth1', range: '10.1.0.0/24', gw: 'x' }],
      }).sort(),
      [
        '(top level): unknown field(s) namespce: remove or fix the spelling',
        'networks[0]: unknown field(s) gw: remove or fix the spelling',
      ],
    );
  });

  test('every schema problem is listed at once', () => {
    const problems = problemsOf({
      id: 'Bad_Id',
      nodeLoss: { graceSeconds: -1, action: 'reboot' },
      quota: { hard: { pods: 'lots' } },
    });
    assert.deepEqual(
      problems.map((p) => p.split(':')[0]),
      ['id', 'quota.hard.pods', 'nodeLoss.graceSeconds', 'nodeLoss.action'],
    );
  });

  test('schema-valid specs report every semantic problem at once, with a path prefix when asked', () => {
    const problems = problemsOf(
      {
        id: 'a',
        whereabouts: { reconcilerCron: '30 4 * * *' },
        networks: [
          { name: 'x', master: 'eth1', range: '10.1.0.0/24', rangeStart: 'nope' },
          { name: 'x', master: 'eth1', range: '10.2.0.0/24' },
        ],
      },
      { pathPrefix: 'site' },
    );
    assert.deepEqual(
      problems.map((p) => p.split(':')[0]),
      ['site.whereabouts.reconcilerCron', 'site.networks[0].rangeStart', 'site.networks[1].name'],
    );
  });

  test('a system namespace is refused', () => {
    expectProblem({ id: 'a', namespace: { name: 'kube-system' } }, 'namespace.name', /system namespace/);
  });
});

describe('Whereabouts range validation', () => {
  test('a valid network passes', () => {
    assert.deepEqual(
      problemsOf(
        net({
          rangeStart: '192.168.50.20',
          rangeEnd: '192.168.50.250',
          gateway: '192.168.50.1',
          exclude: ['192.168.50.100'],
        }),
      ),
      [],
    );
  });

  test('a range that is not a CIDR', () => {
    expectProblem(net({ range: '192.168.50.0' }), 'networks[0].range', /not an IPv4 CIDR: write it like/);
    expectProblem(net({ range: '192.168.500.0/24' }), 'networks[0].range', /not an IPv4 CIDR/);
  });

  test('a range with host bits names the block it means', () => {
    expectProblem(net({ range: '192.168.2.225/28' }), 'networks[0].range', /write 192\.168\.2\.224\/28/);
  });

  test('a /31 or /32 has nothing to hand out', () => {
    expectProblem(net({ range: '192.168.50.0/31' }), 'networks[0].range', /no address to hand out/);
  });

  test("a range overlapping k3s's pod or service network, or a caller's reserved block", () => {
    expectProblem(net({ range: '10.42.7.0/24' }), 'networks[0].range', /pod network/);
    expectProblem(net({ range: '10.43.0.0/24' }), 'networks[0].range', /service network/);
    const problems = problemsOf(net({ range: '192.168.50.0/24' }), {
      reserved: [{ cidr: '192.168.0.0/16', why: "the robots' LAN" }],
    });
    assert.match(problems[0]!, /^networks\[0\]\.range: .*overlaps 192\.168\.0\.0\/16, the robots' LAN/);
  });

  test('rangeStart that does not parse (Whereabouts would silently ignore it)', () => {
    expectProblem(net({ rangeStart: '192.168.50' }), 'networks[0].rangeStart', /not an IPv4 address/);
  });

  test('rangeStart or rangeEnd outside the range', () => {
    expectProblem(
      net({ rangeStart: '192.168.51.20' }),
      'networks[0].rangeStart',
      /outside range .* 192\.168\.50\.1 to 192\.168\.50\.254/,
    );
    expectProblem(net({ rangeEnd: '10.0.0.1' }), 'networks[0].rangeEnd', /outside range/);
  });

  test('rangeStart on the network address, rangeEnd on the broadcast address', () => {
    expectProblem(net({ rangeStart: '192.168.50.0' }), 'networks[0].rangeStart', /network address/);
    expectProblem(net({ rangeEnd: '192.168.50.255' }), 'networks[0].rangeEnd', /broadcast address/);
  });

  test('rangeStart after rangeEnd', () => {
    expectProblem(
      net({ rangeStart: '192.168.50.200', rangeEnd: '192.168.50.100' }),
      'networks[0].rangeEnd',
      /swap them/,
    );
  });

  test('a gateway inside the pool and not excluded', () => {
    expectProblem(
      net({ gateway: '192.168.50.1' }),
      'networks[0].gateway',
      /inside the pool .* add "192\.168\.50\.1" to exclude/,
    );
    // Excluded, or outside the pool: fine.
    assert.deepEqual(problemsOf(net({ gateway: '192.168.50.1', exclude: ['192.168.50.0/30'] })), []);
    assert.deepEqual(problemsOf(net({ gateway: '192.168.50.1', rangeStart: '192.168.50.10' })), []);
  });

  test('a gateway that does not parse, is off the segment, or is the network/broadcast address', () => {
    expectProblem(net({ gateway: 'router' }), 'networks[0].gateway', /not an IPv4 address/);
    expectProblem(net({ gateway: '192.168.51.1' }), 'networks[0].gateway', /outside range/);
    expectProblem(
      net({ gateway: '192.168.50.255', rangeEnd: '192.168.50.200' }),
      'networks[0].gateway',
      /broadcast/,
    );
  });

  test('excludes outside the range, reaching out of it, malformed, or with host bits', () => {
    expectProblem(net({ exclude: ['10.1.1.1'] }), 'networks[0].exclude[0]', /excludes nothing/);
    expectProblem(net({ exclude: ['192.168.48.0/22'] }), 'networks[0].exclude[0]', /reaches outside range/);
    expectProblem(
      net({ exclude: ['192.168.50.x'] }),
      'networks[0].exclude[0]',
      /not an IPv4 address or CIDR/,
    );
    expectProblem(
      net({ exclude: ['192.168.50.229/30'] }),
      'networks[0].exclude[0]',
      /write 192\.168\.50\.228\/30/,
    );
  });

  test('excludes that leave nothing to hand out', () => {
    expectProblem(
      net({
        rangeStart: '192.168.50.10',
        rangeEnd: '192.168.50.12',
        exclude: ['192.168.50.8/30', '192.168.50.12'],
      }),
      'networks[0].exclude',
      /cover the whole pool/,
    );
  });

  test('overlapping ranges between networks, and duplicate names', () => {
    const problems = problemsOf({
      id: 'a',
      networks: [
        { name: 'dds', master: 'eth1', range: '192.168.50.0/24' },
        { name: 'dds', master: 'eth1', range: '192.168.50.128/25' },
        { name: 'cam', master: 'eth2', range: '192.168.60.0/24' },
      ],
    });
    assert.deepEqual(problems, [
      'networks[1].name: dds is also the name of networks[0]: give every network its own name',
      'networks[1].range: 192.168.50.128/25 overlaps networks[0].range 192.168.50.0/24: two segments on the same robots would hand out the same addresses; give each network its own block',
    ]);
  });

  test("a network on a management NIC is refused unless it says it shares the robots' LAN", () => {
    expectProblem(
      net({ master: 'wlan0' }),
      'networks[0].master',
      /wlan0 is a management NIC .*sharesManagementLan: true/,
    );
    assert.deepEqual(problemsOf(net({ master: 'wlan0', sharesManagementLan: true })), []);
    assert.deepEqual(problemsOf(net({ master: 'wlan0.50' })), [], 'a VLAN interface is a LAN of its own');
    // The inventory adds each robot's wifiInterface.
    const problems = problemsOf(net({ master: 'wlp2s0' }), {
      management: { interfaces: ['wlp2s0'], addresses: [] },
    });
    assert.equal(problems.length, 1);
    assert.match(problems[0]!, /^networks\[0\]\.master: wlp2s0 is a management NIC/);
  });

  test("no pool may hand out a robot's management address or a management block, unless excluded", () => {
    const robots = { interfaces: [], addresses: [{ robot: 'spot-1', address: '192.168.50.30' }] };
    const shared = { master: 'wlan0', sharesManagementLan: true, rangeStart: '192.168.50.20' };
    expectProblemWith(
      net(shared),
      robots,
      'networks[0].range',
      /would hand out spot-1's address 192\.168\.50\.30, a robot management address: add "192\.168\.50\.30\/32" to exclude/,
    );
    assert.deepEqual(problemsOf(net({ ...shared, exclude: ['192.168.50.30'] }), { management: robots }), []);
    assert.deepEqual(problemsOf(net({ ...shared, rangeStart: '192.168.50.31' }), { management: robots }), []);
    // A robot addressed by name cannot be checked, and is not an error.
    assert.deepEqual(
      problemsOf(net(shared), {
        management: { interfaces: [], addresses: [{ robot: 'r', address: 'r.local' }] },
      }),
      [],
    );
    const spec = { ...net(shared), management: { cidrs: ['192.168.50.0/26'] } };
    expectProblem(spec, 'networks[0].range', /would hand out management\.cidrs\[0\] 192\.168\.50\.0\/26/);
    expectProblem(
      { ...net({}), management: { cidrs: ['192.168.50.1/26'] } },
      'management.cidrs[0]',
      /host bits set/,
    );
  });

  test('the management-address check agrees with brute force over the pool (property)', () => {
    // Pools inside 192.168.50.0/24, robot addresses anywhere in it, a few excludes.
    const host = fc.integer({ min: 1, max: 254 });
    fc.assert(
      fc.property(
        fc.tuple(host, host),
        fc.array(host, { maxLength: 4 }),
        fc.array(fc.tuple(host, fc.integer({ min: 28, max: 32 })), { maxLength: 3 }),
        ([a, b], robots, holes) => {
          const [lo, hi] = a <= b ? [a, b] : [b, a];
          const excludes = holes.map(([h, p]) => {
            const size = 2 ** (32 - p);
            return `192.168.50.${h - (h % size)}/${p}`;
          });
          const excluded = (x: number) =>
            holes.some(([h, p]) => {
              const size = 2 ** (32 - p);
              return x >= h - (h % size) && x < h - (h % size) + size;
            });
          // Leave at least one address to hand out, which validateNetwork requires on its own.
          fc.pre([...Array(hi - lo + 1).keys()].some((i) => !excluded(lo + i)));
          const spec = net({
            rangeStart: `192.168.50.${lo}`,
            rangeEnd: `192.168.50.${hi}`,
            exclude: excludes,
          });
          const addresses = robots.map((r, i) => ({ robot: `r${i}`, address: `192.168.50.${r}` }));
          const got = problemsOf(spec, { management: { interfaces: [], addresses } }).length;
          const want = robots.filter((r) => r >= lo && r <= hi && !excluded(r)).length;
          assert.equal(got, want);
        },
      ),
      { numRuns: 500 },
    );
  });

  test('a mode the plugin does not have', () => {
    expectProblem(
      net({ type: 'macvlan', mode: 'l2' }),
      'networks[0].mode',
      /use one of bridge, private, vepa, passthru/,
    );
  });

  test('a master that is no interface name', () => {
    const problems = problemsOf(net({ master: 'a-very-long-interface-name' }));
    assert.match(problems[0]!, /^networks\[0\]\.master: must be a network interface name/);
  });
});

describe('network policy and limits validation', () => {
  test('bad CIDRs, excepts outside their CIDR, and endPort problems', () => {
    const problems = problemsOf({
      id: 'a',
      networkPolicy: {
        egress: [
          {
            cidrs: ['10.0.0.0/8', 'fd00::/64', 'nope'],
            except: ['192.168.0.0/24'],
            ports: [{ port: 'http', endPort: 90 }],
          },
        ],
        ingress: [{ cidrs: ['10.0.0.1/8'], ports: [{ port: 100, endPort: 90 }] }],
      },
    });
    assert.deepEqual(
      problems.map((p) => p.split(': ')[0]),
      [
        'networkPolicy.egress[0].cidrs[2]',
        'networkPolicy.egress[0].except[0]',
        'networkPolicy.egress[0].ports[0].endPort',
        'networkPolicy.ingress[0].cidrs[0]',
        'networkPolicy.ingress[0].ports[0].endPort',
      ],
    );
  });

  test('LimitRange bounds out of order', () => {
    expectProblem(
      { id: 'a', limits: { container: { default: { memory: '1Gi' }, max: { memory: '512Mi' } } } },
      'limits.container.max.memory',
      /512Mi is below limits\.container\.default\.memory \(1Gi\)/,
    );
  });

  test('quantityValue reads decimal and binary suffixes', () => {
    assert.equal(quantityValue('500m'), 0.5);
    assert.equal(quantityValue('2'), 2);
    assert.equal(quantityValue('1Gi'), 2 ** 30);
    assert.equal(quantityValue('1G'), 1e9);
    assert.equal(quantityValue('1e3'), 1000);
    assert.ok(quantityValue('1Gi') > quantityValue('1000Mi'));
  });
});

describe('reconciler cron', () => {
  test('accepts schedules that run several times a day', () => {
    for (const ok of ['*/5 * * * *', '0 * * * *', '0,30 * * * *', '15 */6 * * *', '0 0-23/2 * * *'])
      assert.deepEqual(validateCron(ok, 'c'), [], ok);
  });

  test('refuses daily or rarer schedules, wrong field counts and bad fields', () => {
    assert.match(validateCron('30 4 * * *', 'c')[0]!.message, /once a day or less/);
    assert.match(validateCron('*/5 * * * 1', 'c')[0]!.message, /once a day or less/);
    assert.match(validateCron('*/5 * * *', 'c')[0]!.message, /has 4 fields/);
    assert.match(validateCron('61 * * * *', 'c')[0]!.message, /minute field "61"/);
    assert.match(validateCron('*/0 * * * *', 'c')[0]!.message, /minute field/);
  });

  test('cronField expands steps, ranges, lists and names', () => {
    assert.deepEqual([...cronField('*/15', 0, 59)!], [0, 15, 30, 45]);
    assert.deepEqual([...cronField('1-3,10', 0, 59)!], [1, 2, 3, 10]);
    assert.deepEqual([...cronField('mon-wed', 0, 7)!], [1, 2, 3]);
    assert.deepEqual([...cronField('5/20', 0, 59)!], [5, 25, 45]);
    assert.equal(cronField('5-1', 0, 59), null);
  });
});

describe('loadSiteSpec', () => {
  test('reads YAML; a missing file or bad YAML is a ConfigError naming the file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'edgectl-site-'));
    try {
      writeFileSync(
        join(dir, 'ok.yaml'),
        'id: a\nnetworks:\n  - { name: n, master: eth1, range: 10.9.0.0/24 }\n',
      );
      assert.equal(loadSiteSpec(join(dir, 'ok.yaml')).networks[0]!.range, '10.9.0.0/24');
      writeFileSync(join(dir, 'bad.yaml'), 'id: [\n');
      assert.throws(() => loadSiteSpec(join(dir, 'bad.yaml')), /bad\.yaml is invalid:\n {2}- not valid YAML/);
      assert.throws(
        () => loadSiteSpec(join(dir, 'missing.yaml')),
        /missing\.yaml is invalid:\n {2}- cannot read the file: it does not exist \(ENOENT\)/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('the example in templates/site/ is valid', () => {
    const s = loadSiteSpec(new URL('../../templates/site/site.example.yaml', import.meta.url).pathname);
    assert.ok(s.networks.length >= 1);
  });
});
