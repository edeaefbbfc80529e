/**
 * EtcdSiteModel: the etcd processes of a site's robot models (robot-model.ts), enough to run the
 * replication plans (replica-plans.ts) end to end in tests: the units' environment files decide
 * what each etcd is, the leader's datastore lists, adds and removes members, a learner joins once
 * the leader has added it and then receives every write while both ends are connected, and
 * etcdctl's snapshot save / restore and the revision-bump tool act on the data files.
 *
 * A data dir is one file, `<dir>/member/snap/db`, holding the revision and the writes as JSON,
 * written through on every change (etcd's WAL makes every applied entry durable). It models what
 * the plans rely on, not etcd's raft: replication here is instant while connected, and stops when
 * a robot's link is cut or it is powered off.
 */
import { sha256Hex } from '../../sha256.ts';
import type { RunResult } from '../../exec/runner.ts';
import { DATASTORE_ENV, DATASTORE_UNIT, REPLICA_ENV, REPLICA_UNIT } from '../paths.ts';
import { etcdDb } from '../replica-plans.ts';

/** What a data dir holds. */
export interface EtcdData {
  readonly rev: number;
  readonly writes: readonly string[];
}

interface Member {
  readonly id: bigint;
  name: string;
  readonly peerUrl: string;
  readonly learner: boolean;
}

interface EtcdProcess {
  readonly node: string;
  readonly role: 'datastore' | 'replica';
  readonly env: Readonly<Record<string, string>>;
  data: EtcdData;
  /** The datastore's members. */
  members: Member[];
  /** A replica: joined its leader's cluster. */
  joined: boolean;
}

/** The file side of a robot model, which the etcd model reads and writes. */
export interface EtcdHost {
  readonly target: string;
  fileContent(path: string): string | undefined;
  putFile(path: string, content: string): void;
  hasPath(path: string): boolean;
}

const ok = (stdout = ''): RunResult => ({ code: 0, stdout, stderr: '' });
const fail = (stderr: string, code = 1): RunResult => ({ code, stdout: '', stderr });

export class EtcdSiteModel {
  private readonly procs = new Map<string, EtcdProcess>();
  private readonly hosts = new Map<string, EtcdHost>();
  private readonly cut = new Set<string>();

  register(host: EtcdHost): void {
    this.hosts.set(host.target, host);
  }

  /** The unit `unit` of `host` started: read its environment file and run it. */
  start(host: EtcdHost, unit: string): RunResult {
    this.register(host);
    const role = unit === DATASTORE_UNIT ? 'datastore' : unit === REPLICA_UNIT ? 'replica' : null;
    if (!role) return fail(`${unit}: not an etcd unit`);
    const env = parseEnv(host.fileContent(role === 'datastore' ? DATASTORE_ENV : REPLICA_ENV) ?? '');
    const dir = env['ETCD_DATA_DIR'];
    if (!dir) return fail('etcd: --data-dir is required');
    const db = host.fileContent(etcdDb(dir));
    const self: Member = {
      id: memberId(env['ETCD_NAME'] ?? '', env['ETCD_LISTEN_PEER_URLS'] ?? ''),
      name: env['ETCD_NAME'] ?? '',
      peerUrl: env['ETCD_LISTEN_PEER_URLS'] ?? '',
      learner: false,
    };
    const p: EtcdProcess = {
      node: host.target,
      role,
      env,
      data: db ? (JSON.parse(db) as EtcdData) : { rev: 1, writes: [] },
      members: role === 'datastore' ? [self] : [],
      joined: false,
    };
    this.procs.set(host.target, p);
    // etcd opens its backend before it asks the cluster whether it is a member: a learner that
    // never joins still leaves an (empty) data file behind.
    this.persist(p);
    this.replicate();
    return ok();
  }

  /** SIGTERM: the process ends; its data is already on disk. */
  stop(host: EtcdHost, unit: string): void {
    const p = this.procs.get(host.target);
    if (p && (unit === DATASTORE_UNIT ? 'datastore' : 'replica') === p.role) this.procs.delete(host.target);
  }

  /** Power loss: the robot's etcd is gone at once (its data dir is as the last write left it). */
  powerOff(node: string): void {
    this.procs.delete(node);
    this.cut.add(node);
  }

  /** The robot's link is down (true) or back (false); a learner catches up when it returns. */
  setCut(node: string, isCut: boolean): void {
    if (isCut) this.cut.add(node);
    else this.cut.delete(node);
    this.replicate();
  }

  /** A client writes `key` through the API server of `node` (its datastore); returns the revision. */
  write(node: string, key: string): number {
    const p = this.procs.get(node);
    if (p?.role !== 'datastore') throw new Error(`${node} serves no datastore`);
    p.data = { rev: p.data.rev + 1, writes: [...p.data.writes, key] };
    this.persist(p);
    this.replicate();
    return p.data.rev;
  }

  /** What the etcd of `node` holds now (datastore or replica), or null. */
  dataOf(node: string): EtcdData | null {
    return this.procs.get(node)?.data ?? null;
  }

  role(node: string): 'datastore' | 'replica' | null {
    return this.procs.get(node)?.role ?? null;
  }

  /** Learners join once added, then receive every write while both ends are connected. */
  replicate(): void {
    for (const p of this.procs.values()) {
      if (p.role !== 'replica' || this.cut.has(p.node)) continue;
      const leader = this.leaderOf(p);
      if (!leader || this.cut.has(leader.node)) continue;
      const me = leader.members.find((m) => m.learner && m.peerUrl === p.env['ETCD_LISTEN_PEER_URLS']);
      // A learner not (or no longer) a member exits at once; systemd retries it (Restart=on-failure).
      if (!me) continue;
      if (!p.joined) {
        // Only an empty data dir can join an existing cluster.
        if (p.data.writes.length > 0 || p.data.rev > 1) continue;
        me.name = p.env['ETCD_NAME'] ?? '';
        p.joined = true;
      }
      p.data = leader.data;
      this.persist(p);
    }
  }

  private leaderOf(p: EtcdProcess): EtcdProcess | null {
    const peers = (p.env['ETCD_INITIAL_CLUSTER'] ?? '')
      .split(',')
      .map((e) => e.slice(e.indexOf('=') + 1))
      .filter((u) => u !== p.env['ETCD_LISTEN_PEER_URLS']);
    for (const q of this.procs.values())
      if (q.role === 'datastore' && peers.includes(q.env['ETCD_LISTEN_PEER_URLS'] ?? '')) return q;
    return null;
  }

  private persist(p: EtcdProcess): void {
    this.hosts.get(p.node)?.putFile(etcdDb(p.env['ETCD_DATA_DIR'] ?? ''), JSON.stringify(p.data));
  }

  /** etcdctl on `host`, against its own etcd on loopback (or offline: snapshot restore). */
  etcdctl(host: EtcdHost, argv: readonly string[]): RunResult {
    this.register(host);
    const args = argv.filter((a) => !/^--(endpoints|cacert|cert|key)=/.test(a));
    const [group, sub, ...rest] = args;
    const p = this.procs.get(host.target);
    if (group === 'snapshot' && sub === 'restore') return this.restore(host, rest);
    if (!p || (p.role === 'replica' && !p.joined)) return fail('context deadline exceeded');
    if (group === 'endpoint' && sub === 'status')
      return ok(
        JSON.stringify([
          {
            Endpoint: 'https://127.0.0.1:2379',
            Status: { header: { revision: p.data.rev }, isLearner: p.role === 'replica' },
          },
        ]),
      );
    if (group === 'snapshot' && sub === 'save') {
      if (p.role !== 'datastore') return fail('rpc not supported for learner');
      host.putFile(rest[0] ?? '', JSON.stringify(p.data));
      return ok();
    }
    if (group !== 'member' || p.role !== 'datastore') return fail(`etcdctl ${args.join(' ')}: not modelled`);
    if (sub === 'list')
      return ok(
        JSON.stringify({
          members: p.members.map((m) => ({
            ID: m.id.toString(16),
            name: m.name,
            peerURLs: [m.peerUrl],
            isLearner: m.learner,
          })),
        }),
      );
    if (sub === 'add') {
      const peerUrl = (rest.find((a) => a.startsWith('--peer-urls=')) ?? '').slice('--peer-urls='.length);
      if (!rest.includes('--learner')) return fail('the model adds learners only');
      if (p.members.some((m) => m.learner)) return fail('etcdserver: too many learner members in cluster');
      if (p.members.some((m) => m.peerUrl === peerUrl)) return fail('etcdserver: Peer URLs already exists');
      // Its name is empty until the learner has started, as etcd reports it.
      p.members.push({ id: memberId(rest[0] ?? '', peerUrl), name: '', peerUrl, learner: true });
      this.replicate();
      return ok();
    }
    if (sub === 'remove') {
      const id = BigInt(`0x${rest[0] ?? ''}`);
      if (!p.members.some((m) => m.id === id)) return fail('etcdserver: member not found');
      p.members = p.members.filter((m) => m.id !== id);
      for (const q of this.procs.values())
        if (
          q.role === 'replica' &&
          this.leaderOf(q) === p &&
          !p.members.some((m) => m.peerUrl === q.env['ETCD_LISTEN_PEER_URLS'])
        )
          q.joined = false;
      return ok();
    }
    return fail(`etcdctl member ${sub}: not modelled`);
  }

  private restore(host: EtcdHost, rest: readonly string[]): RunResult {
    const from = rest[0] ?? '';
    const dir = (rest.find((a) => a.startsWith('--data-dir=')) ?? '').slice('--data-dir='.length);
    const content = host.fileContent(from);
    if (content === undefined) return fail(`open ${from}: no such file or directory`);
    try {
      JSON.parse(content);
    } catch {
      return fail(`Error: ${from}: invalid database (a corrupt bbolt file)`);
    }
    if (host.hasPath(dir)) return fail(`data-dir "${dir}" exists`);
    host.putFile(etcdDb(dir), content);
    return ok();
  }

  /** edgectl-etcd-revision-bump --data-dir=D --by=N on a stopped data dir. */
  bump(host: EtcdHost, argv: readonly string[]): RunResult {
    const dir = (argv.find((a) => a.startsWith('--data-dir=')) ?? '').slice('--data-dir='.length);
    const by = Number((argv.find((a) => a.startsWith('--by=')) ?? '').slice('--by='.length));
    for (const p of this.procs.values())
      if (p.node === host.target && p.env['ETCD_DATA_DIR'] === dir) return fail('the data dir is in use');
    const db = host.fileContent(etcdDb(dir));
    if (db === undefined) return fail(`${dir}: no etcd data`);
    const d = JSON.parse(db) as EtcdData;
    host.putFile(etcdDb(dir), JSON.stringify({ ...d, rev: d.rev + by }));
    return ok();
  }
}

function parseEnv(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line);
    if (m) env[m[1] ?? ''] = m[2] ?? '';
  }
  return env;
}

function memberId(name: string, peerUrl: string): bigint {
  return BigInt(`0x${sha256Hex(`${name} ${peerUrl}`).slice(0, 16)}`);
}
