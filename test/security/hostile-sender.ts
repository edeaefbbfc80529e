/**
 * The hostile peer: a process on the site network that holds no key of the site. It sends, as
 * fast as its socket takes them, five kinds of datagrams at every target, round robin:
 *
 *   forged     well-formed frames with the right site tag (the site id is public: it is in the mDNS
 *              instance names) MACed with a wrong key, and captured frames with one byte changed;
 *              they get as far as the MAC check, the most costly check an outsider can reach;
 *   replayed   valid frames captured on the network, re-sent byte for byte to their receiver;
 *   truncated  captured frames cut short (too short, or the MAC no longer where it belongs);
 *   oversized  1201..1472 bytes behind a valid header (not fragmented: fits the 1500-byte MTU);
 *   random     random bytes, 0..1200 long.
 *
 * Usage: node hostile-sender.ts <plan.json> <report.json>; it writes a HostileReport as JSON to report.json.
 * Only datagrams whose send completed without an error are counted as sent.
 */
import { createSocket } from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { HmacSha256 } from '../../agent/sha256.ts';
import { encode } from '../../agent/transport/codec.ts';
import type { Message } from '../../statecharts/messages.ts';

export const HOSTILE_KINDS = ['forged', 'replayed', 'truncated', 'oversized', 'random'] as const;
export type HostileKind = (typeof HOSTILE_KINDS)[number];

export interface HostilePlan {
  readonly siteId: string;
  readonly seconds: number;
  readonly port: number;
  readonly targets: readonly {
    readonly address: string;
    /** Node ids of the site, to forge plausible frames. */
    readonly node: string;
    /** Captured valid frames addressed to this target, hex. */
    readonly captured: readonly string[];
  }[];
  /** Datagrams in flight at once (sends not yet completed). */
  readonly window?: number;
}

export interface HostileReport {
  /** Per target address, per kind: datagrams sent without a send error. */
  readonly sent: Record<string, Record<HostileKind, number>>;
  readonly sendErrors: number;
  readonly seconds: number;
  /** UDP OutDatagrams of the sender's namespace during the run (a cross-check of `sent`). */
  readonly outDatagrams: number;
}

function udpOut(): number {
  const lines = readFileSync('/proc/self/net/snmp', 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('Udp:'));
  const keys = lines[0]!.split(/\s+/);
  const vals = lines[1]!.split(/\s+/);
  return Number(vals[keys.indexOf('OutDatagrams')]);
}

const pick = <T>(xs: readonly T[]): T => xs[Math.floor(Math.random() * xs.length)]!;
const randInt = (lo: number, hi: number): number => lo + Math.floor(Math.random() * (hi - lo + 1));

/** pools builds, per target, a few hundred datagrams of each kind, so the send loop only sends. */
function pools(plan: HostilePlan): Map<string, Record<HostileKind, Buffer[]>> {
  const nodes = plan.targets.map((t) => t.node);
  const out = new Map<string, Record<HostileKind, Buffer[]>>();
  for (const t of plan.targets) {
    const captured = t.captured.map((h) => Buffer.from(h, 'hex'));
    if (captured.length === 0) throw new Error(`no captured frames for ${t.address}`);
    const forged: Buffer[] = [];
    for (let i = 0; i < 256; i++) {
      if (i % 2 === 0) {
        const from = pick(nodes.filter((n) => n !== t.node));
        const term = randInt(1, 1_000_000);
        const msg: Message =
          i % 4 === 0
            ? { type: 'vote', from, to: t.node, term, lastIndex: 1 << 20, lastTerm: term, transfer: true }
            : {
                type: 'append',
                from,
                to: t.node,
                term,
                prevIndex: 0,
                prevTerm: 0,
                commit: 0,
                sentAt: 1,
                entries: [],
              };
        forged.push(
          encode(msg, {
            siteId: plan.siteId,
            // The site's generation, a key of its own making: the receiver's key for `from` refuses it.
            key: { generation: 1, mac: new HmacSha256(randomBytes(32)) },
            incarnation: randInt(0, 2 ** 32 - 1),
            counter: i,
          }),
        );
      } else {
        const f = Buffer.from(pick(captured));
        const at = randInt(4, f.length - 1);
        f[at] = f[at]! ^ (1 << randInt(0, 7));
        forged.push(f);
      }
    }
    const truncated = Array.from({ length: 256 }, () => {
      const f = pick(captured);
      return Buffer.from(f.subarray(0, randInt(0, f.length - 1)));
    });
    const oversized = Array.from({ length: 64 }, () => {
      const b = randomBytes(randInt(1201, 1472));
      pick(captured).copy(b, 0, 0, 24);
      return b;
    });
    const random = Array.from({ length: 256 }, () => randomBytes(randInt(0, 1200)));
    out.set(t.address, { forged, replayed: captured, truncated, oversized, random });
  }
  return out;
}

async function main(planFile: string, reportFile: string): Promise<void> {
  const plan = JSON.parse(readFileSync(planFile, 'utf8')) as HostilePlan;
  const pool = pools(plan);
  const sent: Record<string, Record<HostileKind, number>> = {};
  for (const t of plan.targets)
    sent[t.address] = Object.fromEntries(HOSTILE_KINDS.map((k) => [k, 0])) as Record<HostileKind, number>;
  let sendErrors = 0;
  const sock = createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, r));
  sock.on('error', () => sendErrors++);
  const out0 = udpOut();
  const started = performance.now();
  const end = started + plan.seconds * 1000;
  const window = plan.window ?? 64;
  let i = 0;
  let inflight = 0;
  await new Promise<void>((resolve) => {
    const next = (): void => {
      while (inflight < window) {
        if (performance.now() >= end) {
          if (inflight === 0) resolve();
          return;
        }
        const t = plan.targets[i % plan.targets.length]!;
        const kind = HOSTILE_KINDS[Math.floor(i / plan.targets.length) % HOSTILE_KINDS.length]!;
        const p = pool.get(t.address)![kind];
        const buf = p[Math.floor(i / (plan.targets.length * HOSTILE_KINDS.length)) % p.length]!;
        i++;
        inflight++;
        sock.send(buf, plan.port, t.address, (err) => {
          inflight--;
          if (err) sendErrors++;
          else sent[t.address]![kind]++;
          next();
        });
      }
    };
    next();
  });
  const seconds = (performance.now() - started) / 1000;
  const outDatagrams = udpOut() - out0;
  sock.close();
  const report: HostileReport = { sent, sendErrors, seconds, outDatagrams };
  writeFileSync(reportFile, JSON.stringify(report));
}

if (process.argv[1] === import.meta.filename) await main(process.argv[2]!, process.argv[3]!);
