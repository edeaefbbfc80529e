/**
 * The cluster-wide installs a site needs before its own objects: the CRDs (templates/crds/) and
 * Multus + Whereabouts with k3s paths (templates/site/). The YAML lives in templates/ so it can be
 * reviewed and diffed as YAML; readAddonTemplates reads and parses it (the one I/O here), and
 * renderSiteAddons (addon-objects.ts, without yaml) adds edgectl's labels (pure).
 */
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { InternalError } from '../errors.ts';
import { defaultTemplatesDir, type AddonTemplate } from './addon-objects.ts';
import type { KubeObject } from './objects.ts';

export {
  defaultTemplatesDir,
  isCrd,
  renderSiteAddons,
  type AddonRenderOptions,
  type AddonTemplate,
} from './addon-objects.ts';

/** The template files, in apply order: CRDs first, so they are Established before anything uses them. */
export const ADDON_TEMPLATE_FILES = [
  'crds/network-attachment-definitions.yaml',
  'crds/whereabouts-ippools.yaml',
  'crds/whereabouts-overlappingrangeipreservations.yaml',
  'crds/whereabouts-nodeslicepools.yaml',
  'site/multus.yaml',
  'site/whereabouts.yaml',
] as const;

/** An addon template file as read: its text (bootstrap ships it), and its objects. */
export interface AddonTemplateFile extends AddonTemplate {
  readonly text: string;
}

/** readAddonTemplates reads and parses the addon templates from `dir` (default: the repository's templates/). */
export function readAddonTemplates(dir: string = defaultTemplatesDir()): AddonTemplateFile[] {
  return ADDON_TEMPLATE_FILES.map((file) => {
    let text: string;
    try {
      text = readFileSync(`${dir.replace(/\/$/, '')}/${file}`, 'utf8');
    } catch (e) {
      throw new InternalError(`cannot read the addon template ${dir}/${file}: ${(e as Error).message}`, {
        cause: e,
      });
    }
    return { file, text, objects: parseAddonTemplate(file, text) };
  });
}

/** parseAddonTemplate is the objects of one template file's YAML documents, in order. */
export function parseAddonTemplate(file: string, text: string): KubeObject[] {
  const out: KubeObject[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length)
      throw new InternalError(`templates/${file} is not valid YAML: ${doc.errors[0]!.message}`);
    const o = doc.toJS() as KubeObject | null;
    if (o === null) continue;
    if (!o.apiVersion || !o.kind || !o.metadata?.name)
      throw new InternalError(`templates/${file} has an object without apiVersion, kind or metadata.name`);
    out.push(o);
  }
  return out;
}
