/**
 * ReplayWindow drops authenticated datagrams that were already accepted (docs/protocol-wire.md §3).
 *
 * Every datagram carries (sender, incarnation, counter): the incarnation is a random u32 the sender
 * draws at boot, the counter starts at 0 each boot and grows by one per datagram. Per sender the
 * window keeps one *current* incarnation with a sliding bitmap of the last `windowSize` counters, as
 * in IPsec (RFC 4303 §3.4.3) and WireGuard: a counter above the highest seen slides the window
 * forward, one inside it is accepted once, one below it is too old.
 *
 * Reboots. A rebooted robot's counter starts again at 0 under a new incarnation, so it must not be
 * judged against the old incarnation's counters. A datagram from an incarnation not seen before from
 * that sender therefore starts a fresh window for it and *retires* the old one; datagrams of a
 * retired incarnation — late packets sent before the reboot, or replays of them — are dropped from
 * then on. Retired incarnations are remembered per sender (`maxRetiredIncarnations`) with their
 * highest counter.
 *
 * Incarnations are random, so they carry no order: a receiver that never saw an old incarnation
 * cannot tell a replay of it from a new boot. An attacker holding frames of an earlier boot could then
 * make the receiver retire the sender's live incarnation. So a retired incarnation comes back to life
 * when it sends a counter more than `windowSize` above its highest one: a late packet cannot be that
 * far ahead (its sender stopped right after), a live sender soon is. The spurious incarnation is then
 * retired in its turn. The jump of a whole window also means no counter accepted before the
 * incarnation was retired can be accepted again. What is left of the attack mutes a live sender at one
 * receiver for at most windowSize of its counters per replayed frame: liveness, never safety.
 *
 * What the window cannot do: a receiver that restarted, or evicted a sender, has forgotten what it
 * accepted, and will accept each old datagram once more. The election protocol tolerates duplicated
 * and delayed messages (every message carries its term); the window keeps replays cheap and rare, it
 * is not what makes elections safe.
 *
 * Memory is bounded: at most `maxSenders` senders (least recently accepted evicted first), each with
 * one bitmap of windowSize bits and at most maxRetiredIncarnations retired entries. Only record
 * datagrams whose MAC was verified: a forged datagram must never move a window.
 */

import { InternalError } from '../errors.ts';

export type ReplayVerdict = 'ok' | 'replay';

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
   * time, 'replay' for a repeat, a counter too old to judge, or a retired incarnation.
   */
  check(sender: string, incarnation: number, counter: number): ReplayVerdict {
    if (typeof sender !== 'string' || sender.length === 0) {
      throw new InternalError(`ReplayWindow: bad sender ${String(sender)}`);
    }
    if (!Number.isInteger(incarnation) || incarnation < 0 || incarnation >= 2 ** 32) {
      throw new InternalError(`ReplayWindow: bad incarnation ${String(incarnation)}`);
    }
    if (!Number.isSafeInteger(counter) || counter < 0) {
      throw new InternalError(`ReplayWindow: bad counter ${String(counter)}`);
    }

    const record = this.#senders.get(sender);
    if (record === undefined) {
      if (this.#senders.size >= this.maxSenders) {
        const leastRecent = this.#senders.keys().next().value as string;
        this.#senders.delete(leastRecent);
      }
      this.#senders.set(sender, { current: this.#newWindow(incarnation, counter), retired: [] });
      return 'ok';
    }

    const verdict =
      incarnation === record.current.incarnation
        ? this.#checkCurrent(record.current, counter)
        : this.#checkOtherIncarnation(record, incarnation, counter);
    if (verdict === 'ok') {
      this.#senders.delete(sender);
      this.#senders.set(sender, record);
    }
    return verdict;
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

  #checkOtherIncarnation(record: SenderRecord, incarnation: number, counter: number): ReplayVerdict {
    const i = record.retired.findIndex((r) => r.incarnation === incarnation);
    if (i >= 0) {
      const retired = record.retired[i]!;
      // Within a window of where it stopped: a late datagram from before the reboot, or a replay.
      if (counter - retired.highest <= this.windowSize) return 'replay';
      // Far beyond: that incarnation is alive, and the one that displaced it was a replay.
      record.retired.splice(i, 1);
    }
    this.#retire(record);
    record.current = this.#newWindow(incarnation, counter);
    return 'ok';
  }

  #retire(record: SenderRecord): void {
    record.retired.unshift({ incarnation: record.current.incarnation, highest: record.current.highest });
    if (record.retired.length > this.maxRetiredIncarnations)
      record.retired.length = this.maxRetiredIncarnations;
  }

  #newWindow(incarnation: number, counter: number): CounterWindow {
    const w: CounterWindow = { incarnation, highest: counter, seen: new Uint32Array(this.windowSize / 32) };
    this.#mark(w, counter);
    return w;
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
