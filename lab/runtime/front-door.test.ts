/**
 * The fenced front door on real loopback sockets: it forwards while the lease holds, and once the
 * lease has run out it cuts open connections at their next chunk and refuses new ones, dating the
 * close by the lease it ran out of.
 */
import assert from 'node:assert/strict';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { after, test } from 'node:test';
import { freePort } from '../kube-apiserver/apiserver.ts';
import { FrontDoor } from './front-door.ts';

const servers: Server[] = [];
after(() => servers.forEach((s) => s.close()));

function echoServer(port: number): Promise<void> {
  const s = createServer((c) => c.pipe(c));
  servers.push(s);
  return new Promise((r) => s.listen(port, '127.0.0.1', () => r()));
}

function roundTrip(sock: Socket, text: string): Promise<string | null> {
  return new Promise((resolve) => {
    sock.once('data', (d: Buffer) => resolve(d.toString()));
    sock.once('close', () => resolve(null));
    sock.write(text);
  });
}

const connected = (port: number) =>
  new Promise<Socket>((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => resolve(s));
    s.once('error', reject);
  });

test('the front door forwards under a valid lease and shuts when it runs out', async () => {
  const upstream = await freePort();
  const port = await freePort();
  await echoServer(upstream);
  let now = 1000;
  let expiry: number | null = 5000;
  const closed: number[] = [];
  const door = new FrontDoor({
    listen: { host: '127.0.0.1', port },
    upstream: { host: '127.0.0.1', port: upstream },
    leaseExpiresAt: () => expiry,
    now: () => now,
    onClosed: (at) => closed.push(at),
  });
  await door.start();
  try {
    const a = await connected(port);
    assert.equal(await roundTrip(a, 'ping'), 'ping');
    assert.equal(door.closedAt(), null);
    // The robot froze past its lease: time jumps, the lease did not move.
    now = 9000;
    assert.equal(await roundTrip(a, 'stale write'), null, 'the open connection is cut at its next chunk');
    const b = await connected(port);
    assert.equal(await roundTrip(b, 'new'), null, 'a new connection is refused');
    assert.equal(door.closedAt(), 5000, 'closed when the lease ran out, not when noticed');
    assert.deepEqual(closed, [5000]);
    assert.ok(door.refused >= 2);
    // Not leading at all: closed too.
    expiry = null;
    const c = await connected(port);
    assert.equal(await roundTrip(c, 'x'), null);
  } finally {
    await door.stop();
  }
});
