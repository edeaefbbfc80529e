/**
 * SnapshotCipher: the AES-256-GCM that seals and opens snapshot pushes (snapshots.ts). The agent
 * runs it in short-lived child processes (snapshot-crypt.ts, bundled as edgectl-agent-crypt.cjs),
 * one per push sent or received, so that node:crypto never enters the agent's own process: once
 * loaded, a built-in stays for the life of the process, and every voter pushes or receives a
 * snapshot within minutes of the site forming (docs/k3s.md "Snapshots"). The bytes stream through
 * the child a chunk at a time, as they did through the cipher in process.
 *
 * This module imports snapshot-crypt.ts for types only.
 */
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync } from 'node:fs';
import { PassThrough, Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { EdgeError } from '../errors.ts';
import { startHelperChild } from '../exec/helper-child.ts';
import type { CryptRequest, OpenVerdict } from './snapshot-crypt.ts';

export type { OpenVerdict };

/** What seals one push: the pair's body key, the push's nonce, and its header as associated data. */
export interface SealParams {
  readonly key: Uint8Array;
  readonly nonce: Uint8Array;
  readonly aad: Uint8Array;
}

/** How an opening ended: the child's verdict, or why there is none. */
export type OpenOutcome =
  | { readonly ok: true; readonly verdict: OpenVerdict }
  /** `stopped`: abort() ended it; otherwise it failed on its own (`problem` says how). */
  | { readonly ok: false; readonly stopped: boolean; readonly problem: string };

/** One body being opened: write the sealed body into `input`, then read the outcome. */
export interface Opening {
  readonly input: Writable;
  /** Settles once the opening is over and nothing writes to the file any more; never rejects. */
  readonly outcome: Promise<OpenOutcome>;
  /** abort stops the opening at once (the body broke off). */
  abort(): void;
}

export interface SnapshotCipher {
  /** seal streams `content` sealed: the ciphertext, then the tag; the stream errors if sealing fails. */
  seal(p: SealParams, content: Uint8Array): Readable;
  /**
   * open takes a sealed body of `sealedLength` bytes and its tag, and writes the plaintext into
   * `into`, a file it creates (0600); the outcome says whether the tag verified and the plaintext's
   * SHA-256. The caller removes the file unless it keeps it.
   */
  open(p: SealParams & { readonly sealedLength: number; readonly into: string }): Opening;
}

const SEAL_CHUNK = 1024 * 1024;
/** Far more than the open child's one verdict line; anything past it is not a verdict. */
const VERDICT_MAX_CHARS = 4096;

function requestLine(p: SealParams, extra: Partial<CryptRequest> = {}): Buffer {
  const hex = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
  const request: CryptRequest = { key: hex(p.key), nonce: hex(p.nonce), aad: hex(p.aad), ...extra };
  return Buffer.from(`${JSON.stringify(request)}\n`);
}

function* chunksOf(head: Buffer, content: Uint8Array): Generator<Uint8Array> {
  yield head;
  for (let off = 0; off < content.length; off += SEAL_CHUNK) yield content.subarray(off, off + SEAL_CHUNK);
}

/** The child `script` in `mode`, its stderr's end kept for the error message. */
function start(
  script: string,
  mode: 'seal' | 'open',
): { child: ChildProcessWithoutNullStreams; stderr: () => string } {
  const { proc, stderr } = startHelperChild(script, [mode]);
  return { child: proc, stderr };
}

function ended(code: number | null, signal: NodeJS.Signals | null, stderr: string): string {
  const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
  return `the snapshot cipher ${how}${stderr ? `: ${stderr}` : ''}`;
}

/** childSnapshotCipher runs `script()` (snapshot-crypt.ts or its bundle) with this process's Node. */
export function childSnapshotCipher(script: () => string): SnapshotCipher {
  return {
    seal(p, content) {
      const out = new PassThrough();
      let child: ChildProcessWithoutNullStreams;
      let stderr: () => string;
      try {
        ({ child, stderr } = start(script(), 'seal'));
      } catch (e) {
        out.destroy(e as Error);
        return out;
      }
      child.on('error', (e) => out.destroy(e));
      child.stdout.pipe(out, { end: false });
      child.on('close', (code, signal) => {
        if (out.destroyed) return;
        if (code === 0) out.end();
        else out.destroy(new EdgeError('SNAPSHOT_CIPHER', ended(code, signal, stderr())));
      });
      // The reader gone (the push failed): the child has nothing left to do.
      out.on('close', () => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      });
      pipeline(Readable.from(chunksOf(requestLine(p), content), { objectMode: false }), child.stdin).catch(
        () => {},
      );
      return out;
    },

    open(p) {
      const { child, stderr } = start(script(), 'open');
      let abortCalled = false;
      let stdout = '';
      child.stdout.setEncoding('utf8');
      child.stdout.on('data', (d: string) => {
        if (stdout.length < VERDICT_MAX_CHARS) stdout += d;
      });
      const outcome = new Promise<OpenOutcome>((resolve) => {
        child.on('error', (e) => resolve({ ok: false, stopped: false, problem: e.message }));
        child.on('close', (code, signal) => {
          if (code !== 0) {
            // The body can go nowhere now: the upload ends at once rather than at the idle timeout.
            child.stdin.destroy(new EdgeError('SNAPSHOT_CIPHER', ended(code, signal, stderr())));
            resolve({
              ok: false,
              stopped: abortCalled && signal === 'SIGKILL',
              problem: ended(code, signal, stderr()),
            });
            return;
          }
          try {
            resolve({ ok: true, verdict: JSON.parse(stdout.trim().split('\n').at(-1)!) as OpenVerdict });
          } catch {
            resolve({
              ok: false,
              stopped: false,
              problem: `the snapshot cipher printed no verdict: ${stdout.trim()}`,
            });
          }
        });
      });
      child.stdin.write(requestLine(p, { sealedLength: p.sealedLength, into: p.into }));
      return {
        input: child.stdin,
        outcome,
        abort() {
          abortCalled = true;
          if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
        },
      };
    },
  };
}

/**
 * cryptChild: the cipher's script beside this module: snapshot-crypt.ts in the sources, and in the
 * agent's bundle, where every chunk is in one directory, edgectl-agent-crypt.cjs (agent/build.ts).
 * The bundle's name is a literal in a call of its own, so that bootstrap finds it and ships it
 * (cli/bootstrap/bundle.ts chunkImports).
 */
function cryptChild(): string {
  return import.meta.url.endsWith('.ts')
    ? besideThisModule('./snapshot-crypt.ts')
    : besideThisModule('./edgectl-agent-crypt.cjs');
}

function besideThisModule(name: string): string {
  const path = fileURLToPath(new URL(name, import.meta.url));
  if (!existsSync(path))
    throw new EdgeError('AGENT_FILES_MISSING', `${path} is missing: the agent's files are incomplete`, {
      hint: 'install the whole agent bundle again (edgectl bootstrap site), or run npm run build:agent',
    });
  return path;
}

/** The agent's cipher: the child beside this module, looked up at each use. */
export const SNAPSHOT_CIPHER: SnapshotCipher = childSnapshotCipher(cryptChild);
