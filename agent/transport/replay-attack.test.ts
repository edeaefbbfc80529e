/**
 * The replay attack on incarnations, on real UDP sockets on loopback: a frame that robot a sent in
 * an earlier boot, captured off the air and replayed to a receiver that never saw that boot, must
 * neither move a's address at the receiver nor mute a's live boot there.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { test } from 'node:test';
import type { Message } from '../../statecharts/messages.ts';
import { siteKeyrings } from '../site-key.ts';
import { decodeIncarnationFrame } from './codec.ts';
import { UdpTransport } from './udp.ts';

const rings = siteKeyrings(randomBytes(32), 'lab', ['a', 'b'], ['a', 'b']);
const open = (self: string) =>
  UdpTransport.open({ self, siteId: 'lab', keys: rings.get(self)!, port: 0, bindAddress: '127.0.0.1' });
const vote = (term: number): Message => ({
  type: 'vote',
  from: 'a',
  to: 'b',
  term,
  lastIndex: 0,
  lastTerm: 0,
  transfer: false,
});

async function waitFor(what: string, ok: () => boolean, ms = 3000): Promise<void> {
  const end = performance.now() + ms;
  while (!ok()) {
    if (performance.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function udpSocket(): Promise<Socket> {
  const s = createSocket('udp4');
  return new Promise((r) => s.bind(0, '127.0.0.1', () => r(s)));
}

test('a frame replayed from an earlier boot neither moves the sender’s address nor mutes its live boot', async () => {
  // a's earlier boot sends a vote; the attacker captures it (here: it is the receiver of that send).
  const capture = await udpSocket();
  const captured = new Promise<Buffer>((r) => capture.once('message', (buf) => r(buf)));
  const earlier = await open('a');
  earlier.setPeer('b', { host: '127.0.0.1', port: capture.address().port });
  earlier.send(vote(1));
  const frame = await captured;
  await earlier.close(); // that boot is over

  const a = await open('a'); // a's live boot
  const b = await open('b');
  const got: number[] = [];
  b.onMessage((m) => got.push(m.term));
  const attackerChallenges: string[] = [];
  capture.on('message', (buf) => {
    // What a's keys open: the challenges b sends to whoever claims to be a.
    const c = decodeIncarnationFrame(buf, {
      siteId: 'lab',
      key: (peer, generation) => rings.get('a')!.receiveKey(peer, generation),
    });
    if (c.ok) attackerChallenges.push(c.frame.kind);
  });
  try {
    a.setPeer('b', { host: '127.0.0.1', port: b.port });
    a.send(vote(2));
    await waitFor('b to accept a’s live boot', () => got.includes(2));
    assert.deepEqual(b.peerAddress('a'), { host: '127.0.0.1', port: a.port });

    // The replay, from the attacker's own socket, several times.
    for (let i = 0; i < 3; i++) capture.send(frame, b.port, '127.0.0.1');
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(b.peerAddress('a'), { host: '127.0.0.1', port: a.port }, 'the address did not move');
    assert.deepEqual(got, [2], 'the replayed vote was not delivered');

    // a's live boot is not muted: every one of its next datagrams is delivered.
    for (let t = 3; t < 103; t++) a.send(vote(t));
    await waitFor('all of a’s next 100 datagrams', () => got.length === 101);
    assert.deepEqual(
      got.slice(1),
      Array.from({ length: 100 }, (_, i) => i + 3),
    );
    assert.deepEqual(b.peerAddress('a'), { host: '127.0.0.1', port: a.port });
    // b asked the replayer to prove that boot alive; nobody could.
    await waitFor('b to challenge the replayed boot', () => attackerChallenges.length > 0);
    const s = b.stats();
    assert.equal(s.incarnationsConfirmed, 1, 'only the live boot was ever confirmed');
    assert.equal(s.dropped.replay, 0);
  } finally {
    capture.close();
    await Promise.all([a.close(), b.close()]);
  }
});

test('a receiver that restarted confirms the live boot before it accepts anything, replays included', async () => {
  const capture = await udpSocket();
  const captured = new Promise<Buffer>((r) => capture.once('message', (buf) => r(buf)));
  const a = await open('a');
  a.setPeer('b', { host: '127.0.0.1', port: capture.address().port });
  a.send(vote(1));
  const frame = await captured; // a frame of a's *live* boot, replayed to a b that knows nothing
  const b = await open('b');
  const got: number[] = [];
  b.onMessage((m) => got.push(m.term));
  try {
    capture.send(frame, b.port, '127.0.0.1');
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(b.peerAddress('a'), undefined, 'a replayed frame alone places no one');
    assert.equal(got.length, 0, 'nothing delivered before a’s incarnation answered');
    a.setPeer('b', { host: '127.0.0.1', port: b.port });
    a.send(vote(2));
    await waitFor('a’s own datagram to be delivered', () => got.includes(2));
    assert.deepEqual(b.peerAddress('a'), { host: '127.0.0.1', port: a.port }, 'the address is a’s own');
    // The held copy of the live boot's first vote counts once, as the first copy of it b accepted.
    assert.deepEqual(got, [1, 2]);
  } finally {
    capture.close();
    await Promise.all([a.close(), b.close()]);
  }
});
