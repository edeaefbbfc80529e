/**
 * ReplayWindow drops authenticated datagrams that were already accepted (docs/protocol-wire.md §3).
 *
 * Every datagram carries (sender, incarnation, counter): the incarnation is a random u32 the sender
 * draws at boot, the counter starts at 0 each boot and grows by one per datagram. Per sender the
 * window keeps one *current* incarnation with a sliding bitmap of the last `windowSize` counters, as
 * in IPsec (RFC 4303 §3.4.3) and WireGuard: a counter above the highest seen slides the window
 * forward, one inside it is accepted once, one below it is too old.
 *
 * Reboots. Incarnations are random, so they carry no order: a receiver cannot tell a new boot from a
 * replay of an old one it never saw. So an incarnation is never taken on a datagram's word. A
 * datagram from a sender we do not know, or from an incarnation that is neither current nor retired,
 * is `unconfirmed`: dropped, and nothing here changes. The transport then challenges the sender
 * with a fresh nonce (udp.ts); only a live process of that incarnation, holding the key, can answer,
 * and the answer calls `confirm`, which makes the incarnation current and retires the old one. A
 * replayed frame of an earlier boot therefore changes nothing (its boot cannot answer), and a
 * retired incarnation stays retired: it was retired because a newer one proved it is alive.
 *
 * What the window cannot do: a receiver that restarted, or evicted a sender, has forgotten what it
 * accepted; it challenges again, and the live incarnation answers. Old datagrams of a *confirmed*
 * incarnation below the window are refused as too old. The election protocol tolerates duplicated
 * and delayed messages (every message carries its term); the window keeps replays cheap and rare.
 *
 * Memory is bounded: at most `maxSenders` senders (least recently accepted evicted first), each with
 * one bitmap of windowSize bits and at most maxRetiredIncarnations retired entries. Only record
 * datagrams whose MAC was verified: a forged datagram must never move a window.
 */

import { InternalError } from '../errors.ts';

/** `unconfirmed`: an incarnation not (yet) proven alive: challenge the sender, accept nothing. */
export type ReplayVerdict = 'ok' | 'replay' | 'unconfirmed';

export interface ReplayWindowOptions {
  /** Counters tracked behind the highest one per (sender, incarnation); a multiple of 32. Default 1024. */
  readonly windowSize?: number;
  /** Senders tracked at once. Default 512: above the largest site, so eviction means something is wrong. */
  readonly maxSenders?: number;
  /** Retired incarnations remembered per sender. Default 8. */
  readonly maxRetiredIncarnations?: number;
}

interface CounterWindow {
  readonly incarnation: number;
  highest: number;
  /** Bit (c mod windowSize) is set when counter c, one of the last windowSize counters up to `highest`, was accepted. */
  readonly seen: Uint32Array;
}

interface RetiredIncarnation {
  readonly incarnation: number;
  readonly highest: number;
}

interface SenderRecord {
  current: CounterWindow;
  /** Most recently retired first. */
  readonly retired: RetiredIncarnation[];
}

export class ReplayWindow {
  readonly windowSize: number;
  readonly maxSenders: number;
  readonly maxRetiredIncarnations: number;
  /** Insertion order is recency: an accepted datagram moves its sender to the end, eviction takes the first. */
  readonly #senders = new Map<string, SenderRecord>();

  constructor(opts: ReplayWindowOptions = {}) {
    this.windowSize = opts.windowSize ?? 1024;
    this.maxSenders = opts.maxSenders ?? 512;
    this.maxRetiredIncarnations = opts.maxRetiredIncarnations ?? 8;
    if (!Number.isSafeInteger(this.windowSize) || this.windowSize < 32 || this.windowSize % 32 !== 0) {
      throw new InternalError(
        `ReplayWindow windowSize must be a positive multiple of 32 (got ${this.windowSize})`,
      );
    }
    if (!Number.isSafeInteger(this.maxSenders) || this.maxSenders < 1) {
      throw new InternalError(`ReplayWindow maxSenders must be a positive integer (got ${this.maxSenders})`);
    }
    if (!Number.isSafeInteger(this.maxRetiredIncarnations) || this.maxRetiredIncarnations < 0) {
      throw new InternalError(
        `ReplayWindow maxRetiredIncarnations must be an integer ≥ 0 (got ${this.maxRetiredIncarnations})`,
      );
    }
  }

  /** The number of senders tracked now; never above maxSenders. */
  get size(): number {
    return this.#senders.size;
  }

  /**
   * check accepts a datagram's (sender, incarnation, counter) once and records it: 'ok' the first
   * time, 'replay' for a repeat, a counter too old to judge, or a retired incarnation, and
   * 'unconfirmed' for a sender or incarnation not confirmed yet (nothing is recorded).
   */
  check(sender: string, incarnation: number, counter: number): ReplayVerdict {
    checkArgs(sender, incarnation, counter);
    const record = this.#senders.get(sender);
    if (record === undefined) return 'unconfirmed';
    if (incarnation !== record.current.incarnation)
      return record.retired.some((r) => r.incarnation === incarnation) ? 'replay' : 'unconfirmed';
    const verdict = this.#checkCurrent(record.current, counter);
    if (verdict === 'ok') {
      this.#senders.delete(sender);
      this.#senders.set(sender, record);
    }
    return verdict;
  }

  /**
   * confirm makes `incarnation` the sender's current one, with no counter seen yet, because a
   * datagram of it answered a challenge only that incarnation could answer (record that datagram's
   * counter with check afterwards). The previous current incarnation is retired. Confirming the
   * current incarnation changes nothing; a retired one is refused ('replay') and changes nothing.
   */
  confirm(sender: string, incarnation: number): ReplayVerdict {
    checkArgs(sender, incarnation, 0);
    const record = this.#senders.get(sender);
    if (record === undefined) {
      if (this.#senders.size >= this.maxSenders) {
        const leastRecent = this.#senders.keys().next().value as string;
        this.#senders.delete(leastRecent);
      }
      this.#senders.set(sender, { current: this.#emptyWindow(incarnation), retired: [] });
      return 'ok';
    }
    if (record.retired.some((r) => r.incarnation === incarnation)) return 'replay';
    if (incarnation === record.current.incarnation) return 'ok';
    this.#retire(record);
    record.current = this.#emptyWindow(incarnation);
    this.#senders.delete(sender);
    this.#senders.set(sender, record);
    return 'ok';
  }

  /** The sender's current (confirmed) incarnation, if any. */
  current(sender: string): number | undefined {
    return this.#senders.get(sender)?.current.incarnation;
  }

  #checkCurrent(w: CounterWindow, counter: number): ReplayVerdict {
    if (counter > w.highest) {
      this.#slide(w, counter);
      this.#mark(w, counter);
      return 'ok';
    }
    if (w.highest - counter >= this.windowSize) return 'replay'; // too old to tell: assume the worst
    if (this.#isMarked(w, counter)) return 'replay';
    this.#mark(w, counter);
    return 'ok';
  }

  #retire(record: SenderRecord): void {
    record.retired.unshift({ incarnation: record.current.incarnation, highest: record.current.highest });
    if (record.retired.length > this.maxRetiredIncarnations)
      record.retired.length = this.maxRetiredIncarnations;
  }

  /** A window with no counter seen: the first one slides it from -1. */
  #emptyWindow(incarnation: number): CounterWindow {
    return { incarnation, highest: -1, seen: new Uint32Array(this.windowSize / 32) };
  }

  /** Moves the window's top to `counter`, forgetting the counters that fall out of it. */
  #slide(w: CounterWindow, counter: number): void {
    if (counter - w.highest >= this.windowSize) {
      w.seen.fill(0);
    } else {
      for (let c = w.highest + 1; c <= counter; c++) this.#unmark(w, c);
    }
    w.highest = counter;
  }

  #mark(w: CounterWindow, counter: number): void {
    const bit = counter % this.windowSize;
    w.seen[bit >>> 5]! |= 1 << (bit & 31);
  }

  #unmark(w: CounterWindow, counter: number): void {
    const bit = counter % this.windowSize;
    w.seen[bit >>> 5]! &= ~(1 << (bit & 31));
  }

  #isMarked(w: CounterWindow, counter: number): boolean {
    const bit = counter % this.windowSize;
    return (w.seen[bit >>> 5]! & (1 << (bit & 31))) !== 0;
  }
}

function checkArgs(sender: string, incarnation: number, counter: number): void {
  if (typeof sender !== 'string' || sender.length === 0) {
    throw new InternalError(`ReplayWindow: bad sender ${String(sender)}`);
  }
  if (!Number.isInteger(incarnation) || incarnation < 0 || incarnation >= 2 ** 32) {
    throw new InternalError(`ReplayWindow: bad incarnation ${String(incarnation)}`);
  }
  if (!Number.isSafeInteger(counter) || counter < 0) {
    throw new InternalError(`ReplayWindow: bad counter ${String(counter)}`);
  }
}
