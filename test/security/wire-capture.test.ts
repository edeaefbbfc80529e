/**
 * Wire capture: tcpdump records every frame on the lab bridge while three real agents
 * start, find each other over mDNS, elect a leader, lose it to power loss (SIGKILL), elect another,
 * take the old one back, and hand leadership over on SIGTERM. Then no forbidden secret may appear:
 *   - anywhere in the capture file's bytes (every frame, every header: election datagrams, mDNS,
 *     ARP, the /status and /metrics HTTP the test reads);
 *   - in any UDP payload, reassembled from fragments;
 *   - in any mDNS record (decoded with dns-packet: names, TXT strings, all rdata), and every TXT
 *     record of ours carries only the documented keys.
 * A secret "appears" if any 16-byte piece of it does, raw, hex or base64 (test/security/secrets.ts).
 *
 * FORBIDDEN is the list of secrets: the site master secret and every key a robot holds. When the lab runs k3s, add its join tokens
 * and the CA private key there (textSecret / pemSecret), or name files in EDGECTL_FORBIDDEN_SECRETS
 * (comma-separated; a file holding a PEM block counts as that key, any other file as its trimmed text).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import dnsPacket from 'dns-packet';
import { TXT_KEYS, parseTxtAttributes } from '../../agent/discovery/dnssd.ts';
import { killGroup, requireRoot } from '../../lab/netns.ts';
import { startCapture, type Capture } from './capture.ts';
import {
  ELECTION_PORT,
  STATUS_PORT,
  logTails,
  settledSite,
  sleep,
  startAgent,
  startAgents,
  startLab,
  status,
  stopLab,
  until,
  type Lab,
} from './harness.ts';
import { readPcap, udpDatagrams } from './pcap.ts';
import { renderRobotKeyFile } from '../../agent/site-key.ts';
import { findSecrets, pemSecret, textSecret, type Secret } from './secrets.ts';

const PREFIX = 'esx-';
const SUBNET = '10.77.40';
const SITE = 'wire';
const KEY_HEX = randomBytes(32).toString('hex');
const MDNS_PORT = 5353;

/** The secrets that must never be on the wire. */
function forbiddenSecrets(): Secret[] {
  const master = Buffer.from(KEY_HEX, 'hex');
  const out: Secret[] = [{ name: 'site master secret', bytes: master }];
  // Every key the robots hold: voter pair keys, V, the operator key (agent/site-key.ts).
  const nodes = ['r1', 'r2', 'r3'];
  for (const node of nodes) {
    const file = renderRobotKeyFile({ master, site: SITE, node, voters: nodes, send: 1, accept: [1] });
    for (const k of new Set(JSON.stringify(file).match(/[0-9a-f]{64}/g) ?? []))
      out.push({ name: `a key of ${node}`, bytes: Buffer.from(k, 'hex') });
  }
  // The lab's k3s secrets join here: e.g. textSecret('k3s server token', token), pemSecret('k3s CA key', pem).
  for (const file of (process.env.EDGECTL_FORBIDDEN_SECRETS ?? '').split(',').filter(Boolean)) {
    const text = readFileSync(file, 'utf8');
    out.push(text.includes('-----BEGIN ') ? pemSecret(file, text) : textSecret(file, text));
  }
  return out;
}

let lab: Lab | undefined;
let capture: Capture | undefined;

before(async () => {
  requireRoot('the wire-capture test');
  lab = await startLab(
    PREFIX,
    SUBNET,
    [{ id: SITE, keyHex: KEY_HEX, robots: ['r1', 'r2', 'r3'].map((n) => ({ ns: n, node: n })) }],
    [],
    {
      start: false,
    },
  );
});

after(async () => {
  if (capture && capture.proc.exitCode === null) capture.proc.kill('SIGKILL');
  stopLab(lab, PREFIX);
});

test('no secret crosses the wire: not in any frame, UDP payload or mDNS record, through election, power loss and handover', async () => {
  const l = lab!;
  try {
    capture = await startCapture(l.net.bridge, join(l.dir, 'wire.pcap'));
    startAgents(l);
    const first = await until('one leader, all ready', () => settledSite(l.robots), 30_000);
    const leader = first.find((x) => x.role === 'leader')!;
    // Power loss of the leader, a new election, and the old leader back.
    killGroup(l.procs.get(leader.node)!);
    const survivors = l.robots.filter((r) => r.node !== leader.node);
    await until(
      'a new leader among the survivors',
      async () => {
        const s = await Promise.all(survivors.map((r) => status(r)));
        return s.every((x) => x && x.term > leader.term && x.leader !== null && x.leader !== leader.node);
      },
      20_000,
    );
    startAgent(
      l,
      l.robots.find((r) => r.node === leader.node)!,
    );
    const again = await until('the site whole again', () => settledSite(l.robots), 30_000);
    // A planned handover (TimeoutNow and a transfer vote on the wire).
    const l2 = again.find((x) => x.role === 'leader')!;
    const stopping = l.procs.get(l2.node)!;
    const exited = new Promise((r) => stopping.once('exit', r));
    killGroup(stopping, 'SIGTERM');
    await exited;
    const rest = l.robots.filter((r) => r.node !== l2.node);
    await until(
      'a leader after the handover',
      async () =>
        (await Promise.all(rest.map((r) => status(r)))).some((x) => x?.role === 'leader' && x.term > l2.term),
      10_000,
    );
    // The metrics endpoint goes over the wire too.
    for (const r of rest) await fetch(`http://${r.address}:${STATUS_PORT}/metrics`).then((x) => x.text());
    await sleep(1000);
    const pcap = await capture.stop();

    const secrets = forbiddenSecrets();
    // 1. The whole file.
    assert.deepEqual(findSecrets(pcap, secrets), [], 'a secret in the capture file');
    // The scan is not blind: the key planted in a copy of the capture is found.
    const planted = Buffer.concat([pcap, Buffer.from(`x${KEY_HEX.toUpperCase()}x`)]);
    assert.ok(findSecrets(planted, secrets).length > 0, 'the scanner finds a planted key');

    // 2. Every UDP payload, reassembled.
    const datagrams = udpDatagrams(readPcap(pcap));
    for (const d of datagrams) {
      const hits = findSecrets(d.payload, secrets);
      assert.deepEqual(hits, [], `a secret in a UDP datagram ${d.src}:${d.srcPort} → ${d.dst}:${d.dstPort}`);
    }
    const election = datagrams.filter((d) => d.dstPort === ELECTION_PORT);
    assert.ok(election.length > 100, `election datagrams captured: ${election.length}`);

    // 3. Every mDNS record.
    const mdns = datagrams.filter((d) => d.dstPort === MDNS_PORT || d.srcPort === MDNS_PORT);
    const txtNodes = new Set<string>();
    let records = 0;
    for (const d of mdns) {
      let p: ReturnType<typeof dnsPacket.decode>;
      try {
        p = dnsPacket.decode(d.payload);
      } catch {
        continue; // not DNS (nothing else uses 5353 here; the raw scans above cover it anyway)
      }
      for (const q of p.questions ?? []) assert.deepEqual(findSecrets(Buffer.from(q.name), secrets), []);
      for (const rr of [...(p.answers ?? []), ...(p.authorities ?? []), ...(p.additionals ?? [])]) {
        records++;
        const rdata: Buffer[] =
          rr.type === 'TXT'
            ? (Array.isArray(rr.data) ? rr.data : [rr.data]).map((x) => Buffer.from(x))
            : [Buffer.from(JSON.stringify('data' in rr ? rr.data : null))];
        for (const b of [Buffer.from(rr.name), ...rdata])
          assert.deepEqual(
            findSecrets(b, secrets),
            [],
            `a secret in the mDNS ${rr.type} record of ${rr.name}`,
          );
        if (rr.type === 'TXT' && rr.name.includes('_edgectl._udp') && rdata.length > 0) {
          const attrs = parseTxtAttributes(rdata);
          for (const k of attrs.keys())
            assert.ok((TXT_KEYS as readonly string[]).includes(k), `unexpected TXT key "${k}" in ${rr.name}`);
          const node = attrs.get('node');
          if (node) txtNodes.add(node);
        }
      }
    }
    assert.deepEqual([...txtNodes].sort(), ['r1', 'r2', 'r3'], 'TXT records of every agent were captured');
    const http = readPcap(pcap).packets.length;
    process.stdout.write(
      `# captured ${(pcap.length / 1024).toFixed(0)} KiB, ${http} frames: ${election.length} election datagrams, ` +
        `${mdns.length} mDNS datagrams with ${records} records; searched for ${secrets.map((s) => s.name).join(', ')}: none found\n`,
    );
  } catch (e) {
    process.stderr.write(`${logTails(lab)}\n`);
    throw e;
  }
});
