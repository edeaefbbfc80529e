/**
 * The site's keys (docs/protocol.md, "Keys"): how they are derived on the bootstrap machine, the
 * key file each robot holds (/etc/edgectl/site-keys.json), and the Keyring the agent builds from it.
 * Apart from agent/config.ts so that the bundled agent reads its keys without loading zod and yaml
 * (agent/main.ts); HMAC-SHA256 comes from @noble/hashes, which the agent loads anyway (agent/sha256.ts).
 *
 * Derivation, all HMAC-SHA256, from the site master secret M that never leaves the bootstrap
 * machine's site directory, for key generation g (a positive integer; `edgectl site rotate-keys`
 * moves to the next one):
 *
 *   pair(a, b, g)    = HMAC(M, "edgectl pair\0"  ‖ min(a,b) ‖ "\0" ‖ max(a,b) ‖ "\0" ‖ g)   voter ↔ voter
 *   V(g)             = HMAC(M, "edgectl voter-derive\0" ‖ g)                               voters only
 *   member(w, g)     = HMAC(V(g), "edgectl member\0" ‖ w ‖ "\0" ‖ g)                         voter ↔ worker w
 *   operator(g)      = HMAC(M, "edgectl operator\0" ‖ g)                                   voters only
 *   snapshot(a,b,g)  = HMAC(pair(a, b, g), "edgectl snapshot\0")                          voter ↔ voter
 *
 * A voter holds pair() for each pair it is in, V and operator(); it derives member(w) for any
 * worker, including one `edgectl robot add` installs later, and snapshot() from its pair keys. A
 * worker holds member(itself) only: it can authenticate as itself, to voters, and as nothing else.
 * Node ids are [a-z0-9-], so the NUL separators make every label unambiguous.
 */
import { readFileSync, statSync } from 'node:fs';
import { hmac } from '@noble/hashes/hmac.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { ConfigError } from './errors.ts';
import { monotonicMs } from './clock.ts';
import { HmacSha256 } from './sha256.ts';
import type { FrameKey, ReceiveKey } from './transport/codec.ts';

export const KEY_BYTES = 32;
export const KEY_FILE_VERSION = 1 as const;
/** Where bootstrap installs a robot's key file (agent.yaml siteKeyFile). */
export const ROBOT_KEY_FILE = '/etc/edgectl/site-keys.json';

type NodeId = string;
const utf8 = new TextEncoder();

function mac(key: Uint8Array, label: string): Uint8Array {
  return hmac(sha256, key, utf8.encode(label));
}

/** pairKey: the key voters a and b share at generation g (the order of a and b does not matter). */
export function pairKey(master: Uint8Array, a: NodeId, b: NodeId, generation: number): Uint8Array {
  const [lo, hi] = a < b ? [a, b] : [b, a];
  return mac(master, `edgectl pair\0${lo}\0${hi}\0${generation}`);
}

/** voterDeriveKey: V(g), from which voters derive any worker's key; never on a worker. */
export function voterDeriveKey(master: Uint8Array, generation: number): Uint8Array {
  return mac(master, `edgectl voter-derive\0${generation}`);
}

/** memberKey: the one key of worker w at generation g, from V(g). */
export function memberKey(voterDerive: Uint8Array, worker: NodeId, generation: number): Uint8Array {
  return mac(voterDerive, memberLabel(worker, generation));
}

function memberLabel(worker: NodeId, generation: number): string {
  return `edgectl member\0${worker}\0${generation}`;
}

/** operatorKey: what an operator's signed site change is verified with; voters only. */
export function operatorKey(master: Uint8Array, generation: number): Uint8Array {
  return mac(master, `edgectl operator\0${generation}`);
}

/** snapshotKeyOfPair: the key that authenticates and encrypts snapshots between two voters. */
export function snapshotKeyOfPair(pair: Uint8Array): Uint8Array {
  return mac(pair, 'edgectl snapshot\0');
}

// ---------------------------------------------------------------------------------------------------
// the robot's key file

export interface VoterGenerationKeys {
  readonly id: number;
  /** The pair key with each other voter, hex. */
  readonly pairs: Readonly<Record<NodeId, string>>;
  /** V(g), hex. */
  readonly members: string;
  /** operator(g), hex. */
  readonly operator: string;
}

export interface WorkerGenerationKeys {
  readonly id: number;
  /** member(self, g), hex. */
  readonly member: string;
}

/**
 * RobotKeyFile is what /etc/edgectl/site-keys.json holds. `send` is the generation the robot
 * authenticates with; it accepts every generation listed (one, or two while keys rotate).
 * `refused` lists removed workers that voters refuse until the next rotation retires their keys.
 */
export type RobotKeyFile = {
  readonly v: typeof KEY_FILE_VERSION;
  readonly site: string;
  readonly node: NodeId;
  readonly voters: readonly NodeId[];
  readonly send: number;
  readonly refused: readonly NodeId[];
} & (
  | { readonly role: 'voter'; readonly generations: readonly VoterGenerationKeys[] }
  | { readonly role: 'worker'; readonly generations: readonly WorkerGenerationKeys[] }
);

export interface KeyFileInput {
  readonly master: Uint8Array;
  readonly site: string;
  readonly node: NodeId;
  readonly voters: readonly NodeId[];
  /** The generation to send with. */
  readonly send: number;
  /** Every generation to accept, `send` among them. */
  readonly accept: readonly number[];
  readonly refused?: readonly NodeId[];
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

/** renderRobotKeyFile: a robot's key file, derived from the master secret. Pure. */
export function renderRobotKeyFile(i: KeyFileInput): RobotKeyFile {
  const voters = [...i.voters].sort();
  const generations = [...new Set([i.send, ...i.accept])].sort((a, b) => b - a);
  const base = {
    v: KEY_FILE_VERSION as typeof KEY_FILE_VERSION,
    site: i.site,
    node: i.node,
    voters,
    send: i.send,
  };
  if (voters.includes(i.node))
    return {
      ...base,
      role: 'voter',
      refused: [...new Set(i.refused ?? [])].sort(),
      generations: generations.map((g) => ({
        id: g,
        pairs: Object.fromEntries(
          voters.filter((v) => v !== i.node).map((v) => [v, hex(pairKey(i.master, i.node, v, g))]),
        ),
        members: hex(voterDeriveKey(i.master, g)),
        operator: hex(operatorKey(i.master, g)),
      })),
    };
  return {
    ...base,
    role: 'worker',
    // A worker refuses no one: it talks only to voters.
    refused: [],
    generations: generations.map((g) => ({
      id: g,
      member: hex(memberKey(voterDeriveKey(i.master, g), i.node, g)),
    })),
  };
}

/** formatRobotKeyFile: the file's text, as bootstrap writes it. */
export function formatRobotKeyFile(f: RobotKeyFile): string {
  return `${JSON.stringify(f, null, 2)}\n`;
}

const ID = /^[a-z0-9-]{1,63}$/;
const HEX_KEY = /^[0-9a-f]{64}$/;

/** parseRobotKeyFile checks every field of a key file's text; `source` names it in errors. */
export function parseRobotKeyFile(text: string, source: string): RobotKeyFile {
  const hint = 'edgectl bootstrap site (or edgectl site rotate-keys) writes this file; run it again';
  if (/^\s*[0-9a-f]{64}\s*$/i.test(text))
    throw new ConfigError(
      source,
      ['this is a shared site key of an older edgectl: every robot now holds its own keys'],
      { hint: 'run edgectl bootstrap site again: it installs each robot its own key file' },
    );
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new ConfigError(source, ['not JSON'], { hint });
  }
  const problems: string[] = [];
  const o = (typeof raw === 'object' && raw !== null ? raw : {}) as Record<string, unknown>;
  const isId = (x: unknown): x is string => typeof x === 'string' && ID.test(x);
  const isGen = (x: unknown): x is number => Number.isSafeInteger(x) && (x as number) >= 1;
  const isKey = (x: unknown): x is string => typeof x === 'string' && HEX_KEY.test(x);
  const ids = (x: unknown) => Array.isArray(x) && x.every(isId);
  if (o.v !== KEY_FILE_VERSION) problems.push(`v: must be ${KEY_FILE_VERSION}`);
  if (typeof o.site !== 'string' || o.site.length === 0) problems.push('site: must be the site id');
  if (!isId(o.node)) problems.push('node: must be a node id');
  if (!ids(o.voters) || (o.voters as unknown[]).length === 0) problems.push('voters: must list node ids');
  if (!ids(o.refused)) problems.push('refused: must list node ids');
  if (o.role !== 'voter' && o.role !== 'worker') problems.push('role: must be voter or worker');
  if (!isGen(o.send)) problems.push('send: must be a generation (an integer ≥ 1)');
  const gens = Array.isArray(o.generations) ? (o.generations as Record<string, unknown>[]) : null;
  if (!gens || gens.length === 0 || gens.length > 2)
    problems.push('generations: must hold one or two generations');
  else {
    gens.forEach((g, n) => {
      const at = `generations[${n}]`;
      if (typeof g !== 'object' || g === null) return problems.push(`${at}: must be an object`);
      if (!isGen(g.id)) problems.push(`${at}.id: must be an integer ≥ 1`);
      if (o.role === 'worker' && !isKey(g.member)) problems.push(`${at}.member: must be 64 hex digits`);
      if (o.role === 'voter') {
        if (!isKey(g.members)) problems.push(`${at}.members: must be 64 hex digits`);
        if (!isKey(g.operator)) problems.push(`${at}.operator: must be 64 hex digits`);
        const pairs = (typeof g.pairs === 'object' && g.pairs !== null ? g.pairs : null) as Record<
          string,
          unknown
        > | null;
        const others = ids(o.voters) ? (o.voters as string[]).filter((v) => v !== o.node).sort() : [];
        if (
          !pairs ||
          Object.keys(pairs).sort().join() !== others.join() ||
          !Object.values(pairs).every(isKey)
        )
          problems.push(`${at}.pairs: must hold one 64-hex-digit key for each other voter`);
      }
    });
    if (new Set(gens.map((g) => g?.id)).size !== gens.length) problems.push('generations: ids repeat');
    if (isGen(o.send) && !gens.some((g) => g?.id === o.send))
      problems.push(`send: generation ${String(o.send)} is not among the generations`);
  }
  if (ids(o.voters) && isId(o.node) && (o.role === 'voter') !== (o.voters as string[]).includes(o.node))
    problems.push(`role: ${o.node} is ${o.role === 'voter' ? 'not ' : ''}among the voters`);
  if (problems.length) throw new ConfigError(source, problems, { hint });
  return raw as RobotKeyFile;
}

/**
 * readRobotKeys loads a robot's key file and refuses one that others can read: a voter's file
 * lets its holder speak for that voter in elections.
 */
export function readRobotKeys(path: string): RobotKeyFile {
  let mode: number;
  let text: string;
  try {
    mode = statSync(path).mode;
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError(
      path,
      [`cannot read the robot's key file: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`],
      { hint: 'edgectl bootstrap site installs it (mode 0600); for a lab, lab/lab.ts writes one per robot' },
    );
  }
  if ((mode & 0o077) !== 0)
    throw new ConfigError(path, [`mode is ${(mode & 0o777).toString(8)}: run chmod 600 ${path}`]);
  return parseRobotKeyFile(text, path);
}

// ---------------------------------------------------------------------------------------------------
// the keyring

/** Derived worker keys kept at once: above the largest site; only keys whose frames verified are kept. */
const MAX_CACHED_MEMBER_KEYS = 512;
/**
 * Worker keys a voter derives per second for frames from senders it has not verified yet. A real
 * worker needs one derivation, once; a flood of made-up worker names would otherwise cost a voter
 * a derivation and an HMAC setup per datagram, several times what a plain forgery costs. Past the
 * budget such frames are refused as unknown-key until the next second.
 */
export const MEMBER_DERIVATIONS_PER_SECOND = 64;

/**
 * Keyring answers, for one robot, which key authenticates a frame to or from each peer, and which
 * keys seal snapshots between voters. Built from the robot's key file (Keyring.from), replaced
 * whole on reload. The transport asks it per datagram, so its answers are cached HMAC states.
 */
export class Keyring {
  readonly self: NodeId;
  readonly site: string;
  readonly role: 'voter' | 'worker';
  readonly voters: ReadonlySet<NodeId>;
  readonly sendGeneration: number;
  /** Every generation accepted, the send generation first. */
  readonly generations: readonly number[];
  readonly refused: ReadonlySet<NodeId>;
  readonly #file: RobotKeyFile;
  /** `${generation}/${peer}` → key; voter pairs and, for a worker, its own key. */
  readonly #fixed = new Map<string, ReceiveKey & FrameKey>();
  /**
   * V(g) per generation (voters), as an HMAC state with its pads hashed once: deriving a worker's
   * key for a frame that claims an unknown worker then costs two SHA-256 blocks, not six, which
   * bounds what a flood of made-up sender names costs a voter.
   */
  readonly #derive = new Map<number, HmacSha256>();
  /** Worker keys derived by a voter, recency-ordered, bounded. */
  readonly #members = new Map<string, ReceiveKey & FrameKey>();
  /** The last key derived for an unverified sender: confirmSender keeps it without deriving again. */
  #lastDerived: { readonly id: string; readonly key: ReceiveKey & FrameKey } | undefined;
  readonly #now: () => number;
  #budgetSecond = -1;
  #budgetLeft = 0;

  private constructor(file: RobotKeyFile, now: () => number) {
    this.#file = file;
    this.#now = now;
    this.self = file.node;
    this.site = file.site;
    this.role = file.role;
    this.voters = new Set(file.voters);
    this.sendGeneration = file.send;
    this.generations = [file.send, ...file.generations.map((g) => g.id).filter((g) => g !== file.send)];
    this.refused = new Set(file.refused);
    for (const g of file.generations) {
      if ('pairs' in g) {
        for (const [peer, k] of Object.entries(g.pairs))
          this.#fixed.set(`${g.id}/${peer}`, frameKey(g.id, Buffer.from(k, 'hex'), true));
        this.#derive.set(g.id, new HmacSha256(Buffer.from(g.members, 'hex')));
      } else {
        // A worker uses its one key with every voter.
        const k = frameKey(g.id, Buffer.from(g.member, 'hex'), true);
        for (const v of file.voters) this.#fixed.set(`${g.id}/${v}`, k);
      }
    }
  }

  /**
   * from builds the keyring and checks that the key file is this robot's, of this site, with the
   * config's voters: a key file copied from another robot is refused at start, not at the first vote.
   */
  static from(
    file: RobotKeyFile,
    expected: { readonly site: string; readonly node: NodeId; readonly voters: readonly NodeId[] },
    source = 'the key file',
    now: () => number = monotonicMs,
  ): Keyring {
    const problems: string[] = [];
    if (file.site !== expected.site) problems.push(`site is ${file.site}, the config's is ${expected.site}`);
    if (file.node !== expected.node) problems.push(`node is ${file.node}, this robot is ${expected.node}`);
    if ([...file.voters].sort().join() !== [...expected.voters].sort().join())
      problems.push(`voters are ${file.voters.join(', ')}, the config's are ${expected.voters.join(', ')}`);
    if (problems.length)
      throw new ConfigError(source, problems, {
        hint: 'install the key file bootstrap rendered for this robot: run edgectl bootstrap site again',
      });
    return new Keyring(file, now);
  }

  /** The key this robot authenticates a frame to `peer` with, or undefined when it has none. */
  sendKey(peer: NodeId): FrameKey | undefined {
    // A peer this robot writes to is one the site told it about: its key is kept.
    return this.#key(peer, this.sendGeneration, 'send');
  }

  /**
   * The key a frame claiming to come from `peer` at `generation` must carry, and whether that
   * sender is a voter; undefined when no such frame can be genuine (unknown or refused sender,
   * a generation not accepted, a frame claiming to be from this robot, worker to worker).
   */
  receiveKey(peer: NodeId, generation: number): ReceiveKey | undefined {
    return this.#key(peer, generation, 'receive');
  }

  /** confirmSender keeps a derived worker key once a frame under it verified (the cache is bounded). */
  confirmSender(peer: NodeId, generation: number): void {
    const id = `${generation}/${peer}`;
    if (this.#lastDerived?.id === id) this.#keep(id, this.#lastDerived.key);
  }

  #keep(id: string, k: ReceiveKey & FrameKey): void {
    this.#members.set(id, k);
    if (this.#members.size > MAX_CACHED_MEMBER_KEYS) this.#members.delete(this.#members.keys().next().value!);
  }

  #key(peer: NodeId, generation: number, use: 'send' | 'receive'): (ReceiveKey & FrameKey) | undefined {
    if (peer === this.self || !this.generations.includes(generation)) return undefined;
    const id = `${generation}/${peer}`;
    const fixed = this.#fixed.get(id);
    if (fixed) return fixed;
    // Only a voter derives worker keys; a worker has no key for another worker.
    const derive = this.#derive.get(generation);
    if (!derive || this.voters.has(peer) || this.refused.has(peer)) return undefined;
    const cached = this.#members.get(id);
    if (cached) {
      this.#members.delete(id);
      this.#members.set(id, cached);
      return cached;
    }
    if (use === 'receive') {
      const second = Math.floor(this.#now() / 1000);
      if (second !== this.#budgetSecond) {
        this.#budgetSecond = second;
        this.#budgetLeft = MEMBER_DERIVATIONS_PER_SECOND;
      }
      if (this.#budgetLeft === 0) return undefined;
      this.#budgetLeft--;
    }
    const member = new Uint8Array(KEY_BYTES);
    derive.macInto(utf8.encode(memberLabel(peer, generation)), member);
    const k = frameKey(generation, member, false);
    if (use === 'send') this.#keep(id, k);
    else this.#lastDerived = { id, key: k };
    return k;
  }

  /**
   * snapshotKeysFor: the keys that seal snapshots between this voter and voter `peer`. The first
   * (the send generation's) seals; each of them opens. Empty for a worker or a non-voter peer:
   * nothing a worker holds opens or makes a snapshot.
   */
  snapshotKeysFor(peer: NodeId): Buffer[] {
    if (this.role !== 'voter' || !this.voters.has(peer) || peer === this.self) return [];
    return this.generations.flatMap((g) => {
      const gen = this.#file.generations.find((x) => x.id === g);
      const pair = gen && 'pairs' in gen ? gen.pairs[peer] : undefined;
      return pair ? [Buffer.from(snapshotKeyOfPair(Buffer.from(pair, 'hex')))] : [];
    });
  }

  /**
   * operatorKeys: the keys an operator's signed request (edgectl site apply) is verified with, the
   * send generation's first. Voters only; the bootstrap machine derives the same from the master.
   */
  operatorKeys(): Buffer[] {
    if (this.#file.role !== 'voter') return [];
    const gens = this.#file.generations;
    return this.generations.flatMap((g) => {
      const k = gens.find((x) => x.id === g)?.operator;
      return k ? [Buffer.from(k, 'hex')] : [];
    });
  }

  /** What /status and the logs show: generations and refusals, never a key. */
  summary(): { role: string; send: number; accepted: readonly number[]; refused: readonly NodeId[] } {
    return {
      role: this.role,
      send: this.sendGeneration,
      accepted: this.generations,
      refused: [...this.refused],
    };
  }
}

function frameKey(generation: number, key: Uint8Array, voter: boolean): ReceiveKey & FrameKey {
  return { generation, mac: new HmacSha256(key), voter };
}

/** loadKeyring reads the key file at `path` and builds this robot's keyring. */
export function loadKeyring(
  path: string,
  expected: { readonly site: string; readonly node: NodeId; readonly voters: readonly NodeId[] },
): Keyring {
  return Keyring.from(readRobotKeys(path), expected, path);
}

/**
 * siteKeyrings: every listed robot's keyring of one site, derived from `master` at one generation:
 * what bootstrap installs, in memory (tests, the lab, benchmarks).
 */
export function siteKeyrings(
  master: Uint8Array,
  site: string,
  voters: readonly NodeId[],
  robots: readonly NodeId[],
  generations: {
    readonly send: number;
    readonly accept?: readonly number[];
    readonly refused?: readonly NodeId[];
  } = {
    send: 1,
  },
): Map<NodeId, Keyring> {
  return new Map(
    robots.map((node) => [
      node,
      Keyring.from(
        renderRobotKeyFile({
          master,
          site,
          node,
          voters,
          send: generations.send,
          accept: generations.accept ?? [generations.send],
          refused: generations.refused ?? [],
        }),
        { site, node, voters },
      ),
    ]),
  );
}
