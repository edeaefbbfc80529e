/**
 * The agent's local HTTP endpoint (default 127.0.0.1:7947; never a secret in any response):
 *   /healthz  200 while the agent's event loop runs
 *   /readyz   200 when this robot does its part (serves as leader, or is Ready as a worker), else 503
 *   /status   JSON: node, site, role, term, leader, members with state and RTT, control plane, last errors
 *   /metrics  Prometheus text format
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Agent } from './agent.ts';
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
    if (req.method !== 'GET') return send(405, 'text/plain', 'GET only\n');
    switch (url) {
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
        return send(404, 'text/plain', 'try /healthz /readyz /status /metrics\n');
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
