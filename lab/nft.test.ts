import assert from 'node:assert/strict';
import { test } from 'node:test';
import { golden } from './golden.ts';
import { applyNetFault, EMPTY_NET, nftTableName, renderNftRuleset } from './nft.ts';

const veth = { r1: 'el-lab-v0', r2: 'el-lab-v1', r3: 'el-lab-v2', r4: 'el-lab-v3', r5: 'el-lab-v4' };

test('the nft table carries the lab prefix, made safe for nft names', () => {
  assert.equal(nftTableName('el-lab-'), 'el_lab_faults');
});

test('an empty fault state renders a table that replaces the old one and drops nothing', () => {
  golden('nft-empty.nft', renderNftRuleset('el_lab_faults', EMPTY_NET, veth));
});

test('loss, a cut and a 2/3 partition render as bridge forward rules', () => {
  let s = applyNetFault(EMPTY_NET, { kind: 'drop', from: 'all', to: 'all', rate: 0.1 });
  s = applyNetFault(s, { kind: 'drop', from: 'r1', to: 'all', rate: 0.25 });
  s = applyNetFault(s, { kind: 'cut', a: 'r4', b: 'r5' });
  s = applyNetFault(s, {
    kind: 'partition',
    groups: [
      ['r1', 'r2'],
      ['r3', 'r4', 'r5'],
    ],
  });
  golden('nft-faults.nft', renderNftRuleset('el_lab_faults', s, veth));
});

test('a new drop rate between the same robots replaces the old one; rate 0 removes it; heal clears all', () => {
  let s = applyNetFault(EMPTY_NET, { kind: 'drop', from: 'r1', to: 'r2', rate: 0.5 });
  s = applyNetFault(s, { kind: 'drop', from: 'r1', to: 'r2', rate: 0.2 });
  assert.deepEqual(s.drops, [{ from: 'r1', to: 'r2', rate: 0.2 }]);
  s = applyNetFault(s, { kind: 'drop', from: 'r1', to: 'r2', rate: 0 });
  assert.deepEqual(s.drops, []);
  s = applyNetFault(s, { kind: 'partition', groups: [['r1'], ['r2']] });
  assert.deepEqual(applyNetFault(s, { kind: 'heal' }), EMPTY_NET);
});

test('a blackout (burst) drops every frame between robots', () => {
  assert.match(renderNftRuleset('t', { ...EMPTY_NET, blackout: true }, veth), /^ {4}drop$/m);
});

test("every rule applies only to this lab's own bridge ports: frames from elsewhere pass first", () => {
  const lines = renderNftRuleset(
    't',
    { ...EMPTY_NET, blackout: true, drops: [{ from: 'all', to: 'all', rate: 0.1 }] },
    veth,
  )
    .split('\n')
    .map((l) => l.trim());
  const guard = lines.findIndex((l) => l.startsWith('iifname != {'));
  assert.ok(guard > 0 && guard < lines.indexOf('drop'), 'the guard comes before the first drop');
  assert.equal(
    lines[guard],
    'iifname != { "el-lab-v0", "el-lab-v1", "el-lab-v2", "el-lab-v3", "el-lab-v4" } accept',
  );
});

test('100% loss is a plain drop rule (nftables refuses numgen mod 100 < 100); 99% still draws', () => {
  for (const rate of [1, 0.999]) {
    const text = renderNftRuleset(
      't',
      applyNetFault(EMPTY_NET, { kind: 'drop', from: 'all', to: 'r1', rate }),
      veth,
    );
    assert.match(text, /^ {4}oifname "el-lab-v0" drop$/m, String(rate));
    assert.doesNotMatch(text, /numgen/);
  }
  const most = renderNftRuleset(
    't',
    applyNetFault(EMPTY_NET, { kind: 'drop', from: 'r2', to: 'all', rate: 0.99 }),
    veth,
  );
  assert.match(most, /^ {4}iifname "el-lab-v1" numgen random mod 100 < 99 drop$/m);
});
