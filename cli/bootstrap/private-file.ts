/**
 * Files on the bootstrap machine that hold secrets the user hands us (the sudo password file).
 *
 * readPrivateFile refuses one that the group or others may read, as OpenSSH refuses such a private
 * key: the mode is checked on the opened file (fstat), so the file checked is the file read.
 * (The sec-hardening branch has the same helper, with writePrivateFile beside it: keep one.)
 */
import { closeSync, constants, fstatSync, openSync, readFileSync } from 'node:fs';
import { UsageError } from '../../agent/errors.ts';

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
