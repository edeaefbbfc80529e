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
import type { AddonImages } from './spec.ts';

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
  /** The site spec's addons.images: each set one replaces the image of its containers. */
  readonly images?: AddonImages;
}

/** Which spec image each addon container (or init container) of the templates runs. */
const CONTAINER_IMAGE: Readonly<Record<string, keyof AddonImages>> = {
  multus: 'multus',
  'cni-plugins': 'cniPlugins',
  whereabouts: 'whereabouts',
};

interface PodTemplateHolder {
  spec?: { template?: { spec?: Record<string, unknown> } };
}

/** withImages is `o` with the images of its pod template's named containers replaced. */
function withImages(o: KubeObject, images: AddonImages | undefined): KubeObject {
  const pod = (o as PodTemplateHolder).spec?.template?.spec;
  if (!images || !pod) return o;
  const swap = (cs: unknown): unknown =>
    Array.isArray(cs)
      ? cs.map((c: { name?: string; image?: string }) => {
          const key = c.name === undefined ? undefined : CONTAINER_IMAGE[c.name];
          const image = key === undefined ? undefined : images[key];
          return image === undefined ? c : { ...c, image };
        })
      : cs;
  const spec = {
    ...pod,
    ...(pod.initContainers ? { initContainers: swap(pod.initContainers) } : {}),
    ...(pod.containers ? { containers: swap(pod.containers) } : {}),
  };
  const holder = o as KubeObject & PodTemplateHolder;
  return { ...o, spec: { ...holder.spec, template: { ...holder.spec!.template, spec } } } as KubeObject;
}

/**
 * renderSiteAddons parses the templates, in order, labels every object as edgectl's addons and
 * puts the spec's images, where it sets any, in place of the pinned ones.
 */
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
        ...withImages(o, opts.images),
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
