import assert from 'node:assert/strict';
import { createHash, createHmac } from 'node:crypto';
import { test } from 'node:test';
import fc from 'fast-check';
import { constantTimeEqual, HmacSha256, SHA256_BYTES, sha256Digest, sha256Hex } from './sha256.ts';

/** The tag as a Buffer, written by macInto into a fresh 32-byte array. */
function tagOf(mac: HmacSha256, data: Uint8Array): Buffer {
  const out = new Uint8Array(SHA256_BYTES);
  mac.macInto(data, out);
  return Buffer.from(out);
}

test('sha256Digest is SHA-256: the FIPS 180-4 examples and node:crypto on any input', () => {
  const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
  assert.equal(
    hex(sha256Digest(new Uint8Array(0))),
    'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
  );
  assert.equal(
    hex(sha256Digest(Buffer.from('abc'))),
    'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad',
  );
  assert.equal(
    hex(sha256Digest(Buffer.from('abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq'))),
    '248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1',
  );
  // Every length across the padding boundaries (55, 56, 63, 64 …) and beyond a datagram.
  for (let n = 0; n <= 1300; n++) {
    const data = Buffer.alloc(n, n & 0xff);
    assert.equal(hex(sha256Digest(data)), createHash('sha256').update(data).digest('hex'), `length ${n}`);
  }
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 2000 }), (data) => {
      assert.equal(hex(sha256Digest(data)), createHash('sha256').update(data).digest('hex'));
    }),
  );
});

test('sha256Hex prints what sha256sum prints: strings as UTF-8, bytes as they are', () => {
  assert.equal(sha256Hex('abc'), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  fc.assert(
    fc.property(fc.string({ unit: 'grapheme' }), fc.uint8Array({ maxLength: 300 }), (text, bytes) => {
      assert.equal(sha256Hex(text), createHash('sha256').update(text, 'utf8').digest('hex'));
      assert.equal(sha256Hex(bytes), createHash('sha256').update(bytes).digest('hex'));
    }),
  );
});

test('HmacSha256 is HMAC-SHA256 for any key and message, and one instance serves message after message', () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 1, maxLength: 200 }),
      fc.array(fc.uint8Array({ maxLength: 1300 }), { minLength: 1, maxLength: 5 }),
      (key, messages) => {
        const mac = new HmacSha256(key);
        for (const m of messages) {
          const expected = createHmac('sha256', key).update(m).digest();
          assert.deepEqual(tagOf(mac, m), expected);
          const frame = new Uint8Array(40);
          mac.macInto(m, frame.subarray(4, 36));
          assert.deepEqual(Buffer.from(frame.subarray(4, 36)), expected);
          assert.deepEqual([...frame.subarray(0, 4), ...frame.subarray(36)], [0, 0, 0, 0, 0, 0, 0, 0]);
        }
      },
    ),
  );
});

test('HmacSha256 gives the HMAC-SHA-256 results of RFC 4231', () => {
  const cases: [Uint8Array, string, string][] = [
    [Buffer.alloc(20, 0x0b), 'Hi There', 'b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7'],
    [
      Buffer.from('Jefe'),
      'what do ya want for nothing?',
      '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843',
    ],
    [
      Buffer.alloc(131, 0xaa),
      'Test Using Larger Than Block-Size Key - Hash Key First',
      '60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54',
    ],
  ];
  for (const [key, data, tag] of cases)
    assert.equal(tagOf(new HmacSha256(key), Buffer.from(data)).toString('hex'), tag, data);
});

test('constantTimeEqual compares contents and lengths', () => {
  assert.equal(constantTimeEqual(new Uint8Array([1, 2, 3]), new Uint8Array([1, 2, 3])), true);
  assert.equal(constantTimeEqual(new Uint8Array([1, 2, 3]), new Uint8Array([1, 2, 4])), false);
  assert.equal(constantTimeEqual(new Uint8Array([1, 2, 3]), new Uint8Array([1, 2])), false);
  assert.equal(constantTimeEqual(new Uint8Array(0), new Uint8Array(0)), true);
  fc.assert(
    fc.property(fc.uint8Array(), fc.uint8Array(), (a, b) => {
      assert.equal(constantTimeEqual(a, b), Buffer.from(a).equals(Buffer.from(b)));
    }),
  );
});
