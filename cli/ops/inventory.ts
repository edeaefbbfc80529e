/** `edgectl inventory init|validate`: start an inventory from the commented example, and check one. */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ConfigError, UsageError } from '../../agent/errors.ts';
import { kernelFsProblem } from '../../agent/kernel-paths.ts';
import { loadInventoryResolved, type Lookup } from '../bootstrap/inventory-files.ts';
import { inventoryWarnings } from '../bootstrap/inventory-warnings.ts';
import { failoverRefusal, quorumAdvice } from '../bootstrap/inventory.ts';
import { table, type Io, type OutputFormat } from '../output.ts';
import { writeOutFile } from './local-files.ts';

export const EXAMPLE_INVENTORY = fileURLToPath(
  new URL('../../templates/inventory/site.example.yaml', import.meta.url),
);

/** runInventoryInit writes the commented example to `out` (or stdout), never over an existing file unless forced. */
export function runInventoryInit(o: { out?: string; force: boolean; output: OutputFormat }, io: Io): void {
  const text = readFileSync(EXAMPLE_INVENTORY, 'utf8');
  if (o.out === undefined) {
    io.out(o.output === 'json' ? JSON.stringify({ content: text }) : text);
    return;
  }
  const special = kernelFsProblem(o.out);
  if (special)
    throw new UsageError('BAD_OUT', `--out ${special}`, {
      hint: 'write the inventory to a file you keep',
      path: '--out',
    });
  if (o.out !== '' && existsSync(o.out) && !o.force)
    throw new UsageError('FILE_EXISTS', `${o.out} exists; edgectl inventory init does not overwrite it`, {
      hint: 'pick another --out, or pass --force to replace it',
    });
  writeOutFile('--out', o.out, text, { mode: 0o644 });
  io.out(
    o.output === 'json'
      ? JSON.stringify({ written: o.out })
      : `wrote ${o.out}: edit the robots, then run edgectl inventory validate -f ${o.out}`,
  );
}

/**
 * runInventoryValidate checks an inventory completely, local files included (key files, bundle):
 * every problem at once as a ConfigError, or a summary of the site.
 */
export async function runInventoryValidate(
  o: { file: string; output: OutputFormat },
  io: Io,
  deps: { lookup?: Lookup } = {},
): Promise<void> {
  // Host names are resolved as bootstrap would: a name that does not resolve is a problem here too.
  const { inventory: inv } = await loadInventoryResolved(o.file, process.env, deps.lookup);
  const refusal = failoverRefusal(inv);
  if (refusal) throw new ConfigError(o.file, [refusal]);
  const quorum = quorumAdvice(inv.voters.length, inv.witnesses.length);
  const warnings = inventoryWarnings(inv);
  const robots = inv.robots.map((r) => ({
    name: r.name,
    address: `${r.address}:${r.ssh.port}`,
    ...(r.ip !== undefined && r.ip !== r.address ? { ip: r.ip } : {}),
    user: r.ssh.user,
    sudo: r.sudo,
    voter: inv.voters.includes(r.name),
    witness: inv.witnesses.includes(r.name),
    serverCapable: r.serverCapable,
    hostKey: r.ssh.hostKey ? 'pinned' : 'known_hosts',
  }));
  if (o.output === 'json') {
    io.out(
      JSON.stringify(
        { valid: true, site: inv.site.id, runtime: inv.controlPlane.runtime, quorum, robots, warnings },
        null,
        2,
      ),
    );
    return;
  }
  for (const w of warnings) io.err(`warning: ${w}`);
  io.out(
    [
      `${o.file} is valid: site ${inv.site.id}, ${inv.robots.length} robot(s), ${inv.voters.length} voter(s)${inv.witnesses.length ? ` + ${inv.witnesses.length} witness(es)` : ''}, runtime ${inv.controlPlane.runtime}`,
      `quorum: ${quorum.summary}`,
      ...quorum.warnings.map((w) => `warning: ${w}`),
      '',
      table(
        ['robot', 'ssh', 'user', 'sudo', 'role', 'host key'],
        robots.map((r) => [
          r.name,
          r.ip ? `${r.address} (${r.ip})` : r.address,
          r.user,
          r.sudo,
          r.voter ? 'voter' : r.witness ? 'witness' : r.serverCapable ? 'server-capable learner' : 'learner',
          r.hostKey,
        ]),
      ),
    ].join('\n'),
  );
}
