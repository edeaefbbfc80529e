/**
 * Files on the bootstrap machine that hold secrets: the site's kubeconfig (a cluster-admin
 * credential), the user's merged kubeconfig, and the sudo password file.
 *
 * writePrivateFile replaces a file atomically with a mode-0600 one, whatever mode the old file had.
 * Its temp file gets a random name in the target's own directory and is created exclusively
 * (O_EXCL) and without following a link (O_NOFOLLOW), so nothing placed there beforehand (a link to
 * another file, say) can redirect the write. The rename replaces the target path itself: a link
 * there is replaced by the file, not followed.
 *
 * readPrivateFile reads a secret the user hands us and refuses one that the group or others may
 * read, as OpenSSH refuses such a private key: the mode is checked on the opened file (fstat), so
 * the file checked is the file read.
 */
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  constants,
  fchmodSync,
  fstatSync,
  fsyncSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { UsageError } from '../../agent/errors.ts';

/** writePrivateFile writes `content` to `path` as a new mode-0600 file, atomically. */
export function writePrivateFile(path: string, content: string | Buffer): void {
  const tmp = join(dirname(path), `.${basename(path)}.edgectl-${randomBytes(8).toString('hex')}`);
  const fd = openSync(
    tmp,
    constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
    0o600,
  );
  try {
    try {
      // The umask can only narrow the mode openSync asked for; set it exactly.
      fchmodSync(fd, 0o600);
      const data = typeof content === 'string' ? Buffer.from(content, 'utf8') : content;
      for (let off = 0; off < data.length;) off += writeSync(fd, data, off);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

/**
 * readPrivateFile reads a secret file named by the command-line option `option`, refusing one the
 * group or others may read. Errors are UsageErrors whose hint names the fix.
 */
export function readPrivateFile(path: string, option: string): string {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY);
  } catch (e) {
    throw new UsageError('SECRET_FILE', `cannot read ${option} ${path}`, {
      hint: `check the path; the file must be readable by you and mode 0600`,
      cause: e,
      path: option,
    });
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile())
      throw new UsageError('SECRET_FILE', `${option} ${path} is not a regular file`, {
        hint: 'name the file that holds the secret',
        path: option,
      });
    if ((st.mode & 0o077) !== 0)
      throw new UsageError(
        'SECRET_FILE_MODE',
        `${option} ${path} may be read by others (mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}): refusing to use it`,
        { hint: `chmod 600 ${path}`, path: option },
      );
    return readFileSync(fd, 'utf8');
  } finally {
    closeSync(fd);
  }
}
