/**
 * A site's "Wi-Fi" on one Linux machine: a bridge, and one network namespace per robot joined to it
 * by a veth pair (docs/lab.md). Needs root. Everything it makes carries the caller's prefix, and
 * `destroySite` removes only names with that prefix, so it never touches an interface or namespace
 * it did not make, and it cleans up a half-built site after a crash.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { EdgeError } from '../agent/errors.ts';

export interface NetnsSite {
  readonly prefix: string;
  readonly bridge: string;
  /** The host's own address on the bridge, to reach the robots' status endpoints. */
  readonly hostAddress: string;
  readonly robots: readonly {
    readonly name: string;
    readonly netns: string;
    readonly address: string;
    readonly veth: string;
  }[];
}

function ip(args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

export function requireRoot(what: string): void {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new EdgeError('NEEDS_ROOT', `${what} needs root (network namespaces, bridges, nftables)`, {
      hint: 'run it as root, e.g. sudo bash test/run-all.sh; CI runs as root',
    });
  }
}

/**
 * createSite builds a bridge `<prefix>br` with `subnet.254/24` for the host, and robots named
 * `names` with addresses `subnet.1`, `subnet.2`, … Each namespace gets loopback up, a multicast
 * route (mDNS) and a default route via the bridge.
 */
export function createSite(prefix: string, subnet: string, names: readonly string[]): NetnsSite {
  requireRoot('the network-namespace lab');
  destroySite(prefix);
  const bridge = `${prefix}br`;
  const hostAddress = `${subnet}.254`;
  ip(['link', 'add', bridge, 'type', 'bridge']);
  ip(['addr', 'add', `${hostAddress}/24`, 'dev', bridge]);
  ip(['link', 'set', bridge, 'up']);
  const robots = names.map((name, i) => {
    const netns = `${prefix}${name}`;
    const veth = `${prefix}v${i}`;
    const address = `${subnet}.${i + 1}`;
    ip(['netns', 'add', netns]);
    ip(['link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', netns]);
    ip(['link', 'set', veth, 'master', bridge]);
    ip(['link', 'set', veth, 'up']);
    ip(['-n', netns, 'link', 'set', 'lo', 'up']);
    ip(['-n', netns, 'addr', 'add', `${address}/24`, 'dev', 'eth0']);
    ip(['-n', netns, 'link', 'set', 'eth0', 'up']);
    ip(['-n', netns, 'route', 'add', '224.0.0.0/4', 'dev', 'eth0']);
    ip(['-n', netns, 'route', 'add', 'default', 'via', hostAddress]);
    return { name, netns, address, veth };
  });
  return { prefix, bridge, hostAddress, robots };
}

/** listOwned lists namespaces and links whose names start with the prefix. */
export function listOwned(prefix: string): { netns: string[]; links: string[] } {
  const netns = ip(['netns', 'list'])
    .split('\n')
    .map((l) => l.split(' ')[0]!)
    .filter((n) => n.startsWith(prefix));
  const links = ip(['-o', 'link', 'show'])
    .split('\n')
    .map((l) => l.split(': ')[1]?.split('@')[0] ?? '')
    .filter((n) => n.startsWith(prefix));
  return { netns, links };
}

/** destroySite kills what runs in the prefix's namespaces and removes them and their links. */
export function destroySite(prefix: string): void {
  if (!prefix || prefix.length < 3)
    throw new EdgeError('BAD_PREFIX', `refusing to clean up with prefix "${prefix}"`);
  const { netns, links } = listOwned(prefix);
  for (const ns of netns) {
    try {
      const pids = ip(['netns', 'pids', ns]).split('\n').filter(Boolean);
      for (const pid of pids) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          // already gone
        }
      }
    } catch {
      // the namespace may be half made
    }
    try {
      ip(['netns', 'del', ns]);
    } catch {
      // already gone
    }
  }
  for (const l of links) {
    try {
      ip(['link', 'del', l]);
    } catch {
      // deleting one end of a veth removes the other
    }
  }
}

/** spawnIn starts a process inside a robot's namespace, in its own process group. */
export function spawnIn(
  netns: string,
  cmd: string,
  args: readonly string[],
  opts: { env?: NodeJS.ProcessEnv; logFile?: number } = {},
): ChildProcess {
  return spawn('ip', ['netns', 'exec', netns, cmd, ...args], {
    stdio: ['ignore', opts.logFile ?? 'ignore', opts.logFile ?? 'ignore'],
    env: opts.env ?? process.env,
    detached: true,
  });
}

/** killGroup sends a signal to a process started with spawnIn and everything it started. */
export function killGroup(child: ChildProcess, signal: NodeJS.Signals = 'SIGKILL'): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}
