/**
 * Interop of MdnsDiscovery with Avahi (root; Debian packages avahi-daemon, avahi-utils, dbus,
 * iproute2). docs/discovery.md §"Avahi interop" explains the setup:
 *
 *   netns …-1 (10.77.0.11): a private dbus-daemon (own config, socket in a temp dir), avahi-daemon
 *                           (own config: IPv4 only, eth0 only, host name edt-avahi; a private /run
 *                           so that it never meets a system avahi's pid file), avahi-browse and
 *                           avahi-publish (DBUS_SYSTEM_BUS_ADDRESS points at the private bus)
 *   netns …-2 (10.77.0.12): our agent (a child process running MdnsDiscovery)
 *   netns …-3 (10.77.0.13): a second agent, for the conflict test
 *
 * Both directions are checked: Avahi resolves our agent (TXT, SRV, A), whose TXT an update leaves alone, and the
 * goodbye; our browser sees a service published with avahi-publish and its withdrawal. Finally our
 * responder renames itself when Avahi already owns its instance name.
 */

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { NetnsLab, requireRoot, type LabNode, type LabProcess } from '../../agent/discovery/testing/netns.ts';
import { RemoteDiscovery } from '../../agent/discovery/testing/remote.ts';
import type { Advertisement, PeerRecord } from '../../agent/discovery/discovery.ts';

const SITE = 'depot-7';

function ad(nodeId: string, extra: Partial<Advertisement> = {}): Advertisement {
  return {
    siteId: SITE,
    nodeId,
    agentVersion: '0.1.0',
    role: 'follower',
    term: 3,
    port: 7401,
    serverCapable: true,
    ...extra,
  };
}

async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  timeoutMs: number,
  context: () => string = () => '',
): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (performance.now() > deadline)
      assert.fail(
        `timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${String(last)})` : ''}\n${context()}`,
      );
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** One resolved line of `avahi-browse -p`: `=;iface;proto;name;type;domain;host;address;port;txt`. */
interface BrowseEntry {
  name: string;
  host: string;
  address: string;
  port: number;
  txt: Map<string, string>;
}

/** Undoes avahi-browse -p escaping (`\DDD` decimal bytes, `\;` etc.). */
function unescapeAvahi(s: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '\\' && /^\d{3}$/.test(s.slice(i + 1, i + 4))) {
      bytes.push(Number(s.slice(i + 1, i + 4)));
      i += 3;
    } else if (s[i] === '\\' && i + 1 < s.length) {
      bytes.push(...Buffer.from(s[i + 1]!, 'utf8'));
      i += 1;
    } else bytes.push(...Buffer.from(s[i]!, 'utf8'));
  }
  return Buffer.from(bytes).toString('utf8');
}

function parseBrowse(out: string): BrowseEntry[] {
  const entries: BrowseEntry[] = [];
  for (const line of out.split('\n')) {
    if (!line.startsWith('=;')) continue;
    const f = line.split(';');
    if (f.length < 10 || f[2] !== 'IPv4') continue;
    const txt = new Map<string, string>();
    for (const m of f
      .slice(9)
      .join(';')
      .matchAll(/"((?:[^"\\]|\\.)*)"/g)) {
      const s = m[1]!;
      const eq = s.indexOf('=');
      if (eq > 0) txt.set(s.slice(0, eq), s.slice(eq + 1));
    }
    entries.push({ name: unescapeAvahi(f[3]!), host: f[6]!, address: f[7]!, port: Number(f[8]), txt });
  }
  return entries;
}

describe('mDNS interop with Avahi (root, network namespaces)', () => {
  let lab: NetnsLab | undefined;
  let avahiNode: LabNode;
  let env: NodeJS.ProcessEnv;
  let avahi: LabProcess;
  const agents: RemoteDiscovery[] = [];

  const browse = async (): Promise<BrowseEntry[]> =>
    parseBrowse(
      await lab!.exec(avahiNode, 'avahi-browse', ['-rpt', '_edgectl._udp'], { env, timeoutMs: 15_000 }),
    );

  // A failed setup (not root, avahi missing…) must fail every test with its reason, not cancel them.
  let setupError: unknown;
  const ready = (): void => {
    if (setupError !== undefined) throw setupError;
  };

  before(async () => {
    try {
      await setup();
    } catch (err) {
      setupError = err;
    }
  });

  const setup = async (): Promise<void> => {
    requireRoot('the Avahi interop test');
    const missing = ['avahi-daemon', 'avahi-browse', 'avahi-publish', 'dbus-daemon', 'unshare', 'ip'].filter(
      (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status !== 0,
    );
    if (missing.length > 0)
      throw new Error(
        `the Avahi interop test needs ${missing.join(', ')}: apt-get install avahi-daemon avahi-utils dbus iproute2 util-linux`,
      );
    lab = await NetnsLab.create({ nodes: 3, tag: 'av' });
    avahiNode = lab.nodes[0]!;
    const dir = lab.tempDir();
    const socket = join(dir, 'system_bus_socket');
    writeFileSync(
      join(dir, 'bus.conf'),
      `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>custom</type>
  <listen>unix:path=${socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
`,
    );
    writeFileSync(
      join(dir, 'avahi-daemon.conf'),
      `[server]
host-name=edt-avahi
domain-name=local
use-ipv4=yes
use-ipv6=no
allow-interfaces=eth0
enable-dbus=yes
ratelimit-interval-usec=1000000
ratelimit-burst=1000
[wide-area]
enable-wide-area=no
[publish]
publish-hinfo=no
publish-workstation=no
publish-aaaa-on-ipv4=no
[reflector]
enable-reflector=no
[rlimits]
`,
    );
    env = { ...process.env, DBUS_SYSTEM_BUS_ADDRESS: `unix:path=${socket}` };
    const dbus = lab.spawn(
      avahiNode,
      'dbus-daemon',
      [`--config-file=${join(dir, 'bus.conf')}`, '--nofork', '--nopidfile'],
      { env },
    );
    await waitFor(
      'the private D-Bus socket',
      () => (existsSync(socket) ? true : undefined),
      5000,
      () => dbus.output(),
    );
    // A private mount namespace with a tmpfs on /run: avahi's pid file and socket stay ours alone.
    avahi = lab.spawn(
      avahiNode,
      'unshare',
      [
        '--mount',
        'sh',
        '-c',
        `mount -t tmpfs tmpfs /run && exec avahi-daemon --file=${join(dir, 'avahi-daemon.conf')} --no-drop-root --no-chroot --no-rlimits --no-proc-title`,
      ],
      { env },
    );
    await waitFor(
      'avahi-daemon startup',
      () => (avahi.output().includes('Server startup complete') ? true : undefined),
      10_000,
      () => avahi.output(),
    );
  };

  after(async () => {
    for (const a of agents) await a.kill().catch(() => {});
    if (!lab) return;
    // Avahi logs what it dislikes about packets (invalid, conflicting, bad source port…): nothing.
    const complaints = (avahi?.output() ?? '')
      .split('\n')
      .filter((l) => /invalid|conflict|received|withdraw/i.test(l));
    const prefix = lab.prefix;
    const pids = [avahi?.pid].filter((p): p is number => typeof p === 'number');
    await lab.close();
    assert.deepEqual(await NetnsLab.leftovers(prefix), [], 'every namespace is deleted');
    for (const pid of pids) assert.throws(() => process.kill(pid, 0), 'avahi-daemon is gone');
    assert.deepEqual(complaints, [], 'avahi-daemon logged no complaint about our packets');
  });

  test('avahi-browse resolves our agent with the right SRV, A and TXT; sees updates and the goodbye', async (t) => {
    ready();
    const me = new RemoteDiscovery(lab!, lab!.nodes[1]!, ad('robot-b'));
    agents.push(me);
    await me.start();
    const find = async (): Promise<BrowseEntry | undefined> =>
      (await browse()).find((e) => e.txt.get('node') === 'robot-b');
    const entry = await waitFor('Avahi to resolve robot-b', find, 15_000, () => avahi.output());
    const resolvedAfter = performance.timeOrigin + performance.now() - me.times.startResolvedAt!;
    t.diagnostic(
      `avahi-browse -rt listed our agent, resolved, ${resolvedAfter.toFixed(0)} ms after start() resolved (polled)`,
    );
    assert.equal(entry.name, 'depot-7-robot-b');
    assert.equal(entry.host, 'robot-b-depot-7.local');
    assert.equal(entry.address, '10.77.0.12');
    assert.equal(entry.port, 7401);
    // Only what a peer needs to find us: no role, term, version or capability.
    assert.deepEqual(Object.fromEntries(entry.txt), {
      txtvers: '1',
      site: SITE,
      node: 'robot-b',
      port: '7401',
    });

    await me.update({ role: 'leader', term: 4 });
    await new Promise((r) => setTimeout(r, 2000));
    const after = await find();
    assert.equal(after?.name, 'depot-7-robot-b', 'an update keeps the name');
    assert.deepEqual(Object.fromEntries(after.txt), Object.fromEntries(entry.txt), 'and the TXT');

    await me.close();
    await waitFor(
      'Avahi to drop robot-b after its goodbye',
      async () => ((await find()) ? undefined : true),
      10_000,
    );
    const droppedAfter = performance.timeOrigin + performance.now() - me.times.closeCalledAt!;
    t.diagnostic(
      `avahi-browse stopped listing our agent ${droppedAfter.toFixed(0)} ms after close() (polled)`,
    );
    const stats = await me.stats();
    assert.equal(stats.malformed, 0);
    assert.equal(stats.internalErrors, 0);
    await me.kill();
  });

  test('our browser sees a service published with avahi-publish, ignores another site, sees the withdrawal', async (t) => {
    ready();
    const pub = lab!.spawn(
      avahiNode,
      'avahi-publish',
      [
        '-s',
        'robot-z on avahi',
        '_edgectl._udp',
        '7409',
        'txtvers=1',
        `site=${SITE}`,
        'node=robot-z',
        'ver=9.9.9',
        'role=leader',
        'term=7',
        'port=7409',
        'srv=0',
      ],
      { env },
    );
    const other = lab!.spawn(
      avahiNode,
      'avahi-publish',
      [
        '-s',
        'robot-y elsewhere',
        '_edgectl._udp',
        '7410',
        'txtvers=1',
        'site=elsewhere',
        'node=robot-y',
        'ver=9.9.9',
        'role=leader',
        'term=1',
        'port=7410',
        'srv=1',
      ],
      { env },
    );
    try {
      await waitFor(
        'avahi-publish to establish',
        () =>
          pub.output().includes('Established') && other.output().includes('Established') ? true : undefined,
        10_000,
        () => pub.output() + other.output(),
      );
      const me = new RemoteDiscovery(lab!, lab!.nodes[1]!, ad('robot-b', { port: 7402 }));
      agents.push(me);
      await me.start();
      const z = await waitFor(
        'our agent to see robot-z',
        () => me.peers().find((p) => p.nodeId === 'robot-z'),
        10_000,
        () => me.output(),
      );
      const foundAfter = me.firstSeenAt('robot-z')! - me.times.startCalledAt!;
      t.diagnostic(
        `our browser found the Avahi service ${foundAfter.toFixed(0)} ms after start() was called`,
      );
      const expected: PeerRecord = {
        siteId: SITE,
        nodeId: 'robot-z',
        agentVersion: '9.9.9',
        role: 'leader',
        term: 7,
        port: 7409,
        serverCapable: false,
        addresses: ['10.77.0.11'],
        source: 'mdns',
        lastSeenMs: z.lastSeenMs,
      };
      assert.deepEqual(z, expected);
      // The other site's service is on the same LAN, resolved and counted, never reported.
      await waitFor(
        'the other site to be counted',
        async () => ((await me.stats()).ignoredOtherSite > 0 ? true : undefined),
        10_000,
      );
      assert.deepEqual(
        me.peers().map((p) => p.nodeId),
        ['robot-z'],
      );

      const killedAt = performance.timeOrigin + performance.now();
      await lab!.kill(pub); // avahi-publish leaves the bus; avahi withdraws the service (goodbye)
      await waitFor(
        'robot-z to disappear',
        () => (me.peers().some((p) => p.nodeId === 'robot-z') ? undefined : true),
        10_000,
      );
      const droppedAfter = me.goneAt('robot-z', killedAt)! - killedAt;
      t.diagnostic(
        `our browser dropped the Avahi service ${droppedAfter.toFixed(0)} ms after SIGTERM to avahi-publish`,
      );
      const stats = await me.stats();
      assert.equal(stats.malformed, 0);
      assert.equal(stats.internalErrors, 0);
      assert.ok(stats.goodbyesReceived > 0, 'the removal came from a goodbye, not a TTL');
      await me.close();
      await me.kill();
    } finally {
      await lab!.kill(pub);
      await lab!.kill(other);
    }
  });

  test('when Avahi already owns our instance name, we rename (-2) and never say goodbye for its name', async () => {
    ready();
    const pub = lab!.spawn(
      avahiNode,
      'avahi-publish',
      ['-s', 'depot-7-robot-c', '_edgectl._udp', '7999', 'owner=avahi'],
      { env },
    );
    try {
      await waitFor(
        'avahi-publish to establish',
        () => (pub.output().includes('Established') ? true : undefined),
        10_000,
        () => pub.output(),
      );
      const me = new RemoteDiscovery(lab!, lab!.nodes[2]!, ad('robot-c'));
      agents.push(me);
      await me.start();
      const names = await me.names();
      assert.equal(names.instance, 'depot-7-robot-c-2._edgectl._udp.local');
      assert.equal(names.phase, 'announced');
      const entries = await waitFor(
        'Avahi to list both services',
        async () => {
          const list = await browse();
          return list.some((e) => e.name === 'depot-7-robot-c') &&
            list.some((e) => e.name === 'depot-7-robot-c-2')
            ? list
            : undefined;
        },
        15_000,
      );
      assert.equal(entries.find((e) => e.name === 'depot-7-robot-c')?.port, 7999, 'Avahi keeps its service');
      assert.equal(entries.find((e) => e.name === 'depot-7-robot-c-2')?.txt.get('node'), 'robot-c');
      const stats = await me.stats();
      assert.ok(stats.conflicts >= 1 && stats.renames >= 1, JSON.stringify(stats));
      await me.close();
      // Our goodbye is for depot-7-robot-c-2 only: Avahi's service stays listed.
      await waitFor(
        'our renamed service to go',
        async () => ((await browse()).some((e) => e.name === 'depot-7-robot-c-2') ? undefined : true),
        10_000,
      );
      assert.ok(
        (await browse()).some((e) => e.name === 'depot-7-robot-c' && e.port === 7999),
        'Avahi still owns its name',
      );
      assert.ok(!pub.output().includes('ollision'), `avahi-publish saw no collision:\n${pub.output()}`);
      await me.kill();
    } finally {
      await lab!.kill(pub);
    }
  });
});
