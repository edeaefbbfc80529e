import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CompositeDiscovery, discoveryCounters, type Discovery } from './discovery.ts';

const part = (stats?: object): Discovery => ({
  start: async () => {},
  update: async () => {},
  peers: () => [],
  onChange: () => () => {},
  close: async () => {},
  ...(stats ? { stats: () => stats } : {}),
});

test("discoveryCounters reads any discovery's numeric counters, and none from one that keeps none", () => {
  assert.deepEqual(discoveryCounters(part({ badTxt: 2, malformed: 1, note: 'x', nan: NaN })), {
    badTxt: 2,
    malformed: 1,
  });
  assert.deepEqual(discoveryCounters(part()), {});
});

test('the composite adds up its parts’ counters by name', () => {
  const c = new CompositeDiscovery([part({ badTxt: 2, received: 10 }), part({ badTxt: 1 }), part()]);
  assert.deepEqual(c.stats(), { badTxt: 3, received: 10, listenerErrors: 0 });
});
