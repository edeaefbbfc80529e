/**
 * The witness's runtime: it runs no control plane. A witness votes and keeps the site log, but its
 * election never starts a server and its lifecycle never joins a leader (statecharts/node.ts), so a
 * call here means a wiring mistake, and fails loudly instead of pretending.
 */
import { EdgeError } from '../errors.ts';
import type { ControlPlaneRuntime, ControlPlaneStatus } from './runtime.ts';

const refuse = (what: string): Promise<never> =>
  Promise.reject(
    new EdgeError('WITNESS_NO_CONTROL_PLANE', `a witness runs no control plane: it cannot ${what}`, {
      hint: 'only voters that are not witnesses lead; check voters and witnesses in agent.yaml',
    }),
  );

export class WitnessRuntime implements ControlPlaneRuntime {
  readonly kind = 'none';

  startServer(): Promise<void> {
    return refuse('start a server');
  }
  stopServer(): Promise<void> {
    return Promise.resolve();
  }
  siteServer(): Promise<never> {
    return refuse('serve the site');
  }
  joinAsWorker(): Promise<void> {
    return refuse('join a leader as a worker');
  }
  resetWorker(): Promise<void> {
    return Promise.resolve();
  }
  status(): ControlPlaneStatus {
    return { server: null, worker: null };
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}
