import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AgentMetrics, ScrapeTimeHistogram } from './metrics.ts';

test('scrape-time series: term, drops by reason (a counter), members and messages, the same on every scrape', async () => {
  const m = new AgentMetrics();
  let replayed = 5;
  m.observe({
    term: () => 7,
    drops: () => ({ 'bad-mac': 0, replayed }) as never,
    members: () => ({ alive: 3, suspect: 1, dead: 0, 'not-heard': 0 }),
    discovery: () => ({ badTxt: 2 }),
    snapshotPushes: () => ({ kept: 2, 'not-leader': 1, busy: 0 }),
  });
  m.countMessage('in', 'append');
  m.countMessage('in', 'append');
  m.countMessage('out', 'appendResp');
  const lines = async () => (await m.registry.metrics()).split('\n');
  const first = await lines();
  assert.ok(first.includes('# TYPE edgectl_datagram_drops_total counter'));
  assert.ok(first.includes('edgectl_datagram_drops_total{reason="replayed"} 5'));
  assert.ok(first.includes('edgectl_datagram_drops_total{reason="bad-mac"} 0'));
  assert.ok(first.includes('edgectl_term 7'));
  assert.ok(first.includes('edgectl_snapshot_pushes_total{result="kept"} 2'));
  assert.ok(first.includes('edgectl_snapshot_pushes_total{result="not-leader"} 1'));
  assert.ok(first.includes('edgectl_members{state="suspect"} 1'));
  assert.ok(first.includes('edgectl_discovery_events_total{event="badTxt"} 2'));
  assert.ok(first.includes('edgectl_messages_total{direction="in",type="append"} 2'), first.join('\n'));
  assert.deepEqual(
    (await lines()).filter((l) => l.startsWith('edgectl_') && !l.startsWith('edgectl_process_')),
    first.filter((l) => l.startsWith('edgectl_') && !l.startsWith('edgectl_process_')),
  );
  replayed = 9;
  assert.ok((await lines()).includes('edgectl_datagram_drops_total{reason="replayed"} 9'));
});

test('process metrics: memory, CPU and descriptors, but no per-GC observer or loop sampler', async () => {
  const m = new AgentMetrics();
  const types = (await m.registry.metrics())
    .split('\n')
    .filter((l) => l.startsWith('# TYPE '))
    .map((l) => l.split(' ')[2]);
  for (const name of [
    'edgectl_process_process_resident_memory_bytes',
    'edgectl_process_process_cpu_seconds_total',
    'edgectl_process_process_open_fds',
    'edgectl_process_nodejs_heap_size_used_bytes',
    'edgectl_timer_lateness_seconds',
  ])
    assert.ok(types.includes(name), `${name} missing from ${types.join(' ')}`);
  assert.ok(!types.some((t) => t?.includes('_gc_')), 'a GC observer runs on every collection');
  assert.ok(!types.some((t) => t?.includes('eventloop')), 'an event-loop sampler wakes the robot up');
});

test("the scrape-time histogram exports what prom-client's Histogram exports for the same observations", async () => {
  const prom = await import('prom-client');
  const bounds = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];
  const ours = new prom.Registry();
  const theirs = new prom.Registry();
  const h = new ScrapeTimeHistogram('lateness_seconds', 'how late', bounds, ours);
  const reference = new prom.Histogram({
    name: 'lateness_seconds',
    help: 'how late',
    buckets: bounds,
    registers: [theirs],
  });
  assert.equal(await ours.metrics(), await theirs.metrics(), 'before any observation');
  // Values on, between, below and above the bounds: `le` is inclusive.
  for (const v of [0, 0.001, 0.0011, 0.005, 0.02, 0.1, 0.3, 1, 1.0001, 7]) {
    h.observe(v);
    reference.observe(v);
  }
  assert.equal(await ours.metrics(), await theirs.metrics());
  // The JSON form too, but for prom-client's exemplar slots, which this histogram does not keep.
  const withoutExemplars = (json: unknown) =>
    JSON.parse(JSON.stringify(json, (k, v: unknown) => (k === 'exemplar' ? undefined : v))) as unknown;
  assert.deepEqual(
    withoutExemplars(await ours.getMetricsAsJSON()),
    withoutExemplars(await theirs.getMetricsAsJSON()),
  );
});
