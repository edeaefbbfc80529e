/**
 * A hostile host on the lab LAN, for the discovery attack tests: scripts that a node runs inside a
 * network namespace (NetnsLab.spawn / exec with `node -e`). Each one builds its packets with
 * dns-packet (what multicast-dns uses) and sends them to 224.0.0.251:5353 from port 5353, so every
 * agent on the bridge receives them as mDNS responses or queries.
 */

/** The agent unit's V8 heap flags (templates/edgectl-agent.service): an OOM here is an OOM on a robot. */
export const AGENT_HEAP_FLAGS = ['--max-semi-space-size=1', '--max-old-space-size=96'];

/** What one flood packet holds. */
export type HostileKind =
  /** PTRs of our service type to instances that do not exist, with the largest TTL there is. */
  | 'junk-ptr'
  /** One 60 KB TXT record of our service type per packet (and its PTR). */
  | 'big-txt'
  /** A complete forged peer of another site. */
  | 'other-site'
  /** A complete forged peer of the victim's site whose node id the config does not name. */
  | 'forged-site-peer';

export interface FloodOptions {
  /** The sender's interface address (IP_MULTICAST_IF). */
  readonly from: string;
  readonly kinds: readonly HostileKind[];
  /** The victim's site id (for forged peers). */
  readonly site: string;
  /** Distinct packets per kind; the flood cycles through them. */
  readonly variants: number;
  /** Send each packet once, or cycle as fast as the socket takes them for this long. */
  readonly durationMs?: number;
  /** Sending each packet once: wait this long between packets (so the victim's socket takes them all). */
  readonly paceMs?: number;
  /** A records of forged peers point here (any address: a victim of the reflection). */
  readonly victimAddress: string;
  /** Node ids of the forged peers of our site (default fake-<i>): a voter's id forges that voter. */
  readonly nodeIds?: readonly string[];
}

/**
 * floodScript is the source of a Node script that sends the flood and prints one JSON line
 * `{ sent, bytes }` when done. Without `durationMs` every variant is sent once.
 */
export function floodScript(o: FloodOptions): string {
  return `
const dgram = require('node:dgram');
const packet = require('dns-packet');
const o = ${JSON.stringify(o)};
const SERVICE = '_edgectl._udp.local';
const MAX_TTL = 0x7fffffff;
const txt = (kv) => kv.map((s) => Buffer.from(s));
const peer = (site, node, i) => {
  const inst = 'x' + i + '-' + node + '.' + SERVICE;
  const host = 'h' + i + '-' + node + '.local';
  return [
    { name: SERVICE, type: 'PTR', ttl: MAX_TTL, data: inst },
    { name: inst, type: 'SRV', ttl: MAX_TTL, flush: true, data: { priority: 0, weight: 0, port: 7946, target: host } },
    { name: inst, type: 'TXT', ttl: MAX_TTL, flush: true, data: txt(['txtvers=1', 'site=' + site, 'node=' + node, 'ver=6.6.6', 'role=leader', 'term=1', 'port=7946', 'srv=1']) },
    { name: host, type: 'A', ttl: MAX_TTL, flush: true, data: o.victimAddress },
  ];
};
const build = (kind, i) => {
  switch (kind) {
    case 'junk-ptr':
      return Array.from({ length: 8 }, (_, j) => ({ name: SERVICE, type: 'PTR', ttl: MAX_TTL, data: 'junk-' + i + '-' + j + '.' + SERVICE }));
    case 'big-txt': {
      const inst = 'big-' + i + '.' + SERVICE;
      const strings = Array.from({ length: 240 }, (_, j) => Buffer.alloc(250, 97 + (j % 26)));
      return [
        { name: SERVICE, type: 'PTR', ttl: MAX_TTL, data: inst },
        { name: inst, type: 'TXT', ttl: MAX_TTL, flush: true, data: strings },
      ];
    }
    case 'other-site':
      return peer('elsewhere-' + (i % 7), 'o' + i, i);
    case 'forged-site-peer':
      return peer(o.site, o.nodeIds ? o.nodeIds[i % o.nodeIds.length] : 'fake-' + i, i);
  }
};
const packets = [];
for (let i = 0; i < o.variants; i++)
  for (const kind of o.kinds)
    packets.push(packet.encode({ type: 'response', id: 0, flags: packet.AUTHORITATIVE_ANSWER, answers: build(kind, i) }));
const s = dgram.createSocket({ type: 'udp4', reuseAddr: true });
let sent = 0, bytes = 0, inflight = 0, i = 0, errors = 0;
const end = o.durationMs === undefined ? Infinity : Date.now() + o.durationMs;
const done = () => o.durationMs === undefined ? i >= packets.length : Date.now() >= end;
const finish = () => { process.stdout.write(JSON.stringify({ sent, bytes, errors }) + '\\n'); s.close(); };
const paced = () => {
  if (done()) return finish();
  const p = packets[i++];
  s.send(p, 5353, '224.0.0.251', (err) => { if (err) errors++; else { sent++; bytes += p.length; } setTimeout(paced, o.paceMs); });
};
const pump = () => {
  while (inflight < 64 && !done()) {
    const p = packets[i++ % packets.length];
    inflight++;
    s.send(p, 5353, '224.0.0.251', (err) => { inflight--; if (err) errors++; else { sent++; bytes += p.length; } });
  }
  if (!done()) setImmediate(pump);
  else { const wait = () => (inflight > 0 ? setImmediate(wait) : finish()); wait(); }
};
s.bind(5353, () => { s.setMulticastInterface(o.from); s.setMulticastTTL(255); (o.paceMs === undefined ? pump : paced)(); });
`;
}

/**
 * claimerScript answers every probe (a query with ANY questions) whose name matches `pattern` with
 * a record of that name and other data: the host that "owns" every name a victim tries.
 */
export function claimerScript(o: { from: string; pattern: string }): string {
  return `
const dgram = require('node:dgram');
const packet = require('dns-packet');
const re = new RegExp(${JSON.stringify(o.pattern)});
const s = dgram.createSocket({ type: 'udp4', reuseAddr: true });
let claimed = 0;
s.on('message', (msg) => {
  let q;
  try { q = packet.decode(msg); } catch { return; }
  if (q.type !== 'query') return;
  const answers = [];
  for (const x of q.questions || []) {
    if (x.type !== 'ANY' || !re.test(x.name)) continue;
    answers.push(x.name.endsWith('._edgectl._udp.local')
      ? { name: x.name, type: 'SRV', ttl: 120, flush: true, data: { priority: 0, weight: 0, port: 1, target: 'claimer.local' } }
      : { name: x.name, type: 'A', ttl: 120, flush: true, data: '10.77.0.250' });
  }
  if (answers.length === 0) return;
  claimed++;
  s.send(packet.encode({ type: 'response', id: 0, flags: packet.AUTHORITATIVE_ANSWER, answers }), 5353, '224.0.0.251');
});
s.bind(5353, () => {
  s.addMembership('224.0.0.251', ${JSON.stringify(o.from)});
  s.setMulticastInterface(${JSON.stringify(o.from)});
  s.setMulticastLoopback(false);
  process.stdout.write('ready\\n');
});
setInterval(() => process.stdout.write('claimed ' + claimed + '\\n'), 1000);
`;
}

/**
 * legacyQueryScript sends `count` legacy unicast queries (RFC 6762 §6.7: from a port other than
 * 5353) for our service type, `gapMs` apart, to the mDNS group, then listens `listenMs` more and
 * prints `{ sentBytes, receivedBytes, answers }`: what an attacker sends and what comes back to the
 * source address it puts in its queries.
 */
export function legacyQueryScript(o: {
  from: string;
  count: number;
  gapMs: number;
  listenMs: number;
}): string {
  return `
const dgram = require('node:dgram');
const packet = require('dns-packet');
const o = ${JSON.stringify(o)};
const s = dgram.createSocket('udp4');
let sentBytes = 0, receivedBytes = 0, answers = 0, n = 0;
s.on('message', (m) => { receivedBytes += m.length; answers++; });
s.bind(0, o.from, () => {
  s.setMulticastInterface(o.from);
  const next = () => {
    if (n >= o.count) {
      setTimeout(() => { process.stdout.write(JSON.stringify({ sentBytes, receivedBytes, answers }) + '\\n'); s.close(); }, o.listenMs);
      return;
    }
    const q = packet.encode({ type: 'query', id: 1 + (n % 65000), questions: [{ name: '_edgectl._udp.local', type: 'PTR', class: 'IN' }] });
    n++;
    s.send(q, 5353, '224.0.0.251', () => { sentBytes += q.length; setTimeout(next, o.gapMs); });
  };
  next();
});
`;
}

/**
 * udpCounterScript listens on `address:port` (where forged advertisements point) and prints
 * `count <n>` every 250 ms: what a victim host receives.
 */
export function udpCounterScript(o: { address: string; port: number }): string {
  return `
const s = require('node:dgram').createSocket('udp4');
let n = 0;
s.on('message', () => n++);
s.bind(${o.port}, ${JSON.stringify(o.address)}, () => process.stdout.write('ready\\n'));
setInterval(() => process.stdout.write('count ' + n + '\\n'), 250);
`;
}
