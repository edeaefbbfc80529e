/**
 * The dashboard in a real browser against a real lab, as root: Debian's Chromium, headless, driven
 * by playwright-core (no browser download). The page shows the robots and the leader; its fault
 * buttons power the leader off and back on; the page follows the agents to the new leader; and no
 * key or token of the site ever reaches the page. Screenshots go to EDGECTL_SCREENSHOTS when set
 * (docs/dashboard.md's pictures are taken this way). Without root it fails; it never skips.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { chromium, type Page } from 'playwright-core';
import { DashboardServer } from '../../cli/dashboard/server.ts';
import { LabSource } from '../../cli/dashboard/source.ts';
import { loadApiServerIdentity } from '../../lab/kube-apiserver/apiserver.ts';
import { labDown, labUp, leftovers, observeLab, type LabState } from '../../lab/lab.ts';
import { converged } from '../../lab/analysis.ts';
import { requireRoot } from '../../lab/netns.ts';

const SITE = 'it-dash';
const CHROMIUM = '/usr/bin/chromium';
// As the machine's notes say: without the background-networking flags Chromium keeps dialling out.
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

async function until<T>(what: string, ms: number, probe: () => Promise<T | null>): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe().catch(() => null);
    if (v !== null) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const leaderOnPage = async (page: Page) =>
  ((await page.getByTestId('leader').textContent()) ?? '').replace(/^leader: /, '');

test('the dashboard shows a lab site live in Chromium, drives its faults, and holds no secret', async (t) => {
  requireRoot('the dashboard browser test');
  const shots = process.env['EDGECTL_SCREENSHOTS'] ?? mkdtempSync(join(tmpdir(), 'edgectl-dashboard-'));
  mkdirSync(shots, { recursive: true });
  let state: LabState | null = null;
  let server: DashboardServer | null = null;
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  t.after(async () => {
    await browser.close();
    await server?.close();
    if (state) labDown(SITE);
  });

  state = await labUp({
    site: SITE,
    robots: 3,
    voters: 3,
    runtime: 'apiserver',
    node: 'lite',
    subnet: '10.77.12',
    prefix: 'elidash-',
    seed: 7,
  });
  const lab = state;
  await until('the lab site to form', 90_000, async () => (converged(await observeLab(lab)) ? true : null));

  server = new DashboardServer({ source: new LabSource(SITE, { faults: true }), listen: '127.0.0.1:0' });
  const url = await server.start();
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const bodies: string[] = [];
  page.on('response', (r) => {
    if (!r.url().endsWith('/events'))
      void r.text().then(
        (b) => bodies.push(b),
        () => {},
      );
  });
  page.on('dialog', (d) => void d.accept());
  await page.goto(url);

  // The robots and the leader, as the agents say.
  const agents = await observeLab(lab);
  await until('the page to show the leader', 10_000, async () =>
    (await leaderOnPage(page)) === agents.leader ? true : null,
  );
  assert.equal(await page.locator('[data-testid^="robot-r"]').count(), 3);
  assert.equal(await page.getByTestId(`role-${agents.leader}`).textContent(), 'leader');
  await page.screenshot({ path: join(shots, 'site.png'), fullPage: true });

  // Power the leader off from the page.
  const old = agents.leader!;
  await page.selectOption('#fault-robot', 'leader');
  await page.getByRole('button', { name: 'power off' }).click();
  await until('the fault to be applied', 10_000, async () =>
    /applied power-off leader/.test((await page.locator('#fault-result').textContent()) ?? '') ? true : null,
  );
  const agentsSay = await until('the agents to elect a new leader', 60_000, async () => {
    const o = await observeLab(lab);
    return o.leader && o.leader !== old ? { leader: o.leader, at: Date.now() } : null;
  });
  const pageSays = await until('the page to show the new leader', 30_000, async () =>
    (await leaderOnPage(page)) === agentsSay.leader ? Date.now() : null,
  );
  t.diagnostic(
    `the page showed the new leader ${pageSays - agentsSay.at} ms after the agents' own status did`,
  );
  assert.equal((await page.getByTestId(`robot-${old}`).locator('dd').first().textContent()) ?? '', 'off');
  // The lab logs a fault when it is done; the page measures from when it began.
  const measured = new RegExp(`${agentsSay.leader} leads at term \\d+, [0-9.]+ s after kill:${old}`);
  await until('the page to measure the new leader from the fault', 10_000, async () =>
    measured.test((await page.getByTestId('timeline').textContent()) ?? '') ? true : null,
  );
  assert.match((await page.getByTestId('timeline').textContent()) ?? '', new RegExp(`fault kill:${old}`));
  await until('the site to re-form', 60_000, async () =>
    /site formed: .* s after kill/.test((await page.getByTestId('timeline').textContent()) ?? '')
      ? true
      : null,
  );
  await page.screenshot({ path: join(shots, 'failover.png'), fullPage: true });

  // And back on, from the page: the old leader returns as a follower.
  await page.selectOption('#fault-robot', old);
  await page.getByRole('button', { name: 'power on' }).click();
  await until('the old leader to come back on the page', 60_000, async () =>
    (await page.getByTestId(`role-${old}`).textContent()) === 'follower' ? true : null,
  );

  // No key or token of the site reached the page.
  const identity = loadApiServerIdentity(join(lab.dir, 'identity'));
  const key = readFileSync(join(lab.dir, 'site.key'));
  bodies.push(await page.content(), JSON.stringify(server.message));
  for (const secret of [identity.adminToken, key.toString('hex'), key.toString('base64')])
    assert.equal(
      bodies.some((b) => b.includes(secret)),
      false,
      'a secret of the site reached the page',
    );
  await page.close();
  await browser.close();
  await server.close();
  server = null;
  labDown(SITE);
  state = null;
  assert.deepEqual(leftovers(SITE, 'elidash-'), {
    netns: [],
    links: [],
    nftTables: [],
    processes: [],
    cgroups: [],
  });
});
