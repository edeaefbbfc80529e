/**
 * `edgectl render site`: validate a site spec and write every manifest the leader would apply,
 * without touching a cluster. An invalid spec is refused before anything is written.
 */
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { readAddonTemplates, renderSiteAddons } from '../../agent/site/addons.ts';
import { manifestFiles, toYaml, toYamlStream, type ManifestFile } from '../../agent/site/manifests.ts';
import { renderSite } from '../../agent/site/render.ts';
import { loadSiteSpec } from '../../agent/site/spec.ts';
import { LABEL_MANAGED_BY, MANAGER, type KubeObject } from '../../agent/site/objects.ts';
import { parse as parseYaml } from 'yaml';
import { UsageError } from '../../agent/errors.ts';
import { kernelFsProblem } from '../../agent/kernel-paths.ts';
import { table, type Io, type OutputFormat } from '../output.ts';
import { checkOutDir, makeOutDir, writeOutFile } from './local-files.ts';

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
  /** Manifests an earlier render wrote that this one no longer writes, removed. */
  removed: string[];
}

/** The form of the file names render writes: a number, a dash, .yaml. */
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

/**
 * The list of files `render site --out` wrote into a directory, kept there so that the next render
 * removes only its own files. Files of renders made before it existed carry edgectl's
 * managed-by label, which counts too.
 */
export const RENDER_MANIFEST = '.edgectl-render.json';

interface DirPlan {
  readonly dir: string;
  readonly files: readonly ManifestFile[];
  /** Files an earlier render wrote that this one does not: removed. */
  readonly stale: readonly string[];
}

function writtenByEdgectl(dir: string): (name: string) => boolean {
  let listed = new Set<string>();
  try {
    const m = JSON.parse(readFileSync(join(dir, RENDER_MANIFEST), 'utf8')) as { files?: unknown };
    if (Array.isArray(m.files)) listed = new Set(m.files.filter((f): f is string => typeof f === 'string'));
  } catch {
    // no manifest (a first render, or one made before the manifest): the labels decide
  }
  return (name) => {
    if (listed.has(name)) return true;
    try {
      const o = parseYaml(readFileSync(join(dir, name), 'utf8')) as KubeObject | null;
      return o?.metadata?.labels?.[LABEL_MANAGED_BY] === MANAGER;
    } catch {
      return false;
    }
  };
}

/**
 * planDir decides what a render does in `dir`, and refuses (before anything is written) to
 * overwrite a file it did not write.
 */
function planDir(dir: string, files: readonly ManifestFile[], option: string): DirPlan {
  checkOutDir(option, dir);
  const ours = writtenByEdgectl(dir);
  const present = existsSync(dir) ? readdirSync(dir) : [];
  const clashes = files.filter((f) => present.includes(f.file) && !ours(f.file)).map((f) => f.file);
  if (clashes.length)
    throw new UsageError(
      'RENDER_WOULD_OVERWRITE',
      `${dir}: ${clashes.join(', ')} ${clashes.length === 1 ? 'is' : 'are'} not written by edgectl (not in ${RENDER_MANIFEST}, no managed-by: edgectl label), and render would overwrite ${clashes.length === 1 ? 'it' : 'them'}`,
      { hint: `move ${clashes.length === 1 ? 'it' : 'them'} aside, or render into another ${option}` },
    );
  const wanted = new Set(files.map((f) => f.file));
  const stale = present.filter((n) => RENDERED.test(n) && !wanted.has(n) && ours(n));
  return { dir, files, stale };
}

/** writeDir writes the files and the manifest, and removes the files of an earlier render it no longer writes. */
function writeDir(plan: DirPlan, option: string): string[] {
  makeOutDir(option, plan.dir);
  for (const f of plan.files) writeOutFile(option, join(plan.dir, f.file), toYaml(f.object));
  writeOutFile(
    option,
    join(plan.dir, RENDER_MANIFEST),
    `${JSON.stringify({ writtenBy: 'edgectl render site', files: plan.files.map((f) => f.file) }, null, 2)}\n`,
  );
  for (const name of plan.stale) rmSync(join(plan.dir, name), { force: true });
  return [...plan.stale];
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
  const addons = o.addons
    ? renderSiteAddons(readAddonTemplates(), { site: spec.id, epoch: o.epoch, images: spec.addons?.images })
    : [];

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

  const siteFiles = manifestFiles(site);
  const addonFiles = manifestFiles(addons);
  // Both directories are checked before either is written: a refusal leaves everything as it was.
  const sitePlan = planDir(o.out, siteFiles, '--out');
  const addonPlan = o.addons ? planDir(join(o.out, 'addons'), addonFiles, '--out') : null;
  const removed = writeDir(sitePlan, '--out');
  if (addonPlan) removed.push(...writeDir(addonPlan, '--out').map((f) => `addons/${f}`));
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
