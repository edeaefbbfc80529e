/**
 * pureTransition is xstate's `transition(logic, snapshot, event)` without its per-call cost.
 *
 * xstate's own transition() builds a throwaway actor on every call, and that actor eagerly computes
 * an initial snapshot: it runs the machine's context factory without input and resolves the initial
 * state. Profiling the agent showed two thirds of each election step spent there. This builds the
 * same inert actor scope once per machine and reuses it; the machine's own `transition` does the
 * work, and every action is collected instead of executed, exactly as in xstate's transition().
 * Safe because these machines invoke and spawn no actors, so the scope holds no per-call state.
 */
import {
  createActor,
  type AnyActorScope,
  type AnyStateMachine,
  type EventFromLogic,
  type SnapshotFrom,
} from 'xstate';

export type CollectedAction = { readonly type: string; readonly params?: unknown };

export interface PureStepper<M extends AnyStateMachine> {
  (snapshot: SnapshotFrom<M>, event: EventFromLogic<M>): [SnapshotFrom<M>, CollectedAction[]];
}

export function pureStepper<M extends AnyStateMachine>(machine: M, sampleInput: unknown): PureStepper<M> {
  // A valid input, so that building the scope's actor runs the context factory without error.
  const self = createActor(machine, { input: sampleInput } as never);
  let sink: CollectedAction[] = [];
  const scope = {
    self,
    defer: () => {},
    id: '',
    logger: () => {},
    sessionId: '',
    stopChild: () => {},
    system: self.system,
    emit: () => {},
    actionExecutor: (action: CollectedAction) => {
      sink.push(action);
    },
  } as unknown as AnyActorScope;
  return (snapshot, event) => {
    sink = [];
    const next = machine.transition(snapshot, event, scope) as SnapshotFrom<M>;
    return [next, sink];
  };
}
