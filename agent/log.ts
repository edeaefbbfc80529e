/**
 * Structured JSON logs (pino) to stdout, for the supervisor (systemd-journald) to ship. Every line
 * carries the node id and site (base fields) and the current term and role (mixin from a context
 * the agent keeps up to date), so any line can be placed in the election's history.
 */
import { pino, type DestinationStream, type Logger } from 'pino';
import { logTimestamp } from './wall-clock.ts';

export interface LogContext {
  term: number;
  role: string;
}

export function createLogger(o: {
  node: string;
  site: string;
  level: string;
  destination?: DestinationStream;
}): { log: Logger; context: LogContext } {
  const context: LogContext = { term: 0, role: 'starting' };
  const log = pino(
    {
      level: o.level,
      base: { node: o.node, site: o.site },
      mixin: () => ({ term: context.term, role: context.role }),
      // Defence in depth: no secret is ever logged, even if an object carrying one is.
      redact: ['key', 'siteKey', '*.key', 'token', '*.token', 'password', '*.password'],
      timestamp: logTimestamp,
    },
    o.destination ?? pino.destination({ fd: 1, sync: false }),
  );
  return { log, context };
}
