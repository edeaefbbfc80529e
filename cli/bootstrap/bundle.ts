/**
 * The offline bundle's facts the plan needs: each file's SHA-256 and size, and which CPU the
 * Node runtime is built for (from its ELF header), so preflight can refuse a robot it would not
 * run on before anything is uploaded.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { EdgeError } from '../../agent/errors.ts';
import type { ResolvedBundle } from './inventory-files.ts';
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
  const [agent, node, k3s, airgapImages] = await Promise.all([
    describeFile(b.agent),
    describeFile(b.node),
    b.k3s ? describeFile(b.k3s) : undefined,
    b.airgapImages ? describeFile(b.airgapImages) : undefined,
  ]);
  return {
    agent,
    node: { ...node, arch },
    ...(k3s ? { k3s } : {}),
    ...(airgapImages ? { airgapImages } : {}),
  };
}
