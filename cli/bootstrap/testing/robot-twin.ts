/**
 * A robot for executor tests: the in-memory CommandRunner twin with the directories a Debian robot
 * has, a systemd that keeps unit state, and preflight checks that pass unless told otherwise.
 */
import { EdgeError } from '../../../agent/errors.ts';
import { InMemoryCommandRunner } from '../../../agent/exec/in-memory.ts';
import { parseRobotKeyFile } from '../../../agent/site-key.ts';
import { membersDigest } from '../../../agent/site/members.ts';
import { MEMBERS_SCRIPT } from '../members.ts';
import { KEYS_LOADED_SCRIPT, PATHS } from '../plan.ts';

/**
 * The running site's leader as the twins' agents answer /site/members (cli/bootstrap/members.ts):
 * one object shared by every twin of a site. The tag is not checked here: agent tests do that.
 */
export interface TwinSiteMembers {
  leader: string | null;
  committed: { version: number; digest: string; workers: string[] } | null;
  /** Every membership committed, in order. */
  readonly history: string[][];
}

export function twinSiteMembers(leader: string): TwinSiteMembers {
  return { leader, committed: null, history: [] };
}

export interface RobotTwinOptions {
  /** The SSH user (non-root users go through sudo). */
  readonly user?: string;
  /** Preflight scripts matching this fail with exit 1 and this stderr. */
  readonly failPreflight?: { readonly match: RegExp; readonly stderr: string };
  /** The site's membership its agent answers for; without it the agent does not answer. */
  readonly members?: TwinSiteMembers;
}

/** Where bootstrap installs a robot's key file (the default install root). */
const KEY_FILE = PATHS.siteKeys;

export class RobotTwin extends InMemoryCommandRunner {
  readonly enabled = new Set<string>();
  readonly active = new Set<string>();
  /** systemctl commands that changed something, in order (`restart edgectl-agent.service`). */
  readonly systemctl: string[] = [];
  /** Throw (as a dropped connection) at the next systemctl call with this verb. */
  dropAt: string | null = null;
  /** The key file as the agent last loaded it: at its start, and on SIGHUP (systemctl kill). */
  loadedKeys: string | null = null;
  /** Make the agent ignore SIGHUP (an agent that cannot load its new key file). */
  ignoreReload = false;

  constructor(name: string, opts: RobotTwinOptions = {}) {
    super(name, {
      user: opts.user ?? 'edgectl',
      dirs: ['/etc/systemd/system', '/usr/local/bin', '/var/lib'],
    });
    this.handle('sh', (argv, ctx) => {
      if (!ctx.sudo && this.user !== 'root')
        return { code: 1, stdout: '', stderr: 'preflight runs with sudo\n' };
      if (argv[3] === 'edgectl-dirs-check') {
        // plan.ts DIRS_CHECK: every directory exists with mode:owner:group.
        const [want, ...dirs] = argv.slice(4);
        const all = dirs.every((d) => {
          const node = this.dirs.get(d);
          return node !== undefined && `${node.mode.toString(8)}:${node.owner}` === want;
        });
        return { code: all ? 0 : 1, stdout: '', stderr: '' };
      }
      if (argv[3] === 'edgectl-prune-chunks') {
        // plan.ts PRUNE_CHUNKS: the edgectl-agent-*.mjs in a directory, but those named after it.
        const [mode, dir, ...keep] = argv.slice(4);
        const stale = [...this.files.keys()].filter((f) => {
          const name = f.slice(f.lastIndexOf('/') + 1);
          return f === `${dir}/${name}` && /^edgectl-agent-.*\.mjs$/.test(name) && !keep.includes(name);
        });
        if (mode !== 'remove') return { code: stale.length ? 1 : 0, stdout: '', stderr: '' };
        for (const f of stale) this.files.delete(f);
        return { code: 0, stdout: '', stderr: '' };
      }
      const f = opts.failPreflight;
      if (argv[1] === '-c' && f && f.match.test(argv[2] ?? ''))
        return { code: 1, stdout: '', stderr: f.stderr };
      return { code: 0, stdout: '', stderr: '' };
    });
    // The agent's /status, as the keys check (plan.ts KEYS_LOADED_SCRIPT) reads it.
    this.handle(PATHS.node, (argv) => {
      if (argv[1] === '-e' && argv[2] === MEMBERS_SCRIPT) return this.#members(argv[4], opts.members);
      if (argv[1] !== '-e' || argv[2] !== KEYS_LOADED_SCRIPT)
        return { code: 1, stdout: '', stderr: 'the twin runs only the keys check\n' };
      const [, , , , send, accepted, refused] = argv;
      const k = this.loadedKeys === null ? null : parseRobotKeyFile(this.loadedKeys, name);
      const ok =
        k !== null &&
        String(k.send) === send &&
        k.generations
          .map((g) => g.id)
          .sort((a, b) => a - b)
          .join(',') === accepted &&
        [...k.refused].sort().join(',') === refused;
      return ok
        ? { code: 0, stdout: '', stderr: '' }
        : { code: 1, stdout: '', stderr: 'the agent did not load its new keys\n' };
    });
    const load = () => {
      this.loadedKeys = this.files.get(KEY_FILE)?.content.toString() ?? null;
    };
    this.handle('systemctl', (argv, ctx) => {
      const [, verb = '', ...rest] = argv;
      const unit = rest.filter((a) => !a.startsWith('-'))[0] ?? '';
      if (this.dropAt === verb) {
        this.dropAt = null;
        throw new EdgeError('SSH_DISCONNECTED', `${name}: the connection dropped`);
      }
      const done = (changed = true) => {
        if (changed) this.systemctl.push(argv.slice(1).join(' '));
        return { code: 0, stdout: '', stderr: '' };
      };
      const no = { code: 1, stdout: '', stderr: '' };
      if (!ctx.sudo && this.user !== 'root' && !verb.startsWith('is-'))
        return { code: 1, stdout: '', stderr: 'Access denied\n' };
      switch (verb) {
        case 'is-enabled':
          return this.enabled.has(unit) ? done(false) : no;
        case 'is-active':
          return this.active.has(unit) ? done(false) : no;
        case 'daemon-reload':
          return done();
        case 'enable':
          this.enabled.add(unit);
          if (rest.includes('--now') && !this.active.has(unit)) {
            this.active.add(unit);
            load();
          }
          return done();
        case 'disable':
          this.enabled.delete(unit);
          if (rest.includes('--now')) this.active.delete(unit);
          return done();
        case 'restart':
        case 'start':
          this.active.add(unit);
          load();
          return done();
        case 'stop':
          this.active.delete(unit);
          return done();
        case 'kill': // a signal to a running unit (SIGHUP: reload the keys)
          if (!this.active.has(unit))
            return { code: 1, stdout: '', stderr: `Failed to kill unit ${unit}: No main process to kill\n` };
          if (!this.ignoreReload) load();
          return done();
        default:
          return { code: 1, stdout: '', stderr: `Unknown command verb ${verb}.\n` };
      }
    });
  }

  #members(body: string | undefined, site: TwinSiteMembers | undefined) {
    const reply = (status: number, doc: unknown) => ({
      code: 0,
      stdout: JSON.stringify({ status, body: JSON.stringify(doc) }),
      stderr: '',
    });
    if (!site || !this.active.has('edgectl-agent.service'))
      return { code: 1, stdout: '', stderr: 'TypeError: fetch failed\n' };
    if (body === undefined)
      return reply(200, { node: this.target, leader: site.leader, committed: site.committed });
    if (site.leader !== this.target) return reply(421, { kind: 'notLeader', leader: site.leader });
    const req = JSON.parse(body) as { baseVersion: number; workers: string[] };
    const base = site.committed?.version ?? 0;
    if (req.baseVersion !== base) return reply(409, { error: { code: 'EDGE_MEMBERS_CONFLICT' } });
    const digest = membersDigest(req.workers);
    site.committed = { version: base + 1, digest, workers: req.workers };
    site.history.push(req.workers);
    return reply(200, { kind: 'committed', version: base + 1, digest });
  }

  /** snapshot is the robot's observable state: files (content digest, mode, owner), units. */
  snapshot(): unknown {
    return {
      files: [...this.files.entries()]
        .sort()
        .map(([p, f]) => [p, f.content.toString('base64'), f.mode, f.owner]),
      dirs: [...this.dirs.entries()].sort().map(([p, d]) => [p, d.mode, d.owner]),
      enabled: [...this.enabled].sort(),
      active: [...this.active].sort(),
    };
  }
}
