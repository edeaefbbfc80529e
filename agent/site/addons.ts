/**
 * The cluster-wide installs a site needs before its own objects: the CRDs (templates/crds/) and
 * Multus + Whereabouts with k3s paths (templates/site/). The YAML lives in templates/ so it can be
 * reviewed and diffed as YAML; readAddonTemplates reads it (the one I/O here), renderSiteAddons
 * parses it and adds edgectl's labels (pure).
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { InternalError } from '../errors.ts';
import { edgectlLabels, type KubeObject } from './objects.ts';

/** The template files, in apply order: CRDs first, so they are Established before anything uses them. */
export const ADDON_TEMPLATE_FILES = [
  'crds/network-attachment-definitions.yaml',
  'crds/whereabouts-ippools.yaml',
  'crds/whereabouts-overlappingrangeipreservations.yaml',
  'crds/whereabouts-nodeslicepools.yaml',
  'site/multus.yaml',
  'site/whereabouts.yaml',
] as const;

export interface AddonTemplate {
  /** Path relative to the templates directory, like crds/whereabouts-ippools.yaml. */
  readonly file: string;
  readonly text: string;
}

/** The repository's templates/ directory (next to agent/). */
export const DEFAULT_TEMPLATES_DIR = fileURLToPath(new URL('../../templates/', import.meta.url));

/** readAddonTemplates reads the addon templates from `dir` (default: the repository's templates/). */
export function readAddonTemplates(dir: string = DEFAULT_TEMPLATES_DIR): AddonTemplate[] {
  return ADDON_TEMPLATE_FILES.map((file) => {
    try {
      return { file, text: readFileSync(`${dir.replace(/\/$/, '')}/${file}`, 'utf8') };
    } catch (e) {
      throw new InternalError(`cannot read the addon template ${dir}/${file}: ${(e as Error).message}`, {
        cause: e,
      });
    }
  });
}

export interface AddonRenderOptions {
  readonly site: string;
  readonly epoch: number;
}

/** renderSiteAddons parses the templates, in order, and labels every object as edgectl's addons. */
export function renderSiteAddons(
  templates: readonly AddonTemplate[],
  opts: AddonRenderOptions,
): KubeObject[] {
  const out: KubeObject[] = [];
  for (const t of templates) {
    for (const doc of parseAllDocuments(t.text)) {
      if (doc.errors.length)
        throw new InternalError(`templates/${t.file} is not valid YAML: ${doc.errors[0]!.message}`);
      const o = doc.toJS() as KubeObject | null;
      if (o === null) continue;
      if (!o.apiVersion || !o.kind || !o.metadata?.name)
        throw new InternalError(
          `templates/${t.file} has an object without apiVersion, kind or metadata.name`,
        );
      out.push({
        ...o,
        metadata: {
          ...o.metadata,
          labels: { ...o.metadata.labels, ...edgectlLabels(opts.site, opts.epoch, 'addons') },
        },
      });
    }
  }
  return out;
}

export function isCrd(o: KubeObject): boolean {
  return o.apiVersion === 'apiextensions.k8s.io/v1' && o.kind === 'CustomResourceDefinition';
}
