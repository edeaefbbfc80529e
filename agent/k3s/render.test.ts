import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { parse } from 'yaml';
import { assertGolden } from '../site/golden.ts';
import {
  flatYaml,
  renderAgentConfig,
  renderAgentUnit,
  renderEtcdEnv,
  renderEtcdUnit,
  renderServerConfig,
  renderServerUnit,
  renderServerUrlDropin,
  serverUrl,
} from './render.ts';
import { K3sSettingsSchema } from './settings.ts';
import { SERVER_SPEC, WORKER_SPEC } from './testing/fixtures.ts';

const testdata = new URL('./testdata/', import.meta.url).pathname;

describe('k3s renderers (goldens)', () => {
  test('server config.yaml', () =>
    assertGolden(`${testdata}server-config.yaml`, renderServerConfig(SERVER_SPEC)));
  test('agent config.yaml', () =>
    assertGolden(`${testdata}agent-config.yaml`, renderAgentConfig(WORKER_SPEC)));
  test('the server URL drop-in', () =>
    assertGolden(
      `${testdata}50-edgectl-server.yaml`,
      renderServerUrlDropin({ id: 'r1', host: '10.20.0.11' }, 7),
    ));
  test('k3s.service', () => assertGolden(`${testdata}k3s.service`, renderServerUnit()));
  test('k3s-agent.service', () => assertGolden(`${testdata}k3s-agent.service`, renderAgentUnit()));
  test('edgectl-etcd.service', () =>
    assertGolden(`${testdata}edgectl-etcd.service`, renderEtcdUnit('datastore')));
  test('edgectl-etcd-replica.service', () =>
    assertGolden(`${testdata}edgectl-etcd-replica.service`, renderEtcdUnit('replica')));
  test("the replica's environment file (r2 follows r1 in epoch 7)", () =>
    assertGolden(
      `${testdata}edgectl-etcd-replica.env`,
      renderEtcdEnv({
        name: 'r2',
        dataDir: '/var/lib/edgectl/etcd/replica-epoch-7',
        peerUrl: 'https://10.20.0.12:2380',
        initialCluster: 'r1=https://10.20.0.11:2380,r2=https://10.20.0.12:2380',
        state: 'existing',
      }),
    ));
  test("the datastore's environment file (r2 serves epoch 8)", () =>
    assertGolden(
      `${testdata}edgectl-etcd.env`,
      renderEtcdEnv({
        name: 'r2',
        dataDir: '/var/lib/edgectl/etcd/epoch-8',
        peerUrl: 'https://10.20.0.12:2380',
        initialCluster: 'r2=https://10.20.0.12:2380',
        state: 'new',
      }),
    ));
});

describe('k3s renderers (behaviour)', () => {
  test('the server config sets every key the issue names, tokens only as files', () => {
    const doc = parse(renderServerConfig(SERVER_SPEC)) as Record<string, unknown>;
    for (const key of [
      'token-file',
      'agent-token-file',
      'node-name',
      'node-ip',
      'flannel-iface',
      'node-label',
      'tls-san',
      'disable',
      'datastore-endpoint',
      'datastore-cafile',
      'datastore-certfile',
      'datastore-keyfile',
    ]) {
      assert.ok(key in doc, key);
    }
    assert.ok(!('token' in doc) && !('agent-token' in doc) && !('server' in doc));
    assert.equal(doc['token-file'], '/etc/edgectl/k3s/server-token');
    // edgectl's etcd on loopback, with TLS: never k3s's embedded etcd, which would promote the
    // standby's learner to a voter the leader's writes wait for.
    assert.equal(doc['datastore-endpoint'], 'https://127.0.0.1:2379');
    assert.ok(!('cluster-init' in doc) && !Object.keys(doc).some((k) => k.startsWith('etcd-')));
  });

  test("the etcd units: static, not enableable, exclusive, flags from the epoch's environment file", () => {
    for (const role of ['datastore', 'replica'] as const) {
      const unit = renderEtcdUnit(role);
      assert.doesNotMatch(unit, /\[Install\]/);
      assert.match(unit, /^ExecStart=\/usr\/local\/bin\/etcd$/m);
      assert.match(unit, /^EnvironmentFile=\/etc\/edgectl\/etcd\/edgectl-etcd(-replica)?\.env$/m);
      assert.match(
        unit,
        role === 'datastore'
          ? /^Conflicts=edgectl-etcd-replica\.service$/m
          : /^Conflicts=edgectl-etcd\.service$/m,
      );
    }
    assert.match(renderServerUnit(), /^After=.* edgectl-etcd\.service$/m);
  });

  test('the agent config has no server keys and no server URL: that is the drop-in', () => {
    const doc = parse(renderAgentConfig(WORKER_SPEC)) as Record<string, unknown>;
    assert.deepEqual(Object.keys(doc).sort(), [
      'flannel-iface',
      'node-ip',
      'node-label',
      'node-name',
      'token-file',
    ]);
    assert.equal(doc['token-file'], '/etc/edgectl/k3s/agent-token');
  });

  test('node labels carry the site and server-capability, sorted, spec labels included', () => {
    const doc = parse(renderServerConfig(SERVER_SPEC)) as { 'node-label': string[] };
    assert.deepEqual(doc['node-label'], [
      'edgectl.io/server-capable=true',
      'edgectl.io/site=harbor',
      'robots.example.com/model=spot-core',
    ]);
  });

  test('rendering is deterministic and does not depend on input order', () => {
    const shuffled = {
      ...SERVER_SPEC,
      tlsSans: [...SERVER_SPEC.tlsSans, 'b.local', 'a.local'],
      disable: ['servicelb', 'traefik'],
    };
    const again = {
      ...SERVER_SPEC,
      tlsSans: ['a.local', 'b.local', ...SERVER_SPEC.tlsSans],
      disable: ['traefik', 'servicelb', 'traefik'],
    };
    assert.equal(renderServerConfig(shuffled), renderServerConfig(again));
  });

  test('server URLs bracket IPv6 literals', () => {
    assert.equal(serverUrl('10.0.0.1'), 'https://10.0.0.1:6443');
    assert.equal(serverUrl('fd00::5'), 'https://[fd00::5]:6443');
    assert.equal(serverUrl('r1.local'), 'https://r1.local:6443');
  });

  test('units cannot be enabled, use no environment file, and never run together', () => {
    for (const unit of [renderServerUnit(), renderAgentUnit()]) {
      assert.doesNotMatch(unit, /\[Install\]|WantedBy|EnvironmentFile|K3S_TOKEN/);
      assert.match(unit, /^KillMode=process$/m);
      assert.match(unit, /^PartOf=edgectl-agent\.service$/m);
    }
    assert.match(renderServerUnit(), /^Conflicts=k3s-agent\.service$/m);
    assert.match(renderAgentUnit(), /^Conflicts=k3s\.service$/m);
    assert.match(renderServerUnit(), /^ConditionPathExists=!\/var\/lib\/edgectl\/k3s\/server\.fence$/m);
  });

  test('settings validate the node IP and labels and fill the Wi-Fi defaults', () => {
    const s = K3sSettingsSchema.parse({ nodeIp: 'fd00::7' });
    assert.equal(s.flannelIface, 'wlan0');
    assert.deepEqual(s.disable, ['traefik', 'servicelb']);
    assert.equal(K3sSettingsSchema.safeParse({ nodeIp: '10.0.0.300' }).success, false);
    assert.equal(
      K3sSettingsSchema.safeParse({ nodeIp: '10.0.0.3', labels: { 'bad key!': 'x' } }).success,
      false,
    );
  });
});

test('flatYaml reads back as what it wrote, under YAML 1.2 and 1.1 (what k3s reads), for any strings', () => {
  const value = fc.oneof(
    fc.string({ unit: 'grapheme-composite' }),
    fc.string({ unit: 'binary' }),
    fc.constantFrom(
      '0600',
      'yes',
      'No',
      'on',
      'null',
      '~',
      '',
      ' x',
      'x ',
      'a: b',
      'a #b',
      '- x',
      '*x',
      '&x',
      '!x',
      '%x',
      '@x',
      '`x',
      '0x1f',
      '1e3',
      '.5',
      'https://10.0.0.1:6443',
      'fd00::1',
      '0 * * * *',
    ),
    fc.boolean(),
    fc.integer(),
  );
  const doc = fc.dictionary(
    fc.stringMatching(/^[a-z][a-z-]{0,20}$/),
    fc.oneof(value, fc.array(value, { maxLength: 4 })),
    { noNullPrototype: true },
  );
  fc.assert(
    fc.property(doc, (d) => {
      const text = flatYaml(d);
      assert.deepEqual(parse(text, { version: '1.2' }) ?? {}, d, text);
      assert.deepEqual(parse(text, { version: '1.1' }) ?? {}, d, text);
    }),
    { numRuns: 1000 },
  );
});
