/**
 * readK3sTemplates reads the static files of templates/k3s/ that plans install (I/O; the plans
 * themselves take the content as input and stay pure).
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The repository's templates/k3s/ directory. */
export const K3S_TEMPLATES_DIR = fileURLToPath(new URL('../../templates/k3s/', import.meta.url));

export interface K3sTemplates {
  /** templates/k3s/edgectl-k3s-reap.sh */
  readonly reapScript: string;
}

export function readK3sTemplates(dir: string = K3S_TEMPLATES_DIR): K3sTemplates {
  return { reapScript: readFileSync(`${dir.replace(/\/$/, '')}/edgectl-k3s-reap.sh`, 'utf8') };
}
