/**
 * A helper process for state-store.test.ts: it writes ever-increasing hard states and logs into a
 * state directory as fast as it can, so the test can SIGKILL it at random moments mid-write.
 * It prints "ready" once, then "<term>" after each completed pair of writes.
 */
import { StateStore } from './state-store.ts';

const store = new StateStore(process.argv[2]!);
const start = store.load();
let term = start.term;
let log = [...start.log];
process.stdout.write('ready\n');
for (;;) {
  term++;
  log = [...log.slice(-50), { term, kind: 'site' as const, data: `spec-${term}-${'x'.repeat(term % 300)}` }];
  // The agent's order: the term first, then entries of that term (the statechart emits them so).
  store.saveHardState(term, `n${term % 5}`);
  store.saveLog(log);
  process.stdout.write(`${term}\n`);
}
