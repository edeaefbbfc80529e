import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { test } from 'node:test';
import { EdgeError } from '../errors.ts';
import { decodeIncarnationFrame, encode, encodeIncarnationFrame } from './codec.ts';
import { InMemoryNetwork } from './in-memory.ts';
import { describeTransportContract } from './transport.contract.ts';
import { UdpTransport } from './udp.ts';
import { siteKeyrings } from '../site-key.ts';
import { HmacSha256 } from '../sha256.ts';

const key = randomBytes(32);
/** Two voters of site lab, a and b (and c), with their own keyrings. */
const rings = siteKeyrings(key, 'lab', ['a', 'b', 'c'], ['a', 'b', 'c']);
const keysOf = (id: string) => rings.get(id)!;
/** A UDP transport of robot `id` on loopback, on a free port. */
const openUdp = (id: string) =>
  UdpTransport.open({ self: id, siteId: 'lab', keys: keysOf(id), port: 0, bindAddress: '127.0.0.1' });

describeTransportContract('in-memory', async () => {
  const net = new InMemoryNetwork();
  const a = net.connect('a');
  const b = net.connect('b');
  return {
    a,
    b,
    connect: () => {
      a.setPeer('b', b.address);
      b.setPeer('a', a.address);
    },
    close: async () => {
      await a.close();
      await b.close();
    },
  };
});

describeTransportContract('UDP on loopback', async () => {
  const a = await openUdp('a');
  const b = await openUdp('b');
  return {
    a,
    b,
    connect: () => {
      a.setPeer('b', { host: '127.0.0.1', port: b.port });
      b.setPeer('a', { host: '127.0.0.1', port: a.port });
    },
    close: async () => {
      await a.close();
      await b.close();
    },
  };
});

test('UDP: forged, replayed, foreign-site and garbage datagrams are dropped and counted by reason', async () => {
  const b = await openUdp('b');
  const raw = createSocket('udp4');
  const got: unknown[] = [];
  b.onMessage((m) => got.push(m));
  const msg = {
    type: 'vote' as const,
    from: 'a',
    to: 'b',
    term: 1,
    lastIndex: 0,
    lastTerm: 0,
    transfer: false,
  };
  const aToB = keysOf('a').sendKey('b')!;
  const good = encode(msg, { siteId: 'lab', key: aToB, incarnation: 5, counter: 1 });
  const forgedKey = { generation: aToB.generation, mac: new HmacSha256(randomBytes(32)) };
  const forged = encode(msg, { siteId: 'lab', key: forgedKey, incarnation: 5, counter: 2 });
  const otherSite = encode(msg, { siteId: 'other', key: aToB, incarnation: 5, counter: 3 });
  const send = (buf: Buffer) => new Promise<void>((r) => raw.send(buf, b.port, '127.0.0.1', () => r()));
  // The raw socket is sender a's live incarnation 5: it answers b's challenge, as a's transport would.
  const challenged = new Promise<void>((done) =>
    raw.on('message', (buf) => {
      const c = decodeIncarnationFrame(buf, {
        siteId: 'lab',
        key: (peer, generation) => keysOf('a').receiveKey(peer, generation),
      });
      if (!c.ok || c.frame.kind !== 'challenge') return;
      const answer = { kind: 'answer' as const, from: 'a', to: 'b', nonce: c.frame.nonce };
      void send(
        encodeIncarnationFrame(answer, { siteId: 'lab', key: aToB, incarnation: 5, counter: 0 }),
      ).then(done);
    }),
  );
  try {
    await send(good);
    await challenged; // b holds the first datagram until a's incarnation answers
    await send(good); // replay
    await send(forged);
    await send(otherSite);
    await send(Buffer.from('hello'));
    await send(good.subarray(0, good.length - 3));
    await send(Buffer.alloc(1500));
    for (let i = 0; i < 100; i++) {
      const s = b.stats();
      const dropped = Object.values(s.dropped).reduce((x, y) => x + y, 0);
      if (s.received + dropped >= 7) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    const s = b.stats();
    assert.equal(got.length, 1, 'only the first genuine datagram is delivered');
    assert.equal(s.dropped.replay, 1);
    assert.equal(s.dropped['bad-mac'], 2, `${JSON.stringify(s.dropped)}`);
    assert.equal(s.dropped['wrong-site'], 1);
    assert.equal(s.dropped.oversized, 1);
    const total = Object.values(s.dropped).reduce((x, y) => x + y, 0);
    assert.equal(s.received + total, 7, 'every datagram is accounted for');
    assert.equal(s.challengesSent, 1);
    assert.equal(s.incarnationsConfirmed, 1);
  } finally {
    raw.close();
    await b.close();
  }
});

test('UDP: datagrams that arrive while the event loop is blocked are not lost', async () => {
  const a = await openUdp('a');
  const b = await openUdp('b');
  try {
    a.setPeer('b', { host: '127.0.0.1', port: b.port });
    let n = 0;
    b.onMessage(() => {
      n++;
      // A slow consumer: every 50th message blocks the loop for 20 ms (an fsync, a GC pause).
      if (n % 50 === 0) {
        const until = performance.now() + 20;
        while (performance.now() < until);
      }
    });
    for (let i = 0; i < 500; i++)
      a.send({ type: 'preVote', from: 'a', to: 'b', term: i + 1, lastIndex: 0, lastTerm: 0 });
    for (let i = 0; i < 300 && n < 500; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(n, 500);
  } finally {
    await a.close();
    await b.close();
  }
});

test('UDP: a peer at an IP literal is sent to at once, and a seed given by host name goes through the resolver', async () => {
  const a = await openUdp('a');
  const b = await openUdp('b');
  const c = await openUdp('c');
  const got: string[] = [];
  const heard = new Promise<void>((done) => {
    const note = (m: { from: string; to: string }) => {
      got.push(`${m.from}->${m.to}`);
      if (got.length === 2) done();
    };
    b.onMessage(note);
    c.onMessage(note);
  });
  try {
    a.setPeer('b', { host: '127.0.0.1', port: b.port });
    a.setPeer('c', { host: 'localhost', port: c.port });
    const ping = (to: string) => ({ type: 'timeoutNow' as const, from: 'a', to, term: 1 });
    a.send(ping('b'));
    a.send(ping('c'));
    await heard;
    assert.deepEqual(got.sort(), ['a->b', 'a->c']);
    assert.equal(a.stats().sendErrors, 0);
  } finally {
    await Promise.all([a.close(), b.close(), c.close()]);
  }
});

test('UDP: a hint never moves a peer its own datagram placed, until the peer is released', async () => {
  const a = await openUdp('a');
  const b = await openUdp('b');
  const elsewhere = { host: '127.0.0.1', port: 9 };
  try {
    const at = { host: '127.0.0.1', port: b.port };
    a.setPeer('b', elsewhere);
    b.setPeer('a', { host: '127.0.0.1', port: a.port });
    a.onMessage(() => {});
    // b speaks: a places it where its authenticated datagrams come from.
    b.send({ type: 'timeoutNow', from: 'b', to: 'a', term: 1 });
    for (let i = 0; i < 300 && a.stats().incarnationsConfirmed === 0; i++)
      await new Promise((r) => setTimeout(r, 5));
    assert.deepEqual(a.peerAddress('b'), at);
    a.setPeer('b', elsewhere);
    assert.deepEqual(a.peerAddress('b'), at, 'a hint never moves a placed peer');
    // Released (the agent called b, a worker, dead): the next hint places it.
    a.releasePeer('b');
    assert.deepEqual(a.peerAddress('b'), at, 'releasing alone moves nothing');
    a.setPeer('b', elsewhere);
    assert.deepEqual(a.peerAddress('b'), elsewhere);
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
});

test('udp: a port another process holds is refused with a hint that names network.port', async () => {
  const a = await openUdp('a');
  try {
    await assert.rejects(
      UdpTransport.open({
        self: 'b',
        siteId: 'lab',
        keys: keysOf('b'),
        port: a.port,
        bindAddress: '127.0.0.1',
      }),
      (e: unknown) =>
        e instanceof EdgeError &&
        e.code === 'EDGE_TRANSPORT_BIND' &&
        e.message.includes('EADDRINUSE') &&
        (e.hint ?? '').includes('network.port'),
    );
  } finally {
    await a.close();
  }
});
