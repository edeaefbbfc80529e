/**
 * The offline bundle's facts the plan needs: each file's SHA-256 and size, the chunks the agent's
 * entry file imports, and which CPU the Node runtime is built for (from its ELF header), so
 * preflight can refuse a robot it would not run on before anything is uploaded.
 */
import { createHash } from 'node:crypto';
import { createReadStream, readFileSync } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { EdgeError } from '../../agent/errors.ts';
import type { ResolvedBundle } from './inventory-files.ts';
import { PINNED_NODE_RUNTIME } from './node-runtime.ts';
import type { BundleFile, BundleInfo } from './plan.ts';

/** ELF e_machine values and the `uname -m` of each. */
const ELF_MACHINES: Readonly<Record<number, string>> = {
  0x3e: 'x86_64',
  0xb7: 'aarch64',
  0x28: 'armv7l',
  0xf3: 'riscv64',
};

/** elfArch reads the `uname -m` an ELF binary runs on, or null for anything else. Pure. */
export function elfArch(header: Buffer): string | null {
  if (header.length < 20 || header.readUInt32BE(0) !== 0x7f454c46) return null;
  const littleEndian = header[5] === 1;
  const machine = littleEndian ? header.readUInt16LE(18) : header.readUInt16BE(18);
  return ELF_MACHINES[machine] ?? null;
}

// esbuild's import of a chunk beside the importing file, as it writes them minified: `from"./x.mjs"`
// and `import"./x.mjs"` (static), `import("./x.mjs")` (dynamic).
const CHUNK_IMPORT = /(?:\bfrom|\bimport)\s*\(?\s*(["'])\.\/([^"'\\/\s]+\.m?js)\1/g;
// A CommonJS file beside it that it requires or resolves: a call with the literal file name as its
// only argument, `r("./x.cjs")` or `r.resolve("./x.cjs")`, since minifying renames a `require`
// made by createRequire (agent/main.ts resolves edgectl-agent-config.cjs so, to run it).
const CJS_REQUIRE = /\(\s*(["'])\.\/([^"'\\/\s]+\.cjs)\1\s*\)/g;

/**
 * chunkImports lists the files beside it that a bundled file imports, statically or dynamically,
 * or requires or resolves (a CommonJS file). Pure.
 */
export function chunkImports(source: string): string[] {
  const names = [...source.matchAll(CHUNK_IMPORT), ...source.matchAll(CJS_REQUIRE)].sort(
    (a, b) => a.index - b.index,
  );
  return [...new Set(names.map((m) => m[2]!))];
}

/**
 * agentChunks finds the chunks the agent's entry file needs (npm run build:agent splits code that
 * only `import()` reaches into `edgectl-agent-<hash>.mjs` files beside it, and builds the config
 * loader as `edgectl-agent-config.cjs`), by reading its imports and theirs: the chunk paths, sorted. A chunk that is not there is an error naming it, so a robot
 * never gets an agent that fails when it first needs the missing code.
 */
export function agentChunks(entry: string, read = (path: string) => readFileSync(path, 'utf8')): string[] {
  const dir = dirname(entry);
  const found = new Set<string>();
  const queue: { path: string; importer: string | null }[] = [{ path: entry, importer: null }];
  for (let next = queue.shift(); next; next = queue.shift()) {
    let source: string;
    try {
      source = read(next.path);
    } catch (e) {
      if (next.importer === null) throw e;
      const why =
        (e as NodeJS.ErrnoException).code === 'ENOENT'
          ? 'is missing'
          : `cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`;
      throw new EdgeError(
        'BUNDLE_AGENT_CHUNK',
        `the agent's chunk ${next.path} ${why}: ${basename(next.importer)} imports it`,
        {
          hint: `run npm run build:agent (it writes the agent and its chunks together); a bundle.agent built elsewhere needs every edgectl-agent-* file built with it beside it in ${dir}`,
          cause: e,
        },
      );
    }
    for (const name of chunkImports(source)) {
      if (name === basename(entry) || found.has(name)) continue;
      found.add(name);
      queue.push({ path: join(dir, name), importer: next.path });
    }
  }
  return [...found].sort().map((name) => join(dir, name));
}

async function describeFile(path: string): Promise<BundleFile> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return { localPath: path, sha256: hash.digest('hex'), bytes: (await stat(path)).size };
}

export async function describeBundle(b: ResolvedBundle): Promise<BundleInfo> {
  const fh = await open(b.node, 'r');
  const header = Buffer.alloc(20);
  try {
    await fh.read(header, 0, 20, 0);
  } finally {
    await fh.close();
  }
  const arch = elfArch(header);
  if (!arch)
    throw new EdgeError(
      'BUNDLE_NODE',
      `${b.node} is not a Linux executable edgectl knows (ELF x86_64, aarch64, armv7l, riscv64)`,
      {
        hint: 'set bundle.node in the inventory to the `node` binary of a Node 24 linux build for the robots',
      },
    );
  const chunks = agentChunks(b.agent);
  const [agent, node, k3s, airgapImages] = await Promise.all([
    describeFile(b.agent),
    describeFile(b.node),
    b.k3s ? describeFile(b.k3s) : undefined,
    b.airgapImages ? describeFile(b.airgapImages) : undefined,
  ]);
  const etcd =
    b.etcd && b.etcdctl && b.etcdRevisionBump
      ? {
          etcd: await describeFile(b.etcd),
          etcdctl: await describeFile(b.etcdctl),
          revisionBump: await describeFile(b.etcdRevisionBump),
        }
      : undefined;
  checkNodeIntegrity(b, node);
  return {
    agent: { ...agent, chunks: await Promise.all(chunks.map(describeFile)) },
    node: { ...node, arch },
    ...(k3s ? { k3s } : {}),
    ...(airgapImages ? { airgapImages } : {}),
    ...(etcd ? { etcd } : {}),
  };
}

/** The digest a dry run shows for a bundle file that is not there yet. */
export const MISSING_FILE_DIGEST = 'missing'.padEnd(64, '-');

/**
 * describeBundleForPlan is describeBundle for a dry run: a bundle file that is missing or unreadable
 * is planned with a placeholder (its size 0, its digest MISSING_FILE_DIGEST, the Node runtime's CPU
 * "unknown") instead of failing, since the dry run only shows the plan. What a real run still
 * needs is in checkInventoryFiles' problems, which the dry run lists.
 */
export async function describeBundleForPlan(b: ResolvedBundle): Promise<BundleInfo> {
  const placeholder = (localPath: string): BundleFile => ({
    localPath,
    sha256: MISSING_FILE_DIGEST,
    bytes: 0,
  });
  const tryDescribe = (p: string) => describeFile(p).catch(() => placeholder(p));
  let arch = 'unknown';
  try {
    const fh = await open(b.node, 'r');
    const header = Buffer.alloc(20);
    try {
      await fh.read(header, 0, 20, 0);
    } finally {
      await fh.close();
    }
    arch = elfArch(header) ?? 'unknown';
  } catch {
    // Missing: a real run refuses it (checkInventoryFiles); the plan shows "unknown".
  }
  let chunks: string[] = [];
  try {
    chunks = agentChunks(b.agent);
  } catch {
    // The agent (or a chunk) is not built yet: the plan shows the entry file alone.
  }
  const [agent, node, k3s, airgapImages] = await Promise.all([
    tryDescribe(b.agent),
    tryDescribe(b.node),
    b.k3s ? tryDescribe(b.k3s) : undefined,
    b.airgapImages ? tryDescribe(b.airgapImages) : undefined,
  ]);
  const etcd =
    b.etcd && b.etcdctl && b.etcdRevisionBump
      ? {
          etcd: await tryDescribe(b.etcd),
          etcdctl: await tryDescribe(b.etcdctl),
          revisionBump: await tryDescribe(b.etcdRevisionBump),
        }
      : undefined;
  // A dry run plans without a missing file, but never with a tampered runtime.
  if (node.sha256 !== MISSING_FILE_DIGEST) checkNodeIntegrity(b, node);
  return {
    agent: { ...agent, chunks: await Promise.all(chunks.map(tryDescribe)) },
    node: { ...node, arch },
    ...(k3s ? { k3s } : {}),
    ...(airgapImages ? { airgapImages } : {}),
    ...(etcd ? { etcd } : {}),
  };
}

/** checkNodeIntegrity refuses a Node runtime whose SHA-256 is not the one the bundle pins. */
function checkNodeIntegrity(b: ResolvedBundle, node: BundleFile): void {
  if (b.nodeSha256 !== undefined && node.sha256 !== b.nodeSha256)
    throw new EdgeError(
      'BUNDLE_NODE_INTEGRITY',
      `${b.node} is not the Node runtime this bundle pins: its SHA-256 is ${node.sha256}, the pin is ${b.nodeSha256}. It would run as root on every robot; refusing to ship it`,
      {
        hint:
          b.nodeSha256 === PINNED_NODE_RUNTIME.sha256
            ? `reinstall edgectl's runtime (rm -rf node_modules/node && npm ci) and check where ${PINNED_NODE_RUNTIME.package}@${PINNED_NODE_RUNTIME.version} came from; to ship another build, set bundle.node and bundle.nodeSha256 in the inventory`
            : 'check the binary at bundle.node, or set bundle.nodeSha256 to the SHA-256 of the build you trust (sha256sum <file>)',
      },
    );
}
