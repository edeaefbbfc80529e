/**
 * The robot lifecycle statechart: what this robot does about the control plane, given what the
 * election decided (docs/agent.md).
 *
 *   discovering ──▶ electing ──▶ leading   (startingServer → applyingSite → serving; failures retry)
 *        │             │   └───▶ following (joining → ready; failures retry)
 *        └─────────────┴──────── recovering (the leader is gone: keep workloads, wait for the next one)
 *   any ─ higher term / stopServer ─▶ demoting (stop the server at once, reset the worker) ─▶ electing
 *
 * Like the election statechart it is pure. Events carry `now`; effects come out as actions:
 * startControlPlane, stopControlPlane, applySite, joinControlPlane, resetWorker, plus
 * timers (xstate.raise with a delay, xstate.cancel). Every step that touches the system has a
 * timeout, and a timeout or failure is a state with a retry, never an exception.
 */
import { assign, cancel, initialTransition, raise, setup } from 'xstate';
import { pureStepper } from './pure-transition.ts';
import type { NodeId } from './messages.ts';

export interface LifecycleTiming {
  /** How long discovery may take before the robot proceeds with the peers it has, ms. */
  readonly discoveryWindowMs: number;
  /** Starting the control plane (k3s server, or kube-apiserver + etcd in the lab), ms. */
  readonly serverStartTimeoutMs: number;
  /** Applying the site (namespace, policies, network), ms. */
  readonly siteApplyTimeoutMs: number;
  /** Joining the leader's control plane as a worker until Ready, ms. */
  readonly joinTimeoutMs: number;
  /**
   * Re-apply the site this often while serving, ms: it repairs drift (an object deleted or edited
   * by hand). A new leader, a committed spec version and node loss are acted on at once, not at
   * the next reconcile, so this bounds only how long hand-made drift lasts.
   */
  readonly reconcileEveryMs: number;
  /** Retry back-off: min doubles per attempt up to max, ms. */
  readonly retryMinMs: number;
  readonly retryMaxMs: number;
  /**
   * Cap of a worker's join backoff. Joining is cheap and the new server may come up any second
   * (its cold start varies with load), so workers keep asking often instead of backing off to 30 s.
   */
  readonly joinRetryMaxMs: number;
}

export const defaultLifecycleTiming: LifecycleTiming = {
  discoveryWindowMs: 3_000, // mDNS probing + two announcements take ~1.75 s
  serverStartTimeoutMs: 120_000, // k3s server cold start on a robot core: 20–60 s
  siteApplyTimeoutMs: 60_000,
  joinTimeoutMs: 120_000,
  // Each re-apply starts a Kubernetes client process on the leader; GitOps tools resync as often.
  reconcileEveryMs: 300_000,
  retryMinMs: 1_000,
  retryMaxMs: 30_000,
  joinRetryMaxMs: 2_000,
};

export interface LifecycleContext {
  readonly self: NodeId;
  readonly timing: LifecycleTiming;
  /** A witness votes but runs no control plane: it never serves and never joins as a worker. */
  readonly witness: boolean;
  /** The election's view: the leader and term. */
  readonly leader: NodeId | null;
  readonly term: number;
  /** The epoch whose server this robot runs (or is starting), or null. */
  readonly serverEpoch: number | null;
  /** The leader and epoch this robot joined (or is joining) as a worker. */
  readonly joined: { readonly leader: NodeId; readonly epoch: number } | null;
  readonly attempt: number;
  readonly lastError: string | null;
  /** When the current step started (for status). */
  readonly stepSince: number;
}

type WithNow = { readonly now: number };
export type LifecycleEvent =
  | ({ readonly type: 'discovery.ready' } & WithNow)
  | ({ readonly type: 'election.leader'; readonly leader: NodeId | null; readonly term: number } & WithNow)
  | ({ readonly type: 'election.startServer'; readonly epoch: number } & WithNow)
  | ({ readonly type: 'election.stopServer'; readonly epoch: number } & WithNow)
  | ({ readonly type: 'cp.serverReady'; readonly epoch: number } & WithNow)
  | ({ readonly type: 'cp.serverFailed'; readonly epoch: number; readonly error: string } & WithNow)
  | ({ readonly type: 'cp.siteApplied'; readonly epoch: number } & WithNow)
  | ({ readonly type: 'cp.siteFailed'; readonly epoch: number; readonly error: string } & WithNow)
  | ({ readonly type: 'cp.workerReady'; readonly leader: NodeId; readonly epoch: number } & WithNow)
  | ({
      readonly type: 'cp.workerFailed';
      readonly leader: NodeId;
      readonly epoch: number;
      readonly error: string;
    } & WithNow)
  | ({ readonly type: 'cp.stopped'; readonly epoch: number } & WithNow)
  | ({ readonly type: 'stepTimeout' } & WithNow)
  | ({ readonly type: 'retry' } & WithNow)
  | ({ readonly type: 'reconcile' } & WithNow);

export interface LifecycleInput {
  readonly self: NodeId;
  readonly timing?: LifecycleTiming;
  readonly witness?: boolean;
  readonly now: number;
}

const backoff = (c: LifecycleContext): number =>
  Math.min(c.timing.retryMaxMs, c.timing.retryMinMs * 2 ** Math.min(c.attempt, 16));
const ev = <T extends LifecycleEvent['type']>(e: LifecycleEvent, _t: T) =>
  e as Extract<LifecycleEvent, { type: T }>;
const nowOf = (e: { type: string }): number => ('now' in e && typeof e.now === 'number' ? e.now : 0);

export const lifecycleMachine = setup({
  types: { context: {} as LifecycleContext, events: {} as LifecycleEvent, input: {} as LifecycleInput },
  delays: {
    discoveryWindow: ({ context }) => context.timing.discoveryWindowMs,
    serverStart: ({ context }) => context.timing.serverStartTimeoutMs,
    siteApply: ({ context }) => context.timing.siteApplyTimeoutMs,
    join: ({ context }) => context.timing.joinTimeoutMs,
    reconcile: ({ context }) => context.timing.reconcileEveryMs,
    backoff: ({ context }) => backoff(context),
    joinBackoff: ({ context }) => Math.min(context.timing.joinRetryMaxMs, backoff(context)),
  },
  guards: {
    leaderIsOther: ({ context, event }) =>
      event.type === 'election.leader' && event.leader !== null && event.leader !== context.self,
    leaderLost: ({ event }) => event.type === 'election.leader' && event.leader === null,
    /** A new leader or a new term: the worker must rejoin. */
    leaderMoved: ({ context, event }) =>
      event.type === 'election.leader' &&
      event.leader !== null &&
      event.leader !== context.self &&
      (context.joined === null ||
        context.joined.leader !== event.leader ||
        context.joined.epoch !== event.term),
    currentEpoch: ({ context, event }) => 'epoch' in event && event.epoch === context.serverEpoch,
    currentJoin: ({ context, event }) =>
      'leader' in event &&
      'epoch' in event &&
      context.joined !== null &&
      event.leader === context.joined.leader &&
      event.epoch === context.joined.epoch,
    knownLeaderIsOther: ({ context }) => context.leader !== null && context.leader !== context.self,
    isWitness: ({ context }) => context.witness,
  },
  actions: {
    // Effects for the shell.
    startControlPlane: (_, _p: { epoch: number }) => {},
    stopControlPlane: (_, _p: { epoch: number; reason: string }) => {},
    applySite: (_, _p: { epoch: number }) => {},
    joinControlPlane: (_, _p: { leader: NodeId; epoch: number }) => {},
    resetWorker: (_, _p: { reason: string }) => {},

    noteLeader: assign(({ event }) => {
      const e = ev(event, 'election.leader');
      return { leader: e.leader, term: e.term };
    }),
    adoptEpoch: assign(({ event, context }) => {
      const e = ev(event, 'election.startServer');
      return {
        serverEpoch: e.epoch,
        term: Math.max(context.term, e.epoch),
        leader: context.self,
        attempt: 0,
        lastError: null,
        stepSince: e.now,
      };
    }),
    clearServer: assign({ serverEpoch: null }),
    targetLeader: assign(({ context, event }) => {
      const e = ev(event, 'election.leader');
      return {
        joined: { leader: e.leader!, epoch: e.term },
        leader: e.leader,
        term: e.term,
        attempt: 0,
        lastError: null,
        stepSince: e.now ?? context.stepSince,
      };
    }),
    targetKnownLeader: assign(({ context, event }) => ({
      joined: { leader: context.leader!, epoch: context.term },
      attempt: 0,
      lastError: null,
      stepSince: nowOf(event),
    })),
    clearWorker: assign({ joined: null }),
    failed: assign(({ context, event }) => ({
      attempt: context.attempt + 1,
      lastError:
        'error' in event ? String(event.error) : `${event.type} after ${nowOf(event) - context.stepSince} ms`,
    })),
    stepStarted: assign(({ event }) => ({ stepSince: nowOf(event) })),
    succeeded: assign({ attempt: 0, lastError: null }),

    armDiscovery: raise({ type: 'stepTimeout', now: 0 }, { id: 'step', delay: 'discoveryWindow' }),
    armServerStart: raise({ type: 'stepTimeout', now: 0 }, { id: 'step', delay: 'serverStart' }),
    armSiteApply: raise({ type: 'stepTimeout', now: 0 }, { id: 'step', delay: 'siteApply' }),
    armJoin: raise({ type: 'stepTimeout', now: 0 }, { id: 'step', delay: 'join' }),
    disarmStep: cancel('step'),
    armRetry: raise({ type: 'retry', now: 0 }, { id: 'retry', delay: 'backoff' }),
    armJoinRetry: raise({ type: 'retry', now: 0 }, { id: 'retry', delay: 'joinBackoff' }),
    disarmRetry: cancel('retry'),
    armReconcile: raise({ type: 'reconcile', now: 0 }, { id: 'reconcile', delay: 'reconcile' }),
    disarmReconcile: cancel('reconcile'),
  },
}).createMachine({
  id: 'lifecycle',
  context: ({ input }) => ({
    self: input.self,
    timing: input.timing ?? defaultLifecycleTiming,
    witness: input.witness ?? false,
    leader: null,
    term: 0,
    serverEpoch: null,
    joined: null,
    attempt: 0,
    lastError: null,
    stepSince: input.now,
  }),
  initial: 'discovering',
  on: {
    // Fencing first, from any state: a higher term or a lost lease stops this robot's server at once.
    'election.stopServer': { guard: 'currentEpoch', target: '.demoting' },
    'election.startServer': { target: '.leading', actions: ['adoptEpoch'] },
  },
  states: {
    discovering: {
      entry: ['armDiscovery'],
      exit: ['disarmStep'],
      on: {
        'discovery.ready': 'electing',
        stepTimeout: 'electing',
        'election.leader': [
          { guard: 'isWitness', target: 'witnessing', actions: ['noteLeader'] },
          { guard: 'leaderIsOther', target: 'following', actions: ['targetLeader'] },
          { actions: ['noteLeader'] },
        ],
      },
    },
    electing: {
      // Coming back from demoting, the election may already name the next leader.
      always: [
        { guard: 'isWitness', target: 'witnessing' },
        { guard: 'knownLeaderIsOther', target: 'following', actions: ['targetKnownLeader'] },
      ],
      on: {
        'election.leader': [
          { guard: 'leaderIsOther', target: 'following', actions: ['targetLeader'] },
          { actions: ['noteLeader'] },
        ],
      },
    },
    leading: {
      exit: ['disarmStep', 'disarmRetry', 'disarmReconcile'],
      initial: 'startingServer',
      on: {
        'election.leader': { actions: ['noteLeader'] },
      },
      states: {
        startingServer: {
          entry: [
            // A robot that was a worker leaves its old leader before it serves.
            { type: 'resetWorker', params: { reason: 'becoming the server' } },
            'clearWorker',
            'stepStarted',
            { type: 'startControlPlane', params: ({ context }) => ({ epoch: context.serverEpoch! }) },
            'armServerStart',
          ],
          exit: ['disarmStep'],
          on: {
            'cp.serverReady': { guard: 'currentEpoch', target: 'applyingSite', actions: ['succeeded'] },
            'cp.serverFailed': { guard: 'currentEpoch', target: 'serverRetry', actions: ['failed'] },
            stepTimeout: { target: 'serverRetry', actions: ['failed'] },
          },
        },
        serverRetry: {
          entry: [
            {
              type: 'stopControlPlane',
              params: ({ context }) => ({ epoch: context.serverEpoch!, reason: 'start failed; retrying' }),
            },
            'armRetry',
          ],
          exit: ['disarmRetry'],
          on: { retry: 'startingServer' },
        },
        applyingSite: {
          entry: [
            'stepStarted',
            { type: 'applySite', params: ({ context }) => ({ epoch: context.serverEpoch! }) },
            'armSiteApply',
          ],
          exit: ['disarmStep'],
          on: {
            'cp.siteApplied': { guard: 'currentEpoch', target: 'serving', actions: ['succeeded'] },
            'cp.siteFailed': { guard: 'currentEpoch', target: 'siteRetry', actions: ['failed'] },
            stepTimeout: { target: 'siteRetry', actions: ['failed'] },
          },
        },
        siteRetry: {
          entry: ['armRetry'],
          exit: ['disarmRetry'],
          on: { retry: 'applyingSite' },
        },
        serving: {
          entry: ['armReconcile'],
          exit: ['disarmReconcile'],
          on: { reconcile: 'applyingSite' },
        },
      },
    },
    /** A witness: follows the election, votes, and runs nothing. */
    witnessing: {
      on: { 'election.leader': { actions: ['noteLeader'] } },
    },
    following: {
      exit: ['disarmStep', 'disarmRetry'],
      initial: 'joining',
      on: {
        'election.leader': [
          { guard: 'leaderLost', target: 'recovering', actions: ['noteLeader'] },
          // A new leader: point the worker at it, deterministically, from scratch.
          { guard: 'leaderMoved', target: '.joining', reenter: true, actions: ['targetLeader'] },
          { actions: ['noteLeader'] },
        ],
      },
      states: {
        joining: {
          entry: [
            'stepStarted',
            {
              type: 'joinControlPlane',
              params: ({ context }) => ({ leader: context.joined!.leader, epoch: context.joined!.epoch }),
            },
            'armJoin',
          ],
          exit: ['disarmStep'],
          on: {
            'cp.workerReady': { guard: 'currentJoin', target: 'ready', actions: ['succeeded'] },
            'cp.workerFailed': { guard: 'currentJoin', target: 'joinRetry', actions: ['failed'] },
            stepTimeout: { target: 'joinRetry', actions: ['failed'] },
          },
        },
        joinRetry: {
          entry: ['armJoinRetry'],
          exit: ['disarmRetry'],
          on: { retry: 'joining' },
        },
        ready: {},
      },
    },
    /** The leader is gone. Workloads keep running on this robot; it rejoins whoever leads next. */
    recovering: {
      on: {
        'election.leader': [
          { guard: 'leaderIsOther', target: 'following', actions: ['targetLeader'] },
          { actions: ['noteLeader'] },
        ],
      },
    },
    /** A higher term was seen: the server stops at once, the worker state is reset to rejoin. */
    demoting: {
      entry: [
        {
          type: 'stopControlPlane',
          params: ({ context }) => ({ epoch: context.serverEpoch!, reason: 'a higher term or a lost lease' }),
        },
        { type: 'resetWorker', params: { reason: 'demoted: rejoin the next leader as a worker' } },
        'clearWorker',
      ],
      on: {
        'cp.stopped': { guard: 'currentEpoch', target: 'electing', actions: ['clearServer'] },
        'election.leader': { actions: ['noteLeader'] },
      },
    },
  },
});

export type LifecycleSnapshot = ReturnType<typeof initialTransition<typeof lifecycleMachine>>[0];

export type LifecycleEffect =
  | { readonly kind: 'startControlPlane'; readonly epoch: number }
  | { readonly kind: 'stopControlPlane'; readonly epoch: number; readonly reason: string }
  | { readonly kind: 'applySite'; readonly epoch: number }
  | { readonly kind: 'joinControlPlane'; readonly leader: NodeId; readonly epoch: number }
  | { readonly kind: 'resetWorker'; readonly reason: string }
  | {
      readonly kind: 'armTimer';
      readonly id: 'step' | 'retry' | 'reconcile';
      readonly delayMs: number;
      readonly event: LifecycleEvent;
    }
  | { readonly kind: 'disarmTimer'; readonly id: 'step' | 'retry' | 'reconcile' };

const EFFECTS = new Set([
  'startControlPlane',
  'stopControlPlane',
  'applySite',
  'joinControlPlane',
  'resetWorker',
]);

function toEffects(actions: readonly { type: string; params?: unknown }[]): LifecycleEffect[] {
  const out: LifecycleEffect[] = [];
  for (const a of actions) {
    const p = (a.params ?? {}) as Record<string, unknown>;
    if (a.type === 'xstate.raise' && typeof p.delay === 'number') {
      out.push({ kind: 'armTimer', id: p.id as 'step', delayMs: p.delay, event: p.event as LifecycleEvent });
    } else if (a.type === 'xstate.cancel') out.push({ kind: 'disarmTimer', id: p.sendId as 'step' });
    else if (EFFECTS.has(a.type)) out.push({ kind: a.type, ...p } as LifecycleEffect);
  }
  return out;
}

export function startLifecycle(input: LifecycleInput): {
  snapshot: LifecycleSnapshot;
  effects: LifecycleEffect[];
} {
  const [snapshot, actions] = initialTransition(lifecycleMachine, input);
  return { snapshot, effects: toEffects(actions) };
}

const transitionLifecycle = pureStepper(lifecycleMachine, { self: 'x', now: 0 });

export function stepLifecycle(
  snapshot: LifecycleSnapshot,
  event: LifecycleEvent,
): { snapshot: LifecycleSnapshot; effects: LifecycleEffect[] } {
  const [next, actions] = transitionLifecycle(snapshot, event);
  return { snapshot: next, effects: toEffects(actions) };
}

/** phaseOf renders the lifecycle state as `leading.serving`, `following.ready`, … */
export function phaseOf(snapshot: LifecycleSnapshot): string {
  const v = snapshot.value as unknown;
  if (typeof v === 'string') return v;
  const [k, sub] = Object.entries(v as Record<string, string>)[0]!;
  return `${k}.${sub}`;
}
