/**
 * The agent's local HTTP endpoint (default 127.0.0.1:7947; never a secret in any response):
 *   /healthz  200 while the agent's event loop runs
 *   /readyz   200 when this robot does its part (serves as leader, or is Ready as a worker), else 503
 *   /status   JSON: node, site, role, term, leader, members with state and RTT, control plane, last errors
 *   /metrics  Prometheus text format
 *   /site          JSON: the newest committed site spec this robot knows, and who leads
 *   /site/history  JSON: every committed site spec version, with what changed
 *   POST /site/apply  an operator's new site spec (Agent.applySiteRequest; signed, docs/operations.md)
 *   /site/members       JSON: the site's membership in force (the robots it names that do not vote)
 *   POST /site/members  an operator's new membership (Agent.applyMembersRequest; signed, robot add|remove)
 */
import type { IncomingMessage, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Agent, MembersRequest, SiteApplyRequest } from './agent.ts';
import { EdgeError } from './errors.ts';
import { httpDate, wallClockMs } from './wall-clock.ts';

// Not `import … from 'node:http'`: an ESM import builds the module's namespace, which reads every
// export, and the lazy `http.WebSocket` getter then loads Node's bundled undici: 12 MB of RSS an
// idle robot never uses (docs/benchmarks/agent.md). getBuiltinModule returns the module as is.
const { createServer } = process.getBuiltinModule('node:http');

export async function startStatusServer(
  agent: Agent,
  listen: string,
): Promise<{ server: Server; port: number; close(): Promise<void> }> {
  const i = listen.lastIndexOf(':');
  const host = listen.slice(0, i);
  const port = Number(listen.slice(i + 1));
  const server = createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0];
    const send = (code: number, type: string, body: string) => {
      // The Date header from the agent's own formatter: Node's would call toUTCString (wall-clock.ts).
      res.writeHead(code, {
        'content-type': type,
        'cache-control': 'no-store',
        date: httpDate(wallClockMs()),
      });
      res.end(body);
    };
    if (req.method === 'POST' && url === '/site/apply') {
      readBody(req).then(
        (body) =>
          siteApply(agent, body).then(([code, doc]) => send(code, 'application/json', JSON.stringify(doc))),
        (err: Error) =>
          send(413, 'application/json', JSON.stringify({ error: { code: 'BODY', message: err.message } })),
      );
      return;
    }
    if (req.method === 'POST' && url === '/site/members') {
      readBody(req).then(
        (body) =>
          siteMembers(agent, body).then(([code, doc]) => send(code, 'application/json', JSON.stringify(doc))),
        (err: Error) =>
          send(413, 'application/json', JSON.stringify({ error: { code: 'BODY', message: err.message } })),
      );
      return;
    }
    if (req.method !== 'GET')
      return send(405, 'text/plain', 'GET only, and POST /site/apply, /site/members\n');
    switch (url) {
      case '/site/members':
        agent.membersView().then(
          (view) => send(200, 'application/json', JSON.stringify(view, null, 2)),
          (err: Error) => send(500, 'text/plain', `${err.message}\n`),
        );
        return;
      case '/site':
        agent.siteView().then(
          (view) => send(200, 'application/json', JSON.stringify(view, null, 2)),
          (err: Error) => send(500, 'text/plain', `${err.message}\n`),
        );
        return;
      case '/site/history':
        agent.siteHistory().then(
          (versions) => send(200, 'application/json', JSON.stringify({ versions }, null, 2)),
          (err: Error) => send(500, 'text/plain', `${err.message}\n`),
        );
        return;
      case '/healthz':
        return send(200, 'text/plain', 'ok\n');
      case '/readyz':
        return agent.ready()
          ? send(200, 'text/plain', 'ready\n')
          : send(503, 'text/plain', `not ready: ${agent.status().lifecycle}\n`);
      case '/status':
        return send(200, 'application/json', JSON.stringify(agent.status(), null, 2));
      case '/metrics':
        agent.metrics.registry.metrics().then(
          (text) => send(200, agent.metrics.registry.contentType, text),
          (err: Error) => send(500, 'text/plain', `${err.message}\n`),
        );
        return;
      default:
        return send(
          404,
          'text/plain',
          'try /healthz /readyz /status /metrics /site /site/history /site/members\n',
        );
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        new EdgeError('STATUS_LISTEN', `cannot listen on ${listen}: ${err.code ?? err.message}`, {
          hint: 'set status.listen in the agent config to a free host:port',
          cause: err,
        }),
      ),
    );
    server.listen(port, host, () => resolve());
  });
  return {
    server,
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/** Bodies above this are refused unread: a site spec is a few kilobytes. */
const MAX_BODY_BYTES = 256 * 1024;

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        reject(new Error(`request body over ${MAX_BODY_BYTES} bytes`));
        req.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/** The HTTP status of each refusal of a site apply, by error code; anything else is a 500. */
const APPLY_STATUS: Readonly<Record<string, number>> = {
  EDGE_BAD_REQUEST: 400,
  EDGE_SITE_APPLY_UNAUTHENTICATED: 401,
  EDGE_SITE_SPEC_CONFLICT: 409,
  EDGE_SITE_APPLY_BUSY: 409,
  EDGE_CONFIG_INVALID: 422,
  EDGE_NO_LEADER: 503,
  EDGE_LEADER_NOT_READY: 503,
  EDGE_SITE_APPLY_NOT_COMMITTED: 503,
  EDGE_SITE_APPLY_UNAVAILABLE: 501,
  EDGE_MEMBERS_UNAUTHENTICATED: 401,
  EDGE_MEMBERS_CONFLICT: 409,
  EDGE_MEMBERS_BUSY: 409,
  EDGE_MEMBERS_INVALID: 422,
  EDGE_MEMBERS_NOT_COMMITTED: 503,
  EDGE_MEMBERS_UNAVAILABLE: 501,
};

/** siteApply answers POST /site/apply: 200 committed or unchanged, 421 with the leader, or an error. */
async function siteApply(agent: Agent, body: string): Promise<[number, unknown]> {
  try {
    const out = await agent.applySiteRequest(parseApplyRequest(body));
    return [out.kind === 'notLeader' ? 421 : 200, out];
  } catch (e) {
    const err =
      e instanceof EdgeError
        ? e
        : new EdgeError('SITE_APPLY_FAILED', e instanceof Error ? e.message : String(e));
    const problems = (err as { problems?: readonly string[] }).problems;
    return [
      APPLY_STATUS[err.code] ?? 500,
      { error: { code: err.code, message: err.message, hint: err.hint, ...(problems ? { problems } : {}) } },
    ];
  }
}

/** siteMembers answers POST /site/members like siteApply answers POST /site/apply. */
async function siteMembers(agent: Agent, body: string): Promise<[number, unknown]> {
  try {
    const out = await agent.applyMembersRequest(parseMembersRequest(body));
    return [out.kind === 'notLeader' ? 421 : 200, out];
  } catch (e) {
    const err =
      e instanceof EdgeError
        ? e
        : new EdgeError('MEMBERS_FAILED', e instanceof Error ? e.message : String(e));
    return [
      APPLY_STATUS[err.code] ?? 500,
      { error: { code: err.code, message: err.message, hint: err.hint } },
    ];
  }
}

function parseMembersRequest(body: string): MembersRequest {
  let v: unknown;
  try {
    v = JSON.parse(body);
  } catch {
    v = null;
  }
  const r = v as Partial<Record<keyof MembersRequest, unknown>> | null;
  if (
    !r ||
    typeof r.site !== 'string' ||
    typeof r.mac !== 'string' ||
    !Array.isArray(r.workers) ||
    !r.workers.every((w) => typeof w === 'string') ||
    typeof r.baseVersion !== 'number' ||
    !Number.isSafeInteger(r.baseVersion) ||
    r.baseVersion < 0
  )
    throw new EdgeError('BAD_REQUEST', 'a membership request is JSON {site, baseVersion, workers, mac}', {
      hint: 'send it with edgectl robot add|remove',
    });
  return { site: r.site, baseVersion: r.baseVersion, workers: r.workers as string[], mac: r.mac };
}

function parseApplyRequest(body: string): SiteApplyRequest {
  let v: unknown;
  try {
    v = JSON.parse(body);
  } catch {
    v = null;
  }
  const r = v as Partial<Record<keyof SiteApplyRequest, unknown>> | null;
  if (
    !r ||
    typeof r.site !== 'string' ||
    typeof r.spec !== 'string' ||
    typeof r.mac !== 'string' ||
    typeof r.baseVersion !== 'number' ||
    !Number.isSafeInteger(r.baseVersion) ||
    r.baseVersion < 0
  )
    throw new EdgeError('BAD_REQUEST', 'a site apply request is JSON {site, baseVersion, spec, mac}', {
      hint: 'send it with edgectl site apply',
    });
  return { site: r.site, baseVersion: r.baseVersion, spec: r.spec, mac: r.mac };
}
