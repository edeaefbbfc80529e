/**
 * The lab's revision bump after a takeover's restore (docs/k3s.md "One history"): the same tool
 * and the same amount as a robot's takeover plan (agent/k3s/revision-bump.ts), run on the restored
 * etcd data dir before etcd starts.
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { EdgeError } from '../../agent/errors.ts';
import { REVISION_BUMP, REVISION_BUMP_BIN } from '../../agent/k3s/revision-bump.ts';

const execFileP = promisify(execFile);
const TOOL_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'tools', 'etcd-revision-bump');

/**
 * revisionBumpBinary: $EDGECTL_REVISION_BUMP, else the build of tools/etcd-revision-bump cached
 * under /var/cache/edgectl (built with this machine's Go on first use), else, for a bundled agent
 * that has no sources, the newest cached build, else the robot's installed one.
 */
export function revisionBumpBinary(): string {
  const fromEnv = process.env['EDGECTL_REVISION_BUMP'];
  if (fromEnv && existsSync(fromEnv)) return fromEnv;
  if (existsSync(join(TOOL_DIR, 'build.sh'))) {
    const out = execFileSync('bash', [join(TOOL_DIR, 'build.sh')], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    return out.trim().split('\n').at(-1)!;
  }
  const cache = join(process.env['EDGECTL_CACHE'] ?? '/var/cache/edgectl', 'etcd-revision-bump');
  const built = (existsSync(cache) ? readdirSync(cache) : [])
    .map((d) => join(cache, d, 'edgectl-etcd-revision-bump'))
    .filter((p) => existsSync(p))
    .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
  if (built[0]) return built[0];
  if (existsSync(REVISION_BUMP_BIN)) return REVISION_BUMP_BIN;
  throw new EdgeError('REVISION_BUMP_MISSING', 'the etcd revision bump tool was not found', {
    hint: 'build it: bash tools/etcd-revision-bump/build.sh (needs Go)',
  });
}

export interface RevisionBump {
  readonly from: number;
  readonly to: number;
  readonly already: boolean;
}

/** bumpRevision moves the stopped etcd data dir's revision forward (see agent/k3s/revision-bump.ts). */
export async function bumpRevision(dataDir: string, by = REVISION_BUMP): Promise<RevisionBump> {
  let stdout: string;
  try {
    ({ stdout } = await execFileP(revisionBumpBinary(), [`--data-dir=${dataDir}`, `--by=${by}`], {
      timeout: 30_000,
    }));
  } catch (e) {
    throw new EdgeError('REVISION_BUMP_FAILED', `could not move ${dataDir}'s etcd revision forward`, {
      cause: e,
      hint: 'etcd must be stopped and the data dir restored; see the error above',
    });
  }
  const r = JSON.parse(stdout) as { from: number; to: number; already?: boolean };
  return { from: r.from, to: r.to, already: r.already === true };
}
