import { test } from 'node:test';
import assert from 'node:assert/strict';
import { OUT_OF_SERVICE_TAINT, tolerates } from './plan.ts';
import type { KubeObject } from './objects.ts';

const podWith = (tolerations?: readonly object[]): KubeObject => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'p', namespace: 'default' },
  spec: { nodeName: 'r1', containers: [], ...(tolerations ? { tolerations } : {}) },
});

test('tolerates the out-of-service taint by Kubernetes’ matching rules', () => {
  const key = OUT_OF_SERVICE_TAINT.key;
  const cases: [string, readonly object[] | undefined, boolean][] = [
    ['no tolerations', undefined, false],
    ['Exists with an empty key tolerates everything', [{ operator: 'Exists' }], true],
    ['Exists with the key, any effect', [{ key, operator: 'Exists' }], true],
    ['Exists with the key and NoExecute', [{ key, operator: 'Exists', effect: 'NoExecute' }], true],
    ['Exists with the key but NoSchedule', [{ key, operator: 'Exists', effect: 'NoSchedule' }], false],
    ['Equal (the default operator) with the value', [{ key, value: 'nodeshutdown' }], true],
    ['Equal with another value', [{ key, operator: 'Equal', value: 'other' }], false],
    [
      'the usual not-ready/unreachable tolerations',
      [
        { key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute' },
        { key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute' },
      ],
      false,
    ],
  ];
  for (const [what, tolerations, want] of cases)
    assert.equal(tolerates(podWith(tolerations), OUT_OF_SERVICE_TAINT), want, what);
});
