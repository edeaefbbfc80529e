/**
 * The one contract every Transport implementation passes (run by transport.contract.test.ts against
 * UdpTransport and InMemoryTransport).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Message } from '../../statecharts/messages.ts';
import type { Transport } from './transport.ts';

export interface TransportPair {
  readonly a: Transport;
  readonly b: Transport;
  /** Introduce the two to each other (as discovery would). */
  connect(): void;
  close(): Promise<void>;
}

const vote = (from: string, to: string, term: number): Message => ({
  type: 'vote',
  from,
  to,
  term,
  lastIndex: 0,
  lastTerm: 0,
  transfer: false,
});

function nextMessage(t: Transport, timeoutMs = 2000): Promise<Message> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no message within the timeout')), timeoutMs);
    t.onMessage((m) => {
      clearTimeout(timer);
      resolve(m);
    });
  });
}

export function describeTransportContract(name: string, make: () => Promise<TransportPair>): void {
  describe(`Transport contract: ${name}`, () => {
    test('a message sent to a known peer arrives intact, and the peer can answer', async () => {
      const p = await make();
      try {
        p.connect();
        const got = nextMessage(p.b);
        p.a.send(vote('a', 'b', 7));
        assert.deepEqual(await got, vote('a', 'b', 7));
        const back = nextMessage(p.a);
        p.b.send({ type: 'voteResp', from: 'b', to: 'a', term: 7, granted: true });
        assert.deepEqual(await back, { type: 'voteResp', from: 'b', to: 'a', term: 7, granted: true });
        assert.equal(p.a.stats().sent, 1);
        assert.equal(p.b.stats().received, 1);
      } finally {
        await p.close();
      }
    });

    test('a message to an unknown peer is counted, not thrown', async () => {
      const p = await make();
      try {
        p.a.send(vote('a', 'nobody', 1));
        assert.equal(p.a.stats().unknownPeer, 1);
        assert.equal(p.a.stats().sent, 0);
      } finally {
        await p.close();
      }
    });

    test('a handler that throws is counted and the transport keeps delivering', async () => {
      const p = await make();
      try {
        p.connect();
        let calls = 0;
        p.b.onMessage(() => {
          calls++;
          throw new Error('boom');
        });
        p.a.send(vote('a', 'b', 1));
        p.a.send(vote('a', 'b', 2));
        for (let i = 0; i < 100 && calls < 2; i++) await new Promise((r) => setTimeout(r, 10));
        assert.equal(calls, 2);
        assert.equal(p.b.stats().handlerErrors, 2);
      } finally {
        await p.close();
      }
    });

    test('a burst of 300 messages arrives complete on a lossless link', async () => {
      const p = await make();
      try {
        p.connect();
        const terms = new Set<number>();
        p.b.onMessage((m) => terms.add(m.term));
        for (let i = 1; i <= 300; i++) p.a.send(vote('a', 'b', i));
        for (let i = 0; i < 200 && terms.size < 300; i++) await new Promise((r) => setTimeout(r, 10));
        assert.equal(terms.size, 300);
      } finally {
        await p.close();
      }
    });

    test('close is idempotent and a closed transport sends nothing', async () => {
      const p = await make();
      p.connect();
      await p.a.close();
      await p.a.close();
      p.a.send(vote('a', 'b', 1));
      assert.equal(p.a.stats().sent, 0);
      await p.close();
    });
  });
}
