/**
 * Writing the files and directories an operator names on the command line (--out, --site-dir,
 * --report). A path that cannot be written is the operator's to fix, so every file-system failure
 * becomes a UsageError naming the option, the path and what to do, never a raw Node error.
 */
import { mkdirSync, statSync, writeFileSync, type WriteFileOptions } from 'node:fs';
import { dirname } from 'node:path';
import { UsageError } from '../../agent/errors.ts';

/** pathError explains why `path` (given as `option`) could not be written, from the errno. */
export function pathError(e: unknown, option: string, path: string): UsageError {
  const code = (e as NodeJS.ErrnoException).code ?? '';
  const at = `${option} ${path}`;
  const [message, hint] =
    code === 'ENOENT'
      ? [`${at}: the directory ${dirname(path)} does not exist`, `create it first, or pick another ${option}`]
      : code === 'ENOTDIR'
        ? [`${at}: a part of the path is not a directory`, `pick a ${option} under a directory`]
        : code === 'EISDIR'
          ? [`${at} is a directory`, `name a file for ${option}, like ${path.replace(/\/+$/, '')}/site.yaml`]
          : code === 'EACCES' || code === 'EPERM' || code === 'EROFS'
            ? [
                `${at}: cannot write there (${code})`,
                `pick a ${option} this user may write, or fix its permissions`,
              ]
            : [`${at}: cannot write (${code || (e as Error).message})`, `pick another ${option}`];
  return new UsageError('CANNOT_WRITE', message, { hint, cause: e });
}

/** writeOutFile writes an operator-named file, with every failure as a UsageError. */
export function writeOutFile(option: string, path: string, data: string, opts: WriteFileOptions = {}): void {
  if (path === '')
    throw new UsageError('CANNOT_WRITE', `${option} is empty`, { hint: `name a file for ${option}` });
  try {
    writeFileSync(path, data, opts);
  } catch (e) {
    throw pathError(e, option, path);
  }
}

/**
 * checkOutDir refuses an operator-named directory that exists as something else, or lies under a
 * file, without creating anything (a dry run checks the same way as a real run).
 */
export function checkOutDir(option: string, path: string): void {
  if (path === '')
    throw new UsageError('CANNOT_WRITE', `${option} is empty`, { hint: `name a directory for ${option}` });
  let at = path;
  for (;;) {
    try {
      if (!statSync(at).isDirectory())
        throw new UsageError(
          'NOT_A_DIRECTORY',
          at === path
            ? `${option} ${path} is not a directory`
            : `${option} ${path}: ${at} is not a directory`,
          { hint: `pass ${option} a directory (it is created if missing)` },
        );
      return;
    } catch (e) {
      if (e instanceof UsageError) throw e;
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOTDIR') {
        at = dirname(at);
        continue;
      }
      if (code !== 'ENOENT') throw pathError(e, option, path);
      const up = dirname(at);
      if (up === at) return;
      at = up;
    }
  }
}

/** makeOutDir checks and creates an operator-named directory. */
export function makeOutDir(option: string, path: string, mode?: number): void {
  checkOutDir(option, path);
  try {
    mkdirSync(path, { recursive: true, ...(mode === undefined ? {} : { mode }) });
  } catch (e) {
    throw pathError(e, option, path);
  }
}
