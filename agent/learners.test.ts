import assert from 'node:assert/strict';
import { test } from 'node:test';
import { insideSubnets, planLearners, siteSubnets, type LearnerInputs } from './learners.ts';
import { parseCidr, type Cidr } from './site/ipv4.ts';

const cidr = (text: string): Cidr => {
  const r = parseCidr(text);
  assert.ok(r.ok);
  return r.cidr;
};

const base: LearnerInputs = {
  self: 'r1',
  voters: ['r1', 'r2', 'r3'],
  named: ['vac-1', 'vac-2'],
  refused: [],
  advertised: [],
  subnets: [],
};

test('the learners are the robots the site names, never a voter or this robot', () => {
  const p = planLearners({ ...base, named: ['vac-2', 'r2', 'r1', 'vac-1', 'vac-2'] });
  assert.deepEqual(p.learners, ['vac-1', 'vac-2']);
});

test('an advertised id the site does not name is no learner, gets no address, and is reported', () => {
  const advertised = [
    ...Array.from({ length: 500 }, (_, i) => ({ nodeId: `fake-${i}`, addresses: ['10.0.0.99'] })),
    { nodeId: 'vac-1', addresses: ['10.0.0.21'] },
    { nodeId: 'r2', addresses: ['10.0.0.2'] },
  ];
  const p = planLearners({ ...base, advertised });
  assert.deepEqual(p.learners, ['vac-1', 'vac-2']);
  assert.equal(p.unknown.length, 500);
  assert.ok(p.unknown.every((id) => id.startsWith('fake-')));
  assert.deepEqual(p.hints, [
    { nodeId: 'vac-1', host: '10.0.0.21' },
    { nodeId: 'r2', host: '10.0.0.2' },
  ]);
  assert.ok(!p.hints.some((h) => h.host === '10.0.0.99'), 'nothing points at the victim address');
});

test('a named robot that is never advertised is still a learner (the election probes it rarely)', () => {
  const p = planLearners({ ...base, advertised: [] });
  assert.deepEqual(p.learners, ['vac-1', 'vac-2']);
  assert.deepEqual(p.hints, []);
});

test('a refused robot (robot remove) is no learner, and its advertisement is ignored', () => {
  const p = planLearners({
    ...base,
    refused: ['vac-2'],
    advertised: [{ nodeId: 'vac-2', addresses: ['10.0.0.22'] }],
  });
  assert.deepEqual(p.learners, ['vac-1']);
  assert.deepEqual(p.unknown, ['vac-2']);
  assert.deepEqual(p.hints, []);
});

test("an address outside the site's subnets is ignored: the first one inside is the hint", () => {
  const subnets = [cidr('10.0.0.0/24')];
  const p = planLearners({
    ...base,
    subnets,
    advertised: [
      { nodeId: 'vac-1', addresses: ['192.0.2.7', '10.0.0.21'] },
      { nodeId: 'vac-2', addresses: ['192.0.2.7'] },
      { nodeId: 'r3', addresses: ['198.51.100.3'] },
    ],
  });
  assert.deepEqual(p.hints, [{ nodeId: 'vac-1', host: '10.0.0.21' }]);
  assert.deepEqual(p.outsideSubnets, ['r3', 'vac-2']);
  // Still learners: the site names them, and an authenticated datagram may give their address.
  assert.deepEqual(p.learners, ['vac-1', 'vac-2']);
});

test('insideSubnets: any IPv4 address without subnets, only inside them with; never a non-IPv4 one', () => {
  assert.ok(insideSubnets('10.1.2.3', []));
  assert.ok(!insideSubnets('fe80::1', []));
  assert.ok(!insideSubnets('robot.local', []));
  assert.ok(insideSubnets('10.0.0.255', [cidr('10.0.0.0/24')]));
  assert.ok(!insideSubnets('10.0.1.0', [cidr('10.0.0.0/24')]));
  assert.ok(insideSubnets('10.0.1.0', [cidr('10.0.0.0/24'), cidr('10.0.1.0/30')]));
});

test("siteSubnets reads a committed spec's management CIDRs and nothing else", () => {
  assert.deepEqual(siteSubnets(null), []);
  assert.deepEqual(siteSubnets('not json'), []);
  assert.deepEqual(siteSubnets(JSON.stringify({ id: 'a' })), []);
  assert.deepEqual(
    siteSubnets(JSON.stringify({ id: 'a', management: { cidrs: ['10.0.0.0/24', 'bad', 5, '10.0.0.1/24'] } })),
    [cidr('10.0.0.0/24')],
  );
});

test('the plan depends on its inputs only: the same inputs give the same plan', () => {
  const i: LearnerInputs = {
    ...base,
    advertised: [
      { nodeId: 'ghost', addresses: ['10.0.0.9'] },
      { nodeId: 'vac-2', addresses: ['10.0.0.22'] },
    ],
  };
  assert.deepEqual(planLearners(i), planLearners(structuredClone(i)));
});
