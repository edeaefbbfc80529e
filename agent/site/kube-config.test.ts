/** The kubeconfig reader: k3s's admin kubeconfig as k3s writes it, JSON kubeconfigs, and what it refuses. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { connectionOf, parseKubeconfig } from './kube-config.ts';
import { k3sKubeconfigText } from './testing/k3s-kubeconfig.ts';

const b64 = (s: string) => Buffer.from(s).toString('base64');
const CA = '-----BEGIN CERTIFICATE-----\nca\n-----END CERTIFICATE-----\n';
const CERT = '-----BEGIN CERTIFICATE-----\nclient\n-----END CERTIFICATE-----\n';
const KEY = '-----BEGIN EC PRIVATE KEY-----\nkey\n-----END EC PRIVATE KEY-----\n';

/** The layout k3s writes to /etc/rancher/k3s/k3s.yaml. */
const K3S_YAML = k3sKubeconfigText({ server: 'https://127.0.0.1:6443', caPem: CA, cert: CERT, key: KEY });

test("k3s's admin kubeconfig gives the server, its CA and the client certificate and key", () => {
  assert.deepEqual(parseKubeconfig(K3S_YAML), {
    server: 'https://127.0.0.1:6443',
    caPem: CA,
    clientCertPem: CERT,
    clientKeyPem: KEY,
  });
});

test('quoted values and a token are read', () => {
  const yaml = `clusters:\n- cluster:\n    server: "https://10.0.0.1:6443/"\n    certificate-authority-data: '${b64(CA)}'\nusers:\n- name: a\n  user:\n    token: abc\n`;
  assert.deepEqual(parseKubeconfig(yaml), { server: 'https://10.0.0.1:6443', caPem: CA, token: 'abc' });
});

test('a JSON kubeconfig is read through its current context', () => {
  const json = JSON.stringify({
    'current-context': 'b',
    contexts: [
      { name: 'a', context: { cluster: 'x', user: 'x' } },
      { name: 'b', context: { cluster: 'y', user: 'y' } },
    ],
    clusters: [
      { name: 'x', cluster: { server: 'https://x:1', 'certificate-authority-data': b64('other') } },
      { name: 'y', cluster: { server: 'https://y:2', 'certificate-authority-data': b64(CA) } },
    ],
    users: [{ name: 'y', user: { token: 't' } }],
  });
  assert.deepEqual(parseKubeconfig(json), { server: 'https://y:2', caPem: CA, token: 't' });
});

test('file references, plugins, several clusters, plain http and missing credentials are refused with a hint', () => {
  const cases = [
    K3S_YAML.replace(/certificate-authority-data: \S+/, 'certificate-authority: /etc/ca.crt'),
    K3S_YAML.replace(/client-key-data: \S+/, 'exec:\n      command: aws'),
    `${K3S_YAML}- cluster:\n    server: https://other:6443\n`,
    K3S_YAML.replace('https://', 'http://'),
    K3S_YAML.replace(/ *client-key-data: \S+\n/, ''),
    K3S_YAML.replace(/ *client-(certificate|key)-data: \S+\n/g, ''),
    '{"current-context": "none"}',
  ];
  for (const text of cases)
    assert.throws(
      () => parseKubeconfig(text, 'k3s.yaml'),
      (e: { code?: string; hint?: string; message: string }) =>
        e.code === 'EDGE_KUBECONFIG_UNSUPPORTED' && /k3s\.yaml/.test(e.message) && /k3s/.test(e.hint ?? ''),
      text,
    );
});

test("a client-node KubeConfig's current cluster and user are taken over", () => {
  const kc = {
    getCurrentCluster: () => ({ server: 'https://s:6443', caData: b64(CA) }),
    getCurrentUser: () => ({ certData: b64(CERT), keyData: b64(KEY) }),
  };
  assert.deepEqual(connectionOf(kc), {
    server: 'https://s:6443',
    caPem: CA,
    clientCertPem: CERT,
    clientKeyPem: KEY,
  });
  assert.throws(() => connectionOf({ getCurrentCluster: () => null, getCurrentUser: () => null }), {
    code: 'EDGE_KUBECONFIG_NO_CLUSTER',
  });
});
