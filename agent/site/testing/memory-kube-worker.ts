/**
 * A child for ChildObjectClient's tests (agent/site/kube-child.test.ts): the child's side of the
 * protocol (serveObjectClient) over an InMemoryObjectClient, where two kinds misbehave on purpose:
 * reading a `Crash` ends the process with code 3 after a line on stderr, and reading a `Hang`
 * never answers.
 */
import { serveObjectClient } from '../kube-child.ts';
import { InMemoryObjectClient } from '../in-memory-client.ts';
import type { ObjectRef } from '../object-client.ts';
import type { KubeObject } from '../objects.ts';

class MisbehavingClient extends InMemoryObjectClient {
  override async get(ref: ObjectRef): Promise<KubeObject | null> {
    if (ref.kind === 'Crash') {
      process.stderr.write(`crashing on ${ref.name}, as the test asked\n`);
      process.exit(3);
    }
    if (ref.kind === 'Hang') return new Promise(() => undefined);
    return super.get(ref);
  }
}

serveObjectClient(() => new MisbehavingClient());
