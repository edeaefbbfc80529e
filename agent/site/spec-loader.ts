/**
 * `node edgectl-agent-site.cjs`: the site spec loader of the bundled agent. It reads one request
 * (agent/site/spec-subprocess.ts SpecRequest) as JSON on stdin, answers it with fileSiteSpecSource
 * and prints the answer as JSON on stdout. `npm run build:agent` builds it, with zod and yaml, into
 * its own CommonJS file, so that the agent's process never loads them.
 */
import { answerSpecRequest, type SpecRequest } from './spec-subprocess.ts';
import { fileSiteSpecSource } from './spec-source.ts';

let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d: string) => (input += d));
process.stdin.on('end', () => {
  void answerSpecRequest(JSON.parse(input) as SpecRequest, fileSiteSpecSource).then((reply) =>
    process.stdout.write(JSON.stringify(reply)),
  );
});
