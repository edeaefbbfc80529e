/**
 * `edgectl site apply` on a running lab site, as root: the operator changes the site's quota through
 * a follower's agent (which names the leader), the leader commits the new spec in the site log and
 * applies it, and after the leader's power loss the new leader applies the committed spec again,
 * not the spec file it was installed with. `edgectl site history` lists both versions.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { parse as parseYaml, stringify } from 'yaml';
import { converged } from '../../lab/analysis.ts';
import { loadApiServerIdentity } from '../../lab/kube-apiserver/apiserver.ts';
import { applyLabFault, labDown, labUp, type LabObservation, type LabState } from '../../lab/lab.ts';
import { requireRoot } from '../../lab/netns.ts';
import { assertNoLeftovers, untilLab } from './lab-wait.ts';
import { KubeHttp } from '../../lab/runtime/kube-http.ts';
import { runSiteApply, runSiteHistory } from '../../cli/ops/site-spec.ts';

const SITE = 'it-apply';
const PREFIX = 'esa-';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

after(() => {
  labDown(SITE, { prefix: PREFIX });
  assertNoLeftovers(SITE, PREFIX);
});

const until = (state: LabState, what: string, pred: (o: LabObservation) => boolean, ms?: number) =>
  untilLab(state, what, pred, { ms, detail: (s) => s?.lastErrors.at(-1)?.message });

test('site apply changes a running lab site’s quota, and the change survives a leader power-off', async () => {
  requireRoot('the lab site apply test');
  const state = await labUp({
    site: SITE,
    robots: 3,
    voters: 3,
    runtime: 'apiserver',
    node: 'lite',
    seed: 1,
    prefix: PREFIX,
    subnet: '10.77.16',
  });
  const identity = loadApiServerIdentity(join(state.dir, 'identity'));
  const addressOf = (name: string) => state.robots.find((r) => r.name === name)!.address;
  const api = (name: string) =>
    new KubeHttp({
      server: `https://${addressOf(name)}:6443`,
      caPem: readFileSync(identity.caCert, 'utf8'),
      token: identity.adminToken,
    });
  const quotaPods = async (name: string) =>
    (
      (await api(name).ok('GET', `/api/v1/namespaces/site-${SITE}/resourcequotas/site-quota`)) as {
        spec: { hard: Record<string, string> };
      }
    ).spec.hard['pods'];
  const io = { out: (t: string) => console.log(t), err: (t: string) => console.error(t) };

  const formed = await until(state, 'the site to form', (o) => converged(o) && o.leader !== null);
  const leader = formed.leader!;
  const follower = state.robots.find((r) => r.name !== leader)!.name;
  // Every robot is installed with the lab's spec: the default quota of 100 pods.
  const until100 = Date.now() + 60_000;
  while ((await quotaPods(leader).catch(() => undefined)) !== '100') {
    assert.ok(Date.now() < until100, 'the leader applied the installed spec');
    await sleep(500);
  }

  // The operator's change: the lab's spec with a quota of 7 pods.
  const installed = parseYaml(readFileSync(join(state.dir, 'site.yaml'), 'utf8')) as Record<string, unknown>;
  const proposedFile = join(state.dir, 'proposed-site.yaml');
  writeFileSync(proposedFile, stringify({ ...installed, quota: { hard: { pods: '7' } } }));
  const viaFollower = { file: proposedFile, addr: `${addressOf(follower)}:7947`, output: 'table' as const };
  const dry = await runSiteApply({ ...viaFollower, dryRun: true }, io);
  assert.equal(dry.leader, leader, 'the follower named the leader');
  assert.equal(dry.result, null);
  assert.ok(dry.changes.some((c) => c.path === 'quota.hard.pods' && c.after === '"7"'));
  assert.equal(await quotaPods(leader), '100', 'a dry run touched nothing');
  // Only a request signed with this site's key is accepted.
  const wrongKey = join(state.dir, 'wrong.key');
  // A master secret as the site directory keeps one (64 hex digits), but not this site's.
  writeFileSync(wrongKey, `${Buffer.alloc(32, 9).toString('hex')}\n`, { mode: 0o600 });
  await assert.rejects(
    runSiteApply({ ...viaFollower, dryRun: false, siteKey: wrongKey }, io),
    (e: Error & { code?: string }) => e.code === 'EDGE_SITE_APPLY_UNAUTHENTICATED',
  );
  const applied = await runSiteApply(
    { ...viaFollower, dryRun: false, siteKey: join(state.dir, 'site.key') },
    io,
  );
  assert.equal(applied.result?.kind, 'committed');
  const version = applied.result?.kind === 'committed' ? applied.result.version : -1;
  const until7 = Date.now() + 30_000;
  while ((await quotaPods(leader)) !== '7') {
    assert.ok(Date.now() < until7, 'the leader applied the new quota');
    await sleep(250);
  }

  // Power off the leader. The new leader's own site.yaml still says 100 pods.
  await applyLabFault(state, { kind: 'kill', node: leader });
  const reformed = await until(state, 'a new leader that applied the site for its epoch', (o) => {
    if (!converged(o) || o.leader === null || o.leader === leader) return false;
    const s = o.robots.find((r) => r.name === o.leader)?.status;
    return s?.controlPlane.siteAppliedEpoch === s?.term;
  });
  const next = reformed.leader!;
  assert.equal(await quotaPods(next), '7', `${next} applied the committed spec, not its installed file`);
  const log = readFileSync(join(state.dir, 'robots', next, 'agent.log'), 'utf8');
  assert.match(
    log,
    new RegExp(`applied site spec version ${version} \\(term \\d+, index \\d+\\) for epoch ${reformed.term}`),
  );

  const history = await runSiteHistory({ addr: `${addressOf(next)}:7947`, output: 'table' }, io);
  assert.deepEqual(
    history.map((v) => v.version),
    [1, version],
  );
  assert.ok(
    history.at(-1)!.changes.includes('quota.hard.pods: "100" → "7"'),
    history.at(-1)!.changes.join('; '),
  );
});
