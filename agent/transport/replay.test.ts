import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { ReplayWindow, type ReplayVerdict } from './replay.ts';

const A = 'robot-a';
const BOOT_1 = 0x1111_1111;
const BOOT_2 = 0x2222_2222;
const BOOT_3 = 0x3333_3333;

function checkAll(
  w: ReplayWindow,
  sender: string,
  incarnation: number,
  counters: readonly number[],
): ReplayVerdict[] {
  return counters.map((c) => w.check(sender, incarnation, c));
}

/** A window where the senders' BOOT_1 answered a challenge (udp.ts): their datagrams count from now on. */
function confirmed(w: ReplayWindow, ...senders: string[]): ReplayWindow {
  for (const s of senders) assert.equal(w.confirm(s, BOOT_1), 'ok');
  return w;
}

/** mulberry32: a small seeded PRNG, so a failing sequence can be replayed from its seed. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('one incarnation', () => {
  test('in-order counters are all accepted', () => {
    const w = confirmed(new ReplayWindow(), A, 'robot-a', 'robot-b');
    for (let c = 0; c < 5000; c++) assert.equal(w.check(A, BOOT_1, c), 'ok', `counter ${c}`);
  });

  test('out-of-order counters within the window are accepted once', () => {
    const w = confirmed(new ReplayWindow(), A, 'robot-a', 'robot-b');
    assert.deepEqual(checkAll(w, A, BOOT_1, [100, 50, 99, 1, 0, 101, 75]), [
      'ok',
      'ok',
      'ok',
      'ok',
      'ok',
      'ok',
      'ok',
    ]);
    assert.deepEqual(checkAll(w, A, BOOT_1, [100, 50, 99, 1, 0, 101, 75]), Array(7).fill('replay'));
  });

  test('duplicates are replays, also after the window slid', () => {
    const w = confirmed(new ReplayWindow(), A, 'robot-a', 'robot-b');
    assert.equal(w.check(A, BOOT_1, 7), 'ok');
    assert.equal(w.check(A, BOOT_1, 7), 'replay');
    assert.equal(w.check(A, BOOT_1, 900), 'ok');
    assert.equal(w.check(A, BOOT_1, 7), 'replay', '7 is still inside the window below 900');
    assert.equal(w.check(A, BOOT_1, 8), 'ok', '8 was never seen');
  });

  test('counters a whole window or more below the highest are too old', () => {
    const w = confirmed(new ReplayWindow(), A, 'robot-a', 'robot-b');
    assert.equal(w.check(A, BOOT_1, 2000), 'ok');
    assert.equal(w.check(A, BOOT_1, 2000 - 1024), 'replay');
    assert.equal(w.check(A, BOOT_1, 0), 'replay');
    assert.equal(w.check(A, BOOT_1, 2000 - 1023), 'ok', 'the oldest counter the window still tracks');
  });

  test('a jump of more than a window forgets everything below it', () => {
    const w = confirmed(new ReplayWindow(), A, 'robot-a', 'robot-b');
    assert.deepEqual(checkAll(w, A, BOOT_1, [0, 1, 2, 3]), ['ok', 'ok', 'ok', 'ok']);
    assert.equal(w.check(A, BOOT_1, 5000), 'ok');
    assert.equal(w.check(A, BOOT_1, 3976), 'replay', 'too old');
    assert.equal(w.check(A, BOOT_1, 3977), 'ok');
    // 4096..4099 share their bits with 0..3: those bits must have been cleared by the jump.
    assert.deepEqual(checkAll(w, A, BOOT_1, [4096, 4097, 4098, 4099]), ['ok', 'ok', 'ok', 'ok']);
  });

  test('a slide of less than a window clears exactly the counters that left it', () => {
    const w = confirmed(new ReplayWindow({ windowSize: 64 }), A, 'robot-a', 'robot-b');
    for (let c = 0; c < 64; c++) w.check(A, BOOT_1, c);
    assert.equal(w.check(A, BOOT_1, 70), 'ok'); // the window is now 7..70
    assert.equal(w.check(A, BOOT_1, 6), 'replay');
    for (let c = 7; c < 64; c++) assert.equal(w.check(A, BOOT_1, c), 'replay', `counter ${c} was seen`);
    for (const c of [64, 65, 66, 67, 68, 69])
      assert.equal(w.check(A, BOOT_1, c), 'ok', `counter ${c} was not`);
  });

  test('counters up to 2^53 - 1 work', () => {
    const w = confirmed(new ReplayWindow(), A, 'robot-a', 'robot-b');
    const top = Number.MAX_SAFE_INTEGER;
    assert.deepEqual(checkAll(w, A, BOOT_1, [top - 5, top, top - 1, top]), ['ok', 'ok', 'ok', 'replay']);
  });

  test('senders are independent', () => {
    const w = confirmed(new ReplayWindow(), A, 'robot-a', 'robot-b');
    assert.equal(w.check('robot-a', BOOT_1, 1), 'ok');
    assert.equal(w.check('robot-b', BOOT_1, 1), 'ok');
    assert.equal(w.check('robot-a', BOOT_1, 1), 'replay');
  });

  test('matches a reference model on random sequences', () => {
    const seed = 0x5eed_0001;
    const rand = mulberry32(seed);
    const windowSize = 64;
    const w = confirmed(new ReplayWindow({ windowSize }), A, 'robot-a', 'robot-b');
    const accepted = new Set<number>();
    let highest = -1;
    for (let i = 0; i < 200_000; i++) {
      // Mostly near the top, sometimes far behind or far ahead.
      const r = rand();
      const spread = r < 0.9 ? 80 : r < 0.99 ? 400 : 5000;
      const counter = Math.max(0, highest + Math.floor((rand() - 0.7) * spread));
      const expected: ReplayVerdict =
        counter > highest || (highest - counter < windowSize && !accepted.has(counter)) ? 'ok' : 'replay';
      assert.equal(
        w.check(A, BOOT_1, counter),
        expected,
        `seed ${seed}, step ${i}, counter ${counter}, highest ${highest}`,
      );
      if (expected === 'ok') {
        accepted.add(counter);
        highest = Math.max(highest, counter);
      }
    }
  });
});

describe('reboots (incarnations)', () => {
  test('nothing of a sender counts before one of its incarnations is confirmed; nothing is recorded', () => {
    const w = new ReplayWindow();
    assert.deepEqual(checkAll(w, A, BOOT_1, [0, 1, 0]), Array(3).fill('unconfirmed'));
    assert.equal(w.size, 0);
    assert.equal(w.confirm(A, BOOT_1), 'ok');
    assert.deepEqual(
      checkAll(w, A, BOOT_1, [0, 1, 0]),
      ['ok', 'ok', 'replay'],
      'counted from the confirmation on',
    );
  });

  test('a new incarnation is unconfirmed until confirmed; then it starts a fresh window and retires the old', () => {
    const w = confirmed(new ReplayWindow(), A);
    for (let c = 0; c <= 5000; c++) w.check(A, BOOT_1, c);
    assert.equal(w.check(A, BOOT_2, 0), 'unconfirmed');
    assert.equal(w.check(A, BOOT_1, 5001), 'ok', 'the current incarnation is untouched meanwhile');
    assert.equal(w.confirm(A, BOOT_2), 'ok');
    assert.equal(w.current(A), BOOT_2);
    assert.deepEqual(checkAll(w, A, BOOT_2, [0, 1, 2, 2, 1]), ['ok', 'ok', 'ok', 'replay', 'replay']);
  });

  test('late datagrams of the old incarnation are dropped once the new one was confirmed', () => {
    const w = confirmed(new ReplayWindow(), A);
    for (let c = 0; c <= 100; c++) if (c !== 60) w.check(A, BOOT_1, c);
    w.confirm(A, BOOT_2);
    assert.equal(w.check(A, BOOT_2, 0), 'ok');
    // 60 was never seen and 101..110 were in flight at the reboot: still dropped, forever.
    assert.deepEqual(checkAll(w, A, BOOT_1, [60, 100, 101, 110, 100 + 5000]), Array(5).fill('replay'));
    assert.equal(w.confirm(A, BOOT_1), 'replay', 'a retired incarnation cannot be confirmed again');
    assert.equal(w.check(A, BOOT_2, 1), 'ok');
  });

  test('a replayed frame of an earlier boot the receiver never saw changes nothing', () => {
    // The receiver only knows BOOT_2 (the live one); an attacker replays a frame of BOOT_1.
    const w = new ReplayWindow();
    w.confirm(A, BOOT_2);
    for (let c = 0; c <= 500; c++) w.check(A, BOOT_2, c);
    for (let i = 0; i < 10; i++) assert.equal(w.check(A, BOOT_1, 77 + i), 'unconfirmed');
    assert.equal(w.current(A), BOOT_2);
    for (let c = 501; c <= 600; c++) assert.equal(w.check(A, BOOT_2, c), 'ok', `BOOT_2 is not muted (${c})`);
  });

  test('only maxRetiredIncarnations retired incarnations are remembered', () => {
    const w = new ReplayWindow({ maxRetiredIncarnations: 2 });
    for (const boot of [BOOT_1, BOOT_2, BOOT_3, 4]) {
      assert.equal(w.confirm(A, boot), 'ok');
      assert.equal(w.check(A, boot, 10), 'ok');
    }
    assert.equal(w.check(A, BOOT_3, 11), 'replay', 'remembered');
    assert.equal(w.check(A, BOOT_2, 11), 'replay', 'remembered');
    assert.equal(w.check(A, BOOT_1, 11), 'unconfirmed', 'forgotten: it would have to answer a challenge');
  });
});

describe('memory bound', () => {
  test('at most maxSenders senders are tracked, the least recently accepted evicted first', () => {
    const w = confirmed(new ReplayWindow(), 'keep');
    assert.equal(w.maxSenders, 512);
    assert.equal(w.check('keep', BOOT_1, 0), 'ok');
    for (let i = 0; i < 10_000; i++) {
      w.confirm(`sender-${i}`, BOOT_1);
      assert.equal(w.check(`sender-${i}`, BOOT_1, 0), 'ok');
      assert.equal(w.check('keep', BOOT_1, i + 1), 'ok');
      assert.ok(w.size <= 512);
    }
    assert.equal(w.size, 512);
    assert.equal(w.check('keep', BOOT_1, 1), 'replay', 'a sender seen all along is still tracked');
    assert.equal(w.check('sender-9999', BOOT_1, 0), 'replay', 'a recent sender is still tracked');
    // An evicted sender is unknown again: it must answer a challenge before anything of it counts.
    assert.equal(w.check('sender-0', BOOT_1, 0), 'unconfirmed');
  });

  test('replays do not refresh a sender', () => {
    const w = confirmed(new ReplayWindow({ maxSenders: 2 }), 'old', 'new');
    w.check('old', BOOT_1, 5);
    w.check('new', BOOT_1, 5);
    assert.equal(w.check('old', BOOT_1, 5), 'replay');
    w.confirm('third', BOOT_1); // evicts 'old': its replay did not make it recent
    assert.equal(w.check('new', BOOT_1, 5), 'replay');
    assert.equal(w.check('old', BOOT_1, 5), 'unconfirmed');
  });
});

test('invalid options and arguments are bugs', () => {
  for (const opts of [
    { windowSize: 0 },
    { windowSize: 100 },
    { maxSenders: 0 },
    { maxRetiredIncarnations: -1 },
  ]) {
    assert.throws(() => new ReplayWindow(opts), { code: 'EDGE_INTERNAL' });
  }
  const w = new ReplayWindow();
  assert.throws(() => w.check('', BOOT_1, 0), { code: 'EDGE_INTERNAL' });
  assert.throws(() => w.check(A, -1, 0), { code: 'EDGE_INTERNAL' });
  assert.throws(() => w.check(A, 2 ** 32, 0), { code: 'EDGE_INTERNAL' });
  assert.throws(() => w.check(A, BOOT_1, -1), { code: 'EDGE_INTERNAL' });
  assert.throws(() => w.check(A, BOOT_1, 1.5), { code: 'EDGE_INTERNAL' });
  assert.throws(() => w.check(A, BOOT_1, 2 ** 53), { code: 'EDGE_INTERNAL' });
});
