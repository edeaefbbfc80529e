/**
 * Just enough of the pcap format (what `tcpdump -w` writes) to read a capture back: the global
 * header, per-packet records, Ethernet (or Linux cooked) framing, IPv4 with fragment reassembly and
 * UDP. Pure: bytes in, packets out. https://www.tcpdump.org/manpages/pcap-savefile.5.html
 */

export interface PcapPacket {
  /** Capture time, seconds since the epoch (fractional). */
  readonly ts: number;
  /** The captured bytes of the link-layer frame. */
  readonly frame: Buffer;
}

export interface UdpDatagram {
  readonly ts: number;
  readonly src: string;
  readonly dst: string;
  readonly srcPort: number;
  readonly dstPort: number;
  /** The whole UDP payload (reassembled when the datagram was fragmented). */
  readonly payload: Buffer;
}

const LINKTYPE_ETHERNET = 1;
const LINKTYPE_LINUX_SLL = 113;
const LINKTYPE_LINUX_SLL2 = 276;

export interface Pcap {
  readonly linkType: number;
  readonly packets: readonly PcapPacket[];
}

/** readPcap parses a classic pcap file (either byte order, micro- or nanosecond stamps). */
export function readPcap(buf: Buffer): Pcap {
  if (buf.length < 24) throw new Error(`not a pcap file: ${buf.length} bytes`);
  const magicLe = buf.readUInt32LE(0);
  let le: boolean;
  let nano: boolean;
  if (magicLe === 0xa1b2c3d4 || magicLe === 0xa1b23c4d) {
    le = true;
    nano = magicLe === 0xa1b23c4d;
  } else {
    const magicBe = buf.readUInt32BE(0);
    if (magicBe !== 0xa1b2c3d4 && magicBe !== 0xa1b23c4d)
      throw new Error(`not a pcap file: magic 0x${magicLe.toString(16)}`);
    le = false;
    nano = magicBe === 0xa1b23c4d;
  }
  const u32 = (o: number): number => (le ? buf.readUInt32LE(o) : buf.readUInt32BE(o));
  const linkType = u32(20) & 0x0fff_ffff;
  const packets: PcapPacket[] = [];
  let off = 24;
  while (off + 16 <= buf.length) {
    const sec = u32(off);
    const frac = u32(off + 4);
    const incl = u32(off + 8);
    off += 16;
    if (off + incl > buf.length) break; // a capture cut short while writing
    packets.push({ ts: sec + frac / (nano ? 1e9 : 1e6), frame: buf.subarray(off, off + incl) });
    off += incl;
  }
  return { linkType, packets };
}

/** ipv4Of returns the IPv4 packet inside a link-layer frame, or null for anything else. */
function ipv4Of(frame: Buffer, linkType: number): Buffer | null {
  let off: number;
  let etherType: number;
  if (linkType === LINKTYPE_ETHERNET) {
    if (frame.length < 14) return null;
    off = 14;
    etherType = frame.readUInt16BE(12);
    while (etherType === 0x8100 && frame.length >= off + 4) {
      etherType = frame.readUInt16BE(off + 2);
      off += 4;
    }
  } else if (linkType === LINKTYPE_LINUX_SLL) {
    if (frame.length < 16) return null;
    off = 16;
    etherType = frame.readUInt16BE(14);
  } else if (linkType === LINKTYPE_LINUX_SLL2) {
    if (frame.length < 20) return null;
    off = 20;
    etherType = frame.readUInt16BE(0);
  } else return null;
  return etherType === 0x0800 ? frame.subarray(off) : null;
}

const addr = (b: Buffer, o: number): string => `${b[o]}.${b[o + 1]}.${b[o + 2]}.${b[o + 3]}`;

/**
 * udpDatagrams decodes every IPv4 UDP datagram of a capture, reassembling fragments (a datagram
 * whose fragments were not all captured is left out).
 */
export function udpDatagrams(pcap: Pcap): UdpDatagram[] {
  const out: UdpDatagram[] = [];
  const frags = new Map<
    string,
    { parts: { off: number; data: Buffer }[]; total: number | null; header: Buffer; ts: number }
  >();
  const emit = (ts: number, ip: Buffer, udp: Buffer): void => {
    if (udp.length < 8) return;
    const len = udp.readUInt16BE(4);
    out.push({
      ts,
      src: addr(ip, 12),
      dst: addr(ip, 16),
      srcPort: udp.readUInt16BE(0),
      dstPort: udp.readUInt16BE(2),
      payload: udp.subarray(8, Math.max(8, Math.min(len, udp.length))),
    });
  };
  for (const p of pcap.packets) {
    const ip = ipv4Of(p.frame, pcap.linkType);
    if (!ip || ip.length < 20 || ip[0]! >> 4 !== 4) continue;
    const ihl = (ip[0]! & 0x0f) * 4;
    const totalLen = Math.min(ip.readUInt16BE(2), ip.length);
    if (ip[9] !== 17 || totalLen < ihl) continue;
    const flagsFrag = ip.readUInt16BE(6);
    const more = (flagsFrag & 0x2000) !== 0;
    const fragOff = (flagsFrag & 0x1fff) * 8;
    const body = ip.subarray(ihl, totalLen);
    if (!more && fragOff === 0) {
      emit(p.ts, ip, body);
      continue;
    }
    const key = `${addr(ip, 12)}>${addr(ip, 16)}#${ip.readUInt16BE(4)}`;
    const f = frags.get(key) ?? {
      parts: [],
      total: null,
      header: Buffer.from(ip.subarray(0, ihl)),
      ts: p.ts,
    };
    f.parts.push({ off: fragOff, data: Buffer.from(body) });
    if (!more) f.total = fragOff + body.length;
    frags.set(key, f);
    if (f.total !== null) {
      const have = f.parts.reduce((n, x) => n + x.data.length, 0);
      if (have >= f.total) {
        const whole = Buffer.alloc(f.total);
        for (const x of f.parts) x.data.copy(whole, x.off);
        emit(f.ts, f.header, whole);
        frags.delete(key);
      }
    }
  }
  return out;
}
