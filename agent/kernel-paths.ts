/**
 * kernelFsProblem: why a path edgectl is asked to write under cannot hold files, or null. /proc and
 * /sys are made up by the kernel as they are read: a state directory or an --out there never holds
 * what is written (writes fail or loop), so it is refused up front with the fix. Pure.
 */
import { isAbsolute, resolve } from 'node:path';

const KERNEL_FILESYSTEMS = ['/proc', '/sys'];

export function kernelFsProblem(path: string): string | null {
  const full = resolve(path);
  const fs = KERNEL_FILESYSTEMS.find((root) => full === root || full.startsWith(`${root}/`));
  return fs
    ? `${path} is under ${fs}, which the kernel makes up: it cannot hold files; pick a real directory`
    : null;
}

/** stateDirProblem: a state directory must be absolute (the agent's working directory is not fixed) and real. */
export function stateDirProblem(path: string): string | null {
  if (!isAbsolute(path))
    return `${path} is relative, and the agent's working directory is not fixed: write an absolute path, e.g. /var/lib/edgectl`;
  return kernelFsProblem(path);
}
