/**
 * Why UdpTransport receives through dgram-as-promised's push listener and not its recv()
 * (docs/protocol-wire.md, "Socket choice"). Both paths get the same 200 datagrams while the
 * consumer awaits 1 ms of work per datagram. If recv() ever stops losing them, this test fails
 * so that the choice is looked at again.
 */
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { test } from 'node:test';
import DgramAsPromised from 'dgram-as-promised';

const N = 200;

async function blast(port: number): Promise<void> {
  const s = createSocket('udp4');
  for (let i = 0; i < N; i++)
    await new Promise<void>((r) => s.send(Buffer.from(String(i)), port, '127.0.0.1', () => r()));
  s.close();
}

test('the push listener receives every datagram while the consumer is busy; recv() does not', async () => {
  // The path UdpTransport uses: the callback given to createSocket.
  let pushed = 0;
  const push = DgramAsPromised.createSocket({ type: 'udp4' }, () => {
    pushed++;
  });
  await push.bind(0, '127.0.0.1');
  const busyConsumer: Promise<void>[] = [];
  push.socket.on('message', () => busyConsumer.push(new Promise((r) => setTimeout(r, 1))));
  await blast(push.address().port);
  for (let i = 0; i < 100 && pushed < N; i++) await new Promise((r) => setTimeout(r, 10));
  await push.close();

  // The promise path: recv() in a loop, with the same 1 ms of work per datagram.
  const pull = DgramAsPromised.createSocket({ type: 'udp4' });
  await pull.bind(0, '127.0.0.1');
  let pulled = 0;
  const reader = (async () => {
    for (;;) {
      const p = await pull.recv();
      if (!p) return;
      pulled++;
      await new Promise((r) => setTimeout(r, 1));
    }
  })();
  await blast(pull.address().port);
  await new Promise((r) => setTimeout(r, 500));
  await pull.close();
  await reader.catch(() => {});

  assert.equal(pushed, N, 'the push listener lost datagrams');
  assert.ok(
    pulled < N,
    `recv() received all ${pulled}: re-evaluate the socket choice in docs/protocol-wire.md`,
  );
  process.stdout.write(`# push listener: ${pushed}/${N}; recv() with a busy consumer: ${pulled}/${N}\n`);
});
