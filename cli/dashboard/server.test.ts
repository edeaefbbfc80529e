import assert from 'node:assert/strict';
import { request } from 'node:http';
import { test } from 'node:test';
import { DashboardServer, FAULT_HEADER } from './server.ts';
import { FixedSource } from './source.ts';
import { sample } from './testing/samples.ts';

const site = (lead: string, term = 1) =>
  sample(Date.now(), [
    { name: 'r1', role: lead === 'r1' ? 'leader' : 'follower', term },
    { name: 'r2', role: lead === 'r2' ? 'leader' : 'follower', term },
  ]);

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** call sends one request with full control of its headers (fetch would set Host and Origin itself). */
function call(
  url: string,
  o: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: o.method ?? 'GET', headers: o.headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end(o.body);
  });
}

async function withServer(
  o: { faults?: boolean; token?: string; listen?: string; remote?: boolean },
  fn: (url: string, source: FixedSource, server: DashboardServer) => Promise<void>,
): Promise<void> {
  const source = new FixedSource([site('r1')], { faults: o.faults ?? false });
  const server = new DashboardServer({
    source,
    listen: o.listen ?? '127.0.0.1:0',
    remote: o.remote,
    token: o.token,
    intervalMs: 50,
  });
  const url = await server.start();
  try {
    await fn(url, source, server);
  } finally {
    await server.close();
  }
}

test('the page and its modules are served with a policy that allows only its own scripts', async () => {
  await withServer({}, async (url) => {
    const page = await call(url);
    assert.equal(page.status, 200);
    assert.match(String(page.headers['content-security-policy']), /script-src 'self'/);
    assert.match(page.body, /<script type="module" src="\/app.js">/);
    const app = await call(`${url}app.js`);
    assert.equal(app.status, 200);
    assert.match(String(app.headers['content-type']), /javascript/);
  });
});

test('/api/view has the site as the view model draws it', async () => {
  await withServer({}, async (url) => {
    const r = await call(`${url}api/view`);
    const m = JSON.parse(r.body) as { view: { leader: string; robots: unknown[] }; faults: boolean };
    assert.equal(m.view.leader, 'r1');
    assert.equal(m.view.robots.length, 2);
    assert.equal(m.faults, false);
  });
});

test('an open page receives the new leader as soon as a sample shows it', async () => {
  await withServer({}, async (url, source) => {
    const got: string[] = [];
    await new Promise<void>((resolve, reject) => {
      const req = request(`${url}events`, (res) => {
        res.setEncoding('utf8');
        let buf = '';
        res.on('data', (c: string) => {
          buf += c;
          for (let i = buf.indexOf('\n\n'); i >= 0; i = buf.indexOf('\n\n')) {
            const data = buf
              .slice(0, i)
              .split('\n')
              .find((l) => l.startsWith('data: '));
            buf = buf.slice(i + 2);
            if (!data) continue;
            const leader = (JSON.parse(data.slice(6)) as { view: { leader: string } }).view.leader;
            got.push(leader);
            if (got.length === 1) source.push(site('r2', 2));
            if (leader === 'r2') {
              req.destroy();
              resolve();
            }
          }
        });
      });
      req.on('error', (e) => (got.at(-1) === 'r2' ? resolve() : reject(e)));
      req.end();
    });
    assert.equal(got[0], 'r1');
    assert.equal(got.at(-1), 'r2');
  });
});

test('a request that names another host is refused (DNS rebinding)', async () => {
  await withServer({}, async (url) => {
    const r = await call(`${url}api/view`, { headers: { host: 'evil.example:7950' } });
    assert.equal(r.status, 421);
  });
});

test('faults: refused on a read-only dashboard, without the page header, from another origin, or off the menu', async () => {
  await withServer({ faults: false }, async (url, source) => {
    const r = await call(`${url}api/fault`, {
      method: 'POST',
      headers: { [FAULT_HEADER]: '1', 'content-type': 'application/json' },
      body: JSON.stringify({ words: 'power-off r1' }),
    });
    assert.equal(r.status, 400);
    assert.match(r.body, /read-only/);
    assert.deepEqual(source.applied, []);
  });
  await withServer({ faults: true }, async (url, source) => {
    const post = (words: string, headers: Record<string, string>) =>
      call(`${url}api/fault`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify({ words }),
      });
    assert.equal((await post('power-off r1', {})).status, 403);
    assert.equal(
      (await post('power-off r1', { [FAULT_HEADER]: '1', origin: 'http://evil.example' })).status,
      403,
    );
    for (const words of ['kill:all', 'power-off r1; rm -rf /', 'burst 9999s', 'loss all 101'])
      assert.equal((await post(words, { [FAULT_HEADER]: '1' })).status, 400, words);
    assert.deepEqual(source.applied, []);
    const ok = await post('power-off r1', { [FAULT_HEADER]: '1', origin: url.replace(/\/$/, '') });
    assert.equal(ok.status, 200);
    assert.deepEqual(source.applied, ['power-off r1']);
  });
});

test('a non-loopback address needs --remote and a token, and data requests must carry it', async () => {
  const source = new FixedSource([site('r1')], { faults: false });
  assert.throws(() => new DashboardServer({ source, listen: '0.0.0.0:0' }), /reachable from other machines/);
  assert.throws(() => new DashboardServer({ source, listen: '0.0.0.0:0', remote: true }), /needs a token/);
  // The token guards data on loopback too when one is given; the remote path is the same code.
  const token = 'k'.repeat(24);
  await withServer({ token }, async (url) => {
    assert.equal((await call(`${url}api/view`)).status, 401);
    assert.equal((await call(`${url}api/view?token=${'x'.repeat(24)}`)).status, 401);
    assert.equal((await call(`${url}api/view?token=${token}`)).status, 200);
    assert.equal(
      (await call(`${url}api/view`, { headers: { authorization: `Bearer ${token}` } })).status,
      200,
    );
    // The page itself holds no data: it loads without the token, and never contains it.
    const page = await call(url);
    assert.equal(page.status, 200);
    assert.equal(page.body.includes(token), false);
  });
});

test('a busy port is a usage error that names the fix', async () => {
  await withServer({}, async (url) => {
    const taken = new URL(url).host;
    const source = new FixedSource([site('r1')], { faults: false });
    const second = new DashboardServer({ source, listen: taken });
    await assert.rejects(second.start(), /cannot listen on .*EADDRINUSE/);
    await second.close();
  });
});
