/**
 * `edgectl render site`: validate a site spec and write every manifest the leader would apply,
 * without touching a cluster. An invalid spec is refused before anything is written.
 */
import { mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readAddonTemplates, renderSiteAddons } from '../../agent/site/addons.ts';
import { manifestFiles, toYaml, toYamlStream, type ManifestFile } from '../../agent/site/manifests.ts';
import { renderSite } from '../../agent/site/render.ts';
import { loadSiteSpec } from '../../agent/site/spec.ts';
import type { KubeObject } from '../../agent/site/objects.ts';
import { UsageError } from '../../agent/errors.ts';
import { kernelFsProblem } from '../../agent/kernel-paths.ts';
import { table, type Io, type OutputFormat } from '../output.ts';

export interface RenderSiteOptions {
  file: string;
  out?: string;
  epoch: number;
  addons: boolean;
  output: OutputFormat;
}

export interface RenderedFile {
  file: string;
  apiVersion: string;
  kind: string;
  namespace?: string;
  name: string;
}

export interface RenderSiteResult {
  site: string;
  epoch: number;
  dir: string | null;
  files: RenderedFile[];
  /** Numbered manifests from an earlier render that this one no longer writes, removed. */
  removed: string[];
}

/** A file edgectl render wrote: a number, a dash, .yaml. Only those are ever removed. */
const RENDERED = /^[0-9]{2,}-[a-z0-9._-]+\.yaml$/i;

function describe(file: string, o: KubeObject): RenderedFile {
  return {
    file,
    apiVersion: o.apiVersion,
    kind: o.kind,
    ...(o.metadata.namespace === undefined ? {} : { namespace: o.metadata.namespace }),
    name: o.metadata.name,
  };
}

/** writeDir writes the files into `dir` and removes numbered files of an earlier render it did not write. */
function writeDir(dir: string, files: readonly ManifestFile[]): string[] {
  mkdirSync(dir, { recursive: true });
  const wanted = new Set(files.map((f) => f.file));
  const removed: string[] = [];
  for (const name of readdirSync(dir))
    if (RENDERED.test(name) && !wanted.has(name)) {
      rmSync(join(dir, name));
      removed.push(name);
    }
  for (const f of files) writeFileSync(join(dir, f.file), toYaml(f.object));
  return removed;
}

export async function runRenderSite(o: RenderSiteOptions, io: Io): Promise<RenderSiteResult> {
  const special = o.out === undefined ? null : kernelFsProblem(o.out);
  if (special)
    throw new UsageError('BAD_OUT', `--out ${special}`, {
      hint: 'render into a directory you keep',
      path: '--out',
    });
  const spec = loadSiteSpec(o.file, { acceptInventory: true });
  const site = renderSite(spec, { epoch: o.epoch });
  const addons = o.addons ? renderSiteAddons(readAddonTemplates(), { site: spec.id, epoch: o.epoch }) : [];

  if (o.out === undefined) {
    const result: RenderSiteResult = {
      site: spec.id,
      epoch: o.epoch,
      dir: null,
      files: [...addons, ...site].map((x) => describe('-', x)),
      removed: [],
    };
    // Addons first: a stream piped to kubectl must create the CRDs before the NADs.
    io.out(
      o.output === 'json'
        ? JSON.stringify({ ...result, objects: [...addons, ...site] }, null, 2)
        : toYamlStream([...addons, ...site]),
    );
    return result;
  }

  try {
    if (!statSync(o.out).isDirectory())
      throw new UsageError('RENDER_OUT_NOT_DIR', `${o.out} is not a directory`, {
        hint: 'pass --out a directory (it is created if missing)',
      });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const siteFiles = manifestFiles(site);
  const addonFiles = manifestFiles(addons);
  const removed = writeDir(o.out, siteFiles);
  if (o.addons) removed.push(...writeDir(join(o.out, 'addons'), addonFiles).map((f) => `addons/${f}`));
  const files = [
    ...addonFiles.map((f) => describe(`addons/${f.file}`, f.object)),
    ...siteFiles.map((f) => describe(f.file, f.object)),
  ];
  const result: RenderSiteResult = { site: spec.id, epoch: o.epoch, dir: o.out, files, removed };
  if (o.output === 'json') io.out(JSON.stringify(result, null, 2));
  else {
    const lines = [
      table(
        ['file', 'kind', 'namespace', 'name'],
        files.map((f) => [f.file, f.kind, f.namespace ?? '-', f.name]),
      ),
      '',
      `${files.length} manifests for site ${spec.id} in ${o.out}${removed.length ? `; removed stale ${removed.join(', ')}` : ''}`,
    ];
    if (o.addons)
      lines.push(`apply ${join(o.out, 'addons')} first: it installs the CRDs the site's NADs need`);
    io.out(lines.join('\n'));
  }
  return result;
}
