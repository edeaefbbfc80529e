/**
 * The dashboard's HTTP server: one page, its static modules, the current view as JSON, a
 * server-sent-events stream of views, and (only when started with faults on) a fault endpoint.
 *
 * It samples the site on a fixed interval, folds each sample into the view model (view.ts) and
 * pushes a view to every open page when what the page would draw changed.
 *
 * Exposure: it binds loopback by default. Any other address needs `remote` and a token, which every
 * data request must carry. Requests whose Host is not the listen address are refused (a web page
 * elsewhere cannot reach a loopback dashboard by DNS rebinding), and the fault endpoint needs a
 * custom header, which a cross-origin form or fetch cannot send without a preflight this server
 * never grants. Nothing the server sends carries a key or token of the site.
 */
import { timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { EdgeError, UsageError } from '../../agent/errors.ts';
import type { SiteSource } from './source.ts';
import { EMPTY_TRACKER, nextView, sameView, type SiteView, type Tracker } from './view.ts';

const WEB = new URL('./web/', import.meta.url);

const STATIC: Readonly<Record<string, { file: string; type: string }>> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/style.css': { file: 'style.css', type: 'text/css; charset=utf-8' },
};

/** The header a fault request must carry; browsers refuse to send it cross-origin without a preflight. */
export const FAULT_HEADER = 'x-edgectl-dashboard';

export interface DashboardOptions {
  readonly source: SiteSource;
  /** host:port; port 0 picks a free one. */
  readonly listen: string;
  /** Required for a non-loopback address. */
  readonly remote?: boolean;
  readonly token?: string;
  readonly intervalMs?: number;
  /** Called when a sample fails (the page shows the error too). */
  readonly onError?: (e: unknown) => void;
}

export interface ViewMessage {
  readonly view: SiteView | null;
  readonly faults: boolean;
  readonly error: string | null;
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** parseListen splits host:port and checks both, with the fix in the error. */
export function parseListen(listen: string): { host: string; port: number } {
  const m = /^(\[[0-9a-f:]+\]|[^\s:[\]]+):(\d{1,5})$/i.exec(listen);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535)
    throw new UsageError('DASHBOARD_LISTEN', `--listen "${listen}" is not host:port`, {
      hint: 'write it like 127.0.0.1:7950 (port 1-65535, or 0 for any free port)',
    });
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port };
}

function sameToken(given: string | null, want: string): boolean {
  if (given === null) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(want);
  return a.length === b.length && timingSafeEqual(a, b);
}

export class DashboardServer {
  private readonly o: DashboardOptions;
  private readonly host: string;
  private readonly port: number;
  private server: Server | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private tracker: Tracker = EMPTY_TRACKER;
  private current: ViewMessage;
  private readonly streams = new Set<ServerResponse>();
  private stopped = false;
  private sampling = false;
  private again = false;
  /** host:port as the browser must name it in Host. */
  private authority = '';

  constructor(o: DashboardOptions) {
    const { host, port } = parseListen(o.listen);
    if (!isLoopback(host)) {
      if (!o.remote)
        throw new UsageError('DASHBOARD_REMOTE', `--listen ${o.listen} is reachable from other machines`, {
          hint: 'keep the default 127.0.0.1:7950 (and use an SSH tunnel), or pass --remote with --token-file',
        });
      if (!o.token || o.token.length < 16)
        throw new UsageError('DASHBOARD_TOKEN', 'a dashboard on a non-loopback address needs a token', {
          hint: 'pass --token-file FILE holding at least 16 random characters (mode 0600)',
        });
    }
    this.o = o;
    this.host = host;
    this.port = port;
    this.current = { view: null, faults: o.source.canFault, error: null };
  }

  /** start listens, takes the first sample, and returns the page's URL. */
  async start(): Promise<string> {
    const server = createServer((req, res) => this.handle(req, res));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e: NodeJS.ErrnoException) =>
        reject(
          e.code === 'EADDRINUSE' || e.code === 'EADDRNOTAVAIL' || e.code === 'EACCES'
            ? new UsageError('DASHBOARD_LISTEN', `cannot listen on ${this.o.listen}: ${e.code}`, {
                hint: 'pick another --listen address or port',
                cause: e,
              })
            : e,
        ),
      );
      server.listen(this.port, this.host, () => resolve());
    });
    const port = (server.address() as AddressInfo).port;
    const shownHost = this.host.includes(':') ? `[${this.host}]` : this.host;
    this.authority = `${shownHost}:${port}`;
    await this.tick();
    return `http://${this.authority}/`;
  }

  /** view is what the page shows now. */
  get message(): ViewMessage {
    return this.current;
  }

  async close(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    for (const s of this.streams) s.end();
    this.streams.clear();
    await this.o.source.close?.();
    const server = this.server;
    if (server) await new Promise<void>((r) => server.close(() => r()));
  }

  /** tick takes one sample; a tick asked for while one runs happens right after it, not beside it. */
  private async tick(): Promise<void> {
    if (this.sampling) {
      this.again = true;
      return;
    }
    this.sampling = true;
    try {
      const sample = await this.o.source.sample();
      const { view, tracker } = nextView(this.tracker, sample);
      this.tracker = tracker;
      const changed = !sameView(this.current.view, view) || this.current.error !== null;
      this.current = { view, faults: this.o.source.canFault, error: null };
      if (changed) this.broadcast();
    } catch (e) {
      this.o.onError?.(e);
      const error = e instanceof Error ? e.message : String(e);
      if (error !== this.current.error) {
        this.current = { ...this.current, error };
        this.broadcast();
      }
    } finally {
      this.sampling = false;
    }
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.tick(), this.again ? 0 : (this.o.intervalMs ?? 500));
    this.again = false;
  }

  private broadcast(): void {
    const data = `event: view\ndata: ${JSON.stringify(this.current)}\n\n`;
    for (const s of this.streams) s.write(data);
  }

  private tokenOf(req: IncomingMessage, url: URL): string | null {
    const auth = req.headers.authorization;
    if (auth?.startsWith('Bearer ')) return auth.slice(7);
    return url.searchParams.get('token');
  }

  private send(res: ServerResponse, status: number, body: unknown): void {
    res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(JSON.stringify(body));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    res.setHeader('x-content-type-options', 'nosniff');
    res.setHeader('x-frame-options', 'DENY');
    res.setHeader('referrer-policy', 'no-referrer');
    const host = req.headers.host ?? '';
    const allowed = new Set([this.authority, `localhost:${this.authority.split(':').pop()}`]);
    if (!allowed.has(host)) {
      this.send(res, 421, { error: `this dashboard answers as ${this.authority} only` });
      return;
    }
    const url = new URL(req.url ?? '/', `http://${this.authority}`);
    const page = STATIC[url.pathname];
    if (req.method === 'GET' && page) {
      res.writeHead(200, {
        'content-type': page.type,
        'cache-control': 'no-store',
        'content-security-policy':
          "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
      });
      res.end(readFileSync(new URL(page.file, WEB)));
      return;
    }
    if (this.o.token !== undefined && !sameToken(this.tokenOf(req, url), this.o.token)) {
      this.send(res, 401, { error: 'a token is required: open the page as /?token=…' });
      return;
    }
    if (req.method === 'GET' && url.pathname === '/api/view') {
      this.send(res, 200, this.current);
      return;
    }
    if (req.method === 'GET' && url.pathname === '/events') {
      res.writeHead(200, {
        'content-type': 'text/event-stream',
        'cache-control': 'no-store',
        connection: 'keep-alive',
      });
      res.write(`retry: 1000\nevent: view\ndata: ${JSON.stringify(this.current)}\n\n`);
      this.streams.add(res);
      req.on('close', () => this.streams.delete(res));
      return;
    }
    if (req.method === 'POST' && url.pathname === '/api/fault') {
      void this.fault(req, res);
      return;
    }
    this.send(res, 404, { error: 'no such page' });
  }

  private async fault(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (
      req.headers[FAULT_HEADER] !== '1' ||
      (req.headers.origin && req.headers.origin !== `http://${this.authority}`)
    ) {
      this.send(res, 403, { error: 'faults are accepted from the dashboard page only' });
      return;
    }
    let body = '';
    for await (const chunk of req) {
      body += chunk;
      if (body.length > 1024) {
        this.send(res, 413, { error: 'request too large' });
        return;
      }
    }
    let words: unknown;
    try {
      words = (JSON.parse(body) as { words?: unknown }).words;
    } catch {
      words = undefined;
    }
    if (typeof words !== 'string') {
      this.send(res, 400, { error: 'send {"words": "power-off r1"}' });
      return;
    }
    try {
      const applied = await this.o.source.fault(words);
      this.send(res, 200, { applied });
      // Show the fault's effect at once rather than at the next tick.
      void this.tick();
    } catch (e) {
      const status = e instanceof UsageError ? 400 : 500;
      this.send(res, status, {
        error: e instanceof Error ? e.message : String(e),
        hint: e instanceof EdgeError ? e.hint : undefined,
      });
    }
  }
}
