/**
 * SshCommandRunner: a CommandRunner (agent/exec/runner.ts) for a robot over SSH (ssh2).
 *
 * - Host keys are verified before any credential is sent (known-hosts.ts decideHostKey): a key
 *   pinned in the inventory, or the site's known_hosts file, into which a new robot's key is
 *   recorded only when the operator passed --accept-new-host-keys. A changed key refuses the robot
 *   with EDGE_HOST_KEY_MISMATCH, naming both fingerprints and the fix.
 * - A private key file or the ssh-agent. sudo as in posix.ts: the password goes to sudo's stdin
 *   when sudo asks, never into argv, environment or logs.
 * - A connect timeout, SSH keepalives (a robot that drives out of Wi-Fi is noticed within
 *   interval × count), and an optional per-command timeout.
 * - argv is quoted for the remote login shell (POSIX sh assumed).
 */
import { readFileSync } from 'node:fs';
import type { Readable, Writable } from 'node:stream';
import ssh2 from 'ssh2';
import type { Client, ClientChannel, ConnectConfig, ServerHostKeyAlgorithm } from 'ssh2';
import { EdgeError } from '../../agent/errors.ts';
import {
  decideHostKey,
  fingerprint,
  hostKeyAlgorithms,
  keyType,
  matchesHost,
  type HostKeyDecision,
  type KnownHostsStore,
} from './known-hosts.ts';
import { PosixRunner, shellQuote, type Proc, type SudoMode } from '../../agent/exec/posix.ts';

export interface SshTarget {
  /** The robot's name: messages and CommandRunner.target. */
  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly user: string;
  /** A private key file (unencrypted; use the agent for a key with a passphrase). */
  readonly keyFile?: string | undefined;
  /** The ssh-agent socket (SSH_AUTH_SOCK) when no key file is given. */
  readonly agentSocket?: string | undefined;
  /** A pinned host key fingerprint (SHA256:...). */
  readonly hostKey?: string | undefined;
  /** Where the pin lives, for the fix in error messages (robots[2].ssh.hostKey in site.yaml). */
  readonly hostKeyField?: string | undefined;
}

export interface SshOptions {
  readonly knownHosts: KnownHostsStore;
  /** Record the key of a robot known_hosts has never seen (trust on first use). */
  readonly acceptNewHostKeys: boolean;
  readonly sudo: SudoMode;
  readonly sudoPassword?: string | undefined;
  /** TCP connect + SSH handshake + authentication. Default 15 s. */
  readonly connectTimeoutMs?: number;
  /** SSH keepalive interval; the connection is dropped after keepaliveCountMax unanswered. Default 5 s × 3. */
  readonly keepaliveIntervalMs?: number;
  readonly keepaliveCountMax?: number;
  /** Default per-command timeout. */
  readonly commandTimeoutMs?: number;
  /** Debug log of the command lines sent (never stdin, never the sudo password). */
  readonly log?: (line: string) => void;
}

export class SshCommandRunner extends PosixRunner {
  /** The fingerprint of the host key this connection verified. */
  readonly hostKeyFingerprint: string;
  private constructor(
    target: SshTarget,
    client: Client,
    state: { closed: boolean },
    fp: string,
    opts: SshOptions,
  ) {
    super(
      target.name,
      (argv) => execChannel(client, state, argv),
      {
        sudo: opts.sudo,
        sudoPassword: opts.sudoPassword,
        log: opts.log,
        timeoutMs: opts.commandTimeoutMs,
        remoteTimeout: true,
      },
      async () => {
        if (state.closed) return;
        await new Promise<void>((resolve) => {
          client.once('close', () => resolve());
          client.end();
        });
      },
    );
    this.hostKeyFingerprint = fp;
  }

  /** connect verifies the host key, authenticates, and returns a runner for the robot. */
  static async connect(target: SshTarget, opts: SshOptions): Promise<SshCommandRunner> {
    const known = await opts.knownHosts.entries();
    const mine = known.filter((e) => matchesHost(e, target.host, target.port) && e.marker === undefined);
    let decision: HostKeyDecision | null = null;
    let offered: Buffer | null = null;
    const config: ConnectConfig = {
      host: target.host,
      port: target.port,
      username: target.user,
      readyTimeout: opts.connectTimeoutMs ?? 15_000,
      keepaliveInterval: opts.keepaliveIntervalMs ?? 5_000,
      keepaliveCountMax: opts.keepaliveCountMax ?? 3,
      hostVerifier: (key: Buffer) => {
        offered = Buffer.from(key);
        decision = decideHostKey({
          robot: target.name,
          host: target.host,
          port: target.port,
          offered,
          pinned: target.hostKey,
          pinnedAt: target.hostKeyField,
          known,
          knownHostsPath: opts.knownHosts.path,
          acceptNew: opts.acceptNewHostKeys,
        });
        return decision.accept;
      },
    };
    // Ask for the key types we already know, as OpenSSH does, so a robot with several host keys
    // offers the one on record instead of looking changed.
    if (!target.hostKey && mine.length > 0)
      config.algorithms = {
        serverHostKey: hostKeyAlgorithms(mine.map((e) => e.type)) as ServerHostKeyAlgorithm[],
      };
    if (target.keyFile) {
      try {
        config.privateKey = readFileSync(target.keyFile);
      } catch (e) {
        throw new EdgeError('SSH_KEY_UNREADABLE', `${target.name}: cannot read ${target.keyFile}`, {
          hint: 'check ssh.keyFile in the inventory',
          cause: e,
        });
      }
    } else if (target.agentSocket) config.agent = target.agentSocket;
    else
      throw new EdgeError('SSH_NO_CREDENTIALS', `${target.name}: neither a key file nor an ssh-agent`, {
        hint: 'set ssh.keyFile, or ssh.agent: true with SSH_AUTH_SOCK set',
      });

    const client = new ssh2.Client();
    const state = { closed: false };
    const where = `${target.user}@${target.host}:${target.port}`;
    await new Promise<void>((resolve, reject) => {
      client.once('ready', () => resolve());
      client.once('error', (e: Error & { level?: string; code?: string }) => {
        const d = decision as HostKeyDecision | null;
        if (d && !d.accept) return reject(d.error);
        reject(connectError(target, where, e));
      });
      try {
        client.connect(config);
      } catch (e) {
        reject(
          new EdgeError(
            'SSH_KEY_UNUSABLE',
            `${target.name}: ${target.keyFile} cannot be used: ${(e as Error).message}`,
            {
              hint: 'for a key with a passphrase, load it into ssh-agent (ssh-add) and set ssh.agent: true',
              cause: e,
            },
          ),
        );
      }
    });
    // A connection error after this point (robot rebooted, out of range) must not crash the
    // process (node-ssh#421); running commands see their channel close and reject.
    client.on('error', () => {});
    client.on('close', () => {
      state.closed = true;
    });
    const d = decision as HostKeyDecision | null;
    const key = offered as Buffer | null;
    if (!d || !key) throw new EdgeError('INTERNAL', `${target.name}: connected without a host key check`);
    if (d.accept && d.record) await opts.knownHosts.add(target.host, target.port, key);
    opts.log?.(`${target.name}: connected to ${where}, host key ${fingerprint(key)} (${keyType(key)})`);
    return new SshCommandRunner(target, client, state, fingerprint(key), opts);
  }
}

function connectError(
  target: SshTarget,
  where: string,
  e: Error & { level?: string; code?: string },
): EdgeError {
  if (e.level === 'client-authentication')
    return new EdgeError('SSH_AUTH_FAILED', `${target.name}: ${where} refused the credentials`, {
      hint: `install the public key for ${target.user} (ssh-copy-id -i <key>.pub ${target.user}@${target.host}), or check ssh.user and ssh.keyFile`,
      cause: e,
    });
  if (
    e.level === 'client-timeout' ||
    ['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN'].includes(
      e.code ?? '',
    )
  )
    return new EdgeError('SSH_UNREACHABLE', `${target.name}: cannot reach ${where}: ${e.code ?? e.message}`, {
      hint: `is ${target.name} on and in range, and sshd running? Check address and ssh.port in the inventory`,
      cause: e,
    });
  return new EdgeError('SSH_CONNECT_FAILED', `${target.name}: SSH to ${where} failed: ${e.message}`, {
    cause: e,
  });
}

function execChannel(client: Client, state: { closed: boolean }, argv: readonly string[]): Promise<Proc> {
  if (state.closed)
    return Promise.reject(
      new EdgeError('SSH_DISCONNECTED', 'the SSH connection is closed', {
        hint: 'is the robot up and in Wi-Fi range? Run again; every step is idempotent',
      }),
    );
  return new Promise<Proc>((resolve, reject) => {
    client.exec(shellQuote(argv), (err: Error | undefined, ch: ClientChannel) => {
      if (err)
        return reject(
          new EdgeError('SSH_DISCONNECTED', `cannot open an SSH channel: ${err.message}`, { cause: err }),
        );
      let exit: { code: number | null; signal: string | null } | null = null;
      ch.on('exit', (code: number | null, signal?: string) => {
        exit = { code: typeof code === 'number' ? code : null, signal: signal ?? null };
      });
      const exited = new Promise<{ code: number | null; signal: string | null; lost?: boolean }>((res) => {
        ch.on('close', () => res(exit ?? { code: null, signal: null, lost: true }));
      });
      resolve({
        stdin: ch as unknown as Writable,
        stdout: ch as unknown as Readable,
        stderr: ch.stderr as unknown as Readable,
        exited,
        kill: () => {
          try {
            ch.signal('KILL');
          } catch {
            // not every server honours signals; closing the channel hangs the command up
          }
          ch.close();
        },
      });
    });
  });
}
