/**
 * `node edgectl-agent-crypt.cjs seal|open`: the AES-256-GCM of snapshot pushes, in a short-lived
 * child process (agent/control-plane/snapshot-cipher.ts runs it, docs/k3s.md "Snapshots"), so that
 * node:crypto, which stays in a process once loaded, never enters the agent's. `npm run
 * build:agent` builds it into its own CommonJS file beside the agent's entry; from the sources it
 * runs as it is.
 *
 * Both modes read one line of JSON on stdin first (CryptRequest: the key, the nonce, the associated
 * data; key material never goes through argv or the environment, which other users may read), then
 * the data, a chunk at a time:
 *   - seal: the plaintext; it writes the ciphertext, then the 16-byte tag, on stdout;
 *   - open: the ciphertext of `sealedLength` bytes and the tag after it; it writes the plaintext
 *     into `into`, a new file (0600) it creates, and once its input has ended and the file is
 *     flushed, one line of JSON on stdout (OpenVerdict): whether the input had the announced length
 *     and the tag verified, and the SHA-256 of the plaintext.
 * It exits 0 when it could do its work (a tag that does not verify is a verdict, not a failure),
 * and non-zero with a message on stderr otherwise.
 *
 * It imports node built-ins only, so that it starts quickly.
 */
import { createCipheriv, createDecipheriv, createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

/** What the first line on stdin says (hex for bytes). */
export interface CryptRequest {
  readonly key: string;
  readonly nonce: string;
  readonly aad: string;
  /** open: the ciphertext's length, the tag not counted. */
  readonly sealedLength?: number;
  /** open: the plaintext's file. */
  readonly into?: string;
}

/** open's answer, the last line on stdout. */
export interface OpenVerdict {
  /** The input had exactly sealedLength bytes and a tag after them. */
  readonly complete: boolean;
  /** The tag verified (false when the input was incomplete). */
  readonly verified: boolean;
  /** The SHA-256 of the plaintext written, hex. */
  readonly sha256: string;
}

const TAG_BYTES = 16;
const MAX_REQUEST_BYTES = 64 * 1024;

/**
 * readRequest takes the request line off stdin and returns it with the bytes after it, as one
 * stream (one iterator throughout: a `for await` left early would destroy stdin).
 */
async function readRequest(input: Readable): Promise<{ request: CryptRequest; data: AsyncIterable<Buffer> }> {
  const it = input[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  let head = Buffer.alloc(0);
  let nl = -1;
  while (nl < 0) {
    const next = await it.next();
    if (next.done || head.length > MAX_REQUEST_BYTES) throw new Error('no request line on stdin');
    head = Buffer.concat([head, next.value]);
    nl = head.indexOf(0x0a);
  }
  const request = JSON.parse(head.subarray(0, nl).toString('utf8')) as CryptRequest;
  const rest = head.subarray(nl + 1);
  const data = (async function* () {
    if (rest.length > 0) yield rest;
    for (let next = await it.next(); !next.done; next = await it.next()) yield next.value;
  })();
  return { request, data };
}

async function seal(request: CryptRequest, data: AsyncIterable<Buffer>): Promise<void> {
  const cipher = createCipheriv(
    'aes-256-gcm',
    Buffer.from(request.key, 'hex'),
    Buffer.from(request.nonce, 'hex'),
  );
  cipher.setAAD(Buffer.from(request.aad, 'hex'));
  const withTag = new Transform({
    transform(chunk: Buffer, _enc, done) {
      done(null, cipher.update(chunk));
    },
    flush(done) {
      const last = cipher.final();
      if (last.length > 0) this.push(last);
      done(null, cipher.getAuthTag());
    },
  });
  await pipeline(data, withTag, process.stdout);
}

async function open(request: CryptRequest, data: AsyncIterable<Buffer>): Promise<void> {
  const sealedLength = request.sealedLength;
  if (typeof sealedLength !== 'number' || !Number.isSafeInteger(sealedLength) || sealedLength < 0)
    throw new Error('open needs sealedLength');
  if (typeof request.into !== 'string') throw new Error('open needs into');
  const decipher = createDecipheriv(
    'aes-256-gcm',
    Buffer.from(request.key, 'hex'),
    Buffer.from(request.nonce, 'hex'),
  );
  decipher.setAAD(Buffer.from(request.aad, 'hex'));
  const hash = createHash('sha256');
  const tag = Buffer.alloc(TAG_BYTES);
  let received = 0;
  let verified = false;
  const opening = new Transform({
    transform(chunk: Buffer, _enc, done) {
      // Past the tag: the caller checks the length and never sends more; were it to, the verdict
      // says incomplete, and the bytes go nowhere.
      const sealedEnd = Math.max(0, Math.min(chunk.length, sealedLength - received));
      if (sealedEnd > 0) {
        const plain = decipher.update(chunk.subarray(0, sealedEnd));
        hash.update(plain);
        this.push(plain);
      }
      const tagEnd = Math.min(chunk.length, sealedLength + TAG_BYTES - received);
      if (tagEnd > sealedEnd) chunk.copy(tag, received + sealedEnd - sealedLength, sealedEnd, tagEnd);
      received += chunk.length;
      done();
    },
    flush(done) {
      if (received === sealedLength + TAG_BYTES) {
        try {
          decipher.setAuthTag(tag);
          const last = decipher.final();
          if (last.length > 0) {
            hash.update(last);
            this.push(last);
          }
          verified = true;
        } catch {
          verified = false;
        }
      }
      done();
    },
  });
  await pipeline(data, opening, createWriteStream(request.into, { flags: 'wx', mode: 0o600, flush: true }));
  const verdict: OpenVerdict = {
    complete: received === sealedLength + TAG_BYTES,
    verified,
    sha256: hash.digest('hex'),
  };
  process.stdout.write(`${JSON.stringify(verdict)}\n`);
}

async function main(mode: string | undefined): Promise<void> {
  if (mode !== 'seal' && mode !== 'open') throw new Error(`usage: snapshot-crypt seal|open (not ${mode})`);
  const { request, data } = await readRequest(process.stdin);
  await (mode === 'seal' ? seal(request, data) : open(request, data));
}

main(process.argv[2]).catch((e: unknown) => {
  process.stderr.write(`snapshot-crypt: ${(e as Error).message}\n`);
  process.exitCode = 1;
});
