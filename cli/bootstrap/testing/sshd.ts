/**
 * A real OpenSSH sshd for tests, inside a network namespace (lab/netns.ts), with generated host and
 * client keys, and real non-root users with sudo. The SSH runner's tests use it; the lab's
 * bootstrap test can start one per robot namespace the same way. Needs root. Everything it makes
 * is removed by the returned stop()/removeUsers(): the sshd process, its directory, the users and
 * their sudoers file.
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
  closeSync,
} from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { EdgeError } from '../../../agent/errors.ts';
import { killGroup, spawnIn } from '../../../lab/netns.ts';
import { fingerprint } from '../known-hosts.ts';

export interface TestUser {
  readonly name: string;
  /** password: sudo asks for `password`; nopasswd: a NOPASSWD rule. */
  readonly sudo: 'password' | 'nopasswd';
  readonly password: string;
}

const SUDOERS_FILE = '/etc/sudoers.d/ebs-edgectl-test';

/**
 * createTestUsers makes (or reuses) the users, sets their passwords (sshd refuses key logins to a
 * locked account without PAM) and writes one sudoers file for them. removeTestUsers undoes it.
 */
export function createTestUsers(users: readonly TestUser[]): void {
  for (const u of users) {
    try {
      execFileSync('id', ['-u', u.name], { stdio: 'ignore' });
    } catch {
      execFileSync('useradd', ['--create-home', '--shell', '/bin/sh', u.name]);
    }
    execFileSync('chpasswd', [], { input: `${u.name}:${u.password}\n` });
  }
  const rules = users.map((u) =>
    u.sudo === 'password'
      ? `Defaults:${u.name} lecture=never\n${u.name} ALL=(ALL:ALL) ALL\n`
      : `${u.name} ALL=(ALL:ALL) NOPASSWD: ALL\n`,
  );
  writeFileSync(SUDOERS_FILE, rules.join(''), { mode: 0o440 });
  execFileSync('visudo', ['-c', '-f', SUDOERS_FILE], { stdio: 'ignore' });
}

export function removeTestUsers(users: readonly TestUser[]): void {
  rmSync(SUDOERS_FILE, { force: true });
  for (const u of users) {
    try {
      execFileSync('userdel', ['--remove', u.name], { stdio: 'ignore' });
    } catch {
      // already gone
    }
  }
}

export interface SshdFixture {
  readonly netns: string;
  readonly address: string;
  readonly port: number;
  /** The fixture's directory (keys, config, log). */
  readonly dir: string;
  /** The host key's fingerprint (SHA256:...), what an inventory pins. */
  readonly hostKeyFingerprint: string;
  /** The wire-format host public key. */
  readonly hostKey: Buffer;
  /** An unencrypted ed25519 private key every test user accepts. */
  readonly clientKeyFile: string;
  /** sshd's own log (LogLevel DEBUG1: it names each command it runs). */
  readonly logFile: string;
  stop(): Promise<void>;
}

function keygen(path: string, comment: string): void {
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', path]);
}

/** wirePublicKey reads an OpenSSH .pub file into the wire format ssh2 hands to hostVerifier. */
export function wirePublicKey(pubFile: string): Buffer {
  return Buffer.from(readFileSync(pubFile, 'utf8').trim().split(/\s+/)[1] ?? '', 'base64');
}

function readLog(logFile: string): string {
  try {
    return readFileSync(logFile, 'utf8');
  } catch {
    return '(no log)';
  }
}

async function waitForPort(host: string, port: number, child: ChildProcess, logFile: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null)
      throw new EdgeError('SSHD_FAILED', `sshd exited (${child.exitCode}): ${readLog(logFile)}`);
    const up = await new Promise<boolean>((resolve) => {
      const s = connect({ host, port });
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (up) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new EdgeError('SSHD_FAILED', `sshd did not listen on ${host}:${port}: ${readLog(logFile)}`);
}

/**
 * startSshd runs /usr/sbin/sshd in `netns`, listening on `address:port`, accepting the fixture's
 * client key for `users` (and root). The caller reaches it from the host over the lab bridge.
 */
export async function startSshd(opts: {
  netns: string;
  address: string;
  port?: number;
  users: readonly string[];
}): Promise<SshdFixture> {
  const port = opts.port ?? 22;
  // StrictModes checks every directory up to / for the authorized keys: /run is root's and 0755.
  const dir = mkdtempSync('/run/ebs-sshd-');
  execFileSync('chmod', ['0755', dir]);
  // The privilege separation directory a packaged sshd expects (its service unit makes it).
  if (!existsSync('/run/sshd')) mkdirSync('/run/sshd', { mode: 0o755 });
  keygen(join(dir, 'host_ed25519'), 'edgectl-test-host');
  keygen(join(dir, 'client_ed25519'), 'edgectl-test-client');
  const authDir = join(dir, 'authorized_keys');
  mkdirSync(authDir, { mode: 0o755 });
  const clientPub = readFileSync(join(dir, 'client_ed25519.pub'), 'utf8');
  for (const u of [...opts.users, 'root']) writeFileSync(join(authDir, u), clientPub, { mode: 0o644 });
  const logFile = join(dir, 'sshd.log');
  const config = join(dir, 'sshd_config');
  writeFileSync(
    config,
    [
      `ListenAddress ${opts.address}:${port}`,
      `HostKey ${join(dir, 'host_ed25519')}`,
      `PidFile ${join(dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${authDir}/%u`,
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'PermitRootLogin prohibit-password',
      `AllowUsers ${[...opts.users, 'root'].join(' ')}`,
      'LogLevel DEBUG1',
      'Subsystem sftp internal-sftp',
      '',
    ].join('\n'),
  );
  const logFd = openSync(join(dir, 'sshd.stdout'), 'a');
  const child = spawnIn(opts.netns, '/usr/sbin/sshd', ['-D', '-f', config, '-E', logFile], {
    logFile: logFd,
  });
  closeSync(logFd);
  const stop = async () => {
    killGroup(child, 'SIGTERM');
    await new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      const t = setTimeout(() => {
        killGroup(child, 'SIGKILL');
        resolve();
      }, 2000);
      child.once('exit', () => {
        clearTimeout(t);
        resolve();
      });
    });
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitForPort(opts.address, port, child, logFile);
  } catch (e) {
    await stop();
    throw e;
  }
  const hostKey = wirePublicKey(join(dir, 'host_ed25519.pub'));
  return {
    netns: opts.netns,
    address: opts.address,
    port,
    dir,
    hostKey,
    hostKeyFingerprint: fingerprint(hostKey),
    clientKeyFile: join(dir, 'client_ed25519'),
    logFile,
    stop,
  };
}
