/**
 * Packet capture on the lab bridge with tcpdump. The bridge is put in promiscuous mode by tcpdump,
 * so it sees every frame it forwards between robots, not only those for the host.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { readPcap, udpDatagrams, type UdpDatagram } from './pcap.ts';
import { sleep } from './harness.ts';

export const TCPDUMP = '/usr/bin/tcpdump';

export interface Capture {
  readonly file: string;
  readonly proc: ChildProcess;
  stop(): Promise<Buffer>;
}

/**
 * startCapture runs `tcpdump -i <iface> -w <file>` (whole frames, written packet by packet), on the
 * host or in a namespace, optionally only what the interface receives, and resolves once tcpdump listens. stop() ends it (SIGINT, so it flushes) and returns the file.
 */
export async function startCapture(
  iface: string,
  file: string,
  filter: readonly string[] = [],
  opts: { netns?: string; inbound?: boolean } = {},
): Promise<Capture> {
  if (!existsSync(TCPDUMP)) throw new Error(`${TCPDUMP} is missing: apt-get install tcpdump`);
  const args = [
    '-i',
    iface,
    ...(opts.inbound ? ['-Q', 'in'] : []),
    '-s',
    '0',
    '-U',
    '-n',
    '-w',
    file,
    ...filter,
  ];
  // `ip netns exec` execs tcpdump, so the child's pid is tcpdump's.
  const [cmd, argv] = opts.netns ? ['ip', ['netns', 'exec', opts.netns, TCPDUMP, ...args]] : [TCPDUMP, args];
  const proc = spawn(cmd, argv, {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  // tcpdump prints "listening on <iface>" once the capture runs.
  const end = performance.now() + 10_000;
  while (!stderr.includes('listening on')) {
    if (proc.exitCode !== null) throw new Error(`tcpdump exited: ${stderr}`);
    if (performance.now() > end) {
      proc.kill('SIGKILL');
      throw new Error(`tcpdump did not start: ${stderr}`);
    }
    await sleep(50);
  }
  return {
    file,
    proc,
    async stop(): Promise<Buffer> {
      if (proc.exitCode === null) proc.kill('SIGINT');
      const code = await Promise.race([exited, sleep(5000).then(() => 'timeout' as const)]);
      if (code === 'timeout') {
        proc.kill('SIGKILL');
        throw new Error('tcpdump did not stop');
      }
      if (!existsSync(file) || statSync(file).size < 24)
        throw new Error(`tcpdump wrote no capture: ${stderr}`);
      return readFileSync(file);
    },
  };
}

/** datagramsOf decodes the UDP datagrams of a pcap file's bytes. */
export function datagramsOf(pcap: Buffer): UdpDatagram[] {
  return udpDatagrams(readPcap(pcap));
}
