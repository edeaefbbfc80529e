/**
 * The addon templates as objects, and what a site apply makes of them: renderSiteAddons labels
 * every object as edgectl's addons and puts the spec's images in (pure). No YAML here: the
 * leader's apply path imports this module, and the bundled agent parses the templates' YAML in a
 * child process (agent/site/spec-subprocess.ts); addons.ts reads and parses them.
 */
import { fileURLToPath } from 'node:url';
import { edgectlLabels, type KubeObject } from './objects.ts';
import type { AddonImages } from './spec.ts';

/**
 * defaultTemplatesDir is the repository's templates/ directory (next to agent/). A function, not a
 * constant: the spec loader's CommonJS build has no import.meta, and is always told the directory.
 */
export function defaultTemplatesDir(): string {
  return fileURLToPath(new URL('../../templates/', import.meta.url));
}

/** One addon template file, parsed: its objects, in file order. */
export interface AddonTemplate {
  /** Path relative to the templates directory, like crds/whereabouts-ippools.yaml. */
  readonly file: string;
  readonly objects: readonly KubeObject[];
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
 * renderSiteAddons labels every object of the templates, in order, as edgectl's addons and puts
 * the spec's images, where it sets any, in place of the pinned ones.
 */
export function renderSiteAddons(
  templates: readonly AddonTemplate[],
  opts: AddonRenderOptions,
): KubeObject[] {
  return templates.flatMap((t) =>
    t.objects.map((o) => ({
      ...withImages(o, opts.images),
      metadata: {
        ...o.metadata,
        labels: { ...o.metadata.labels, ...edgectlLabels(opts.site, opts.epoch, 'addons') },
      },
    })),
  );
}

export function isCrd(o: KubeObject): boolean {
  return o.apiVersion === 'apiextensions.k8s.io/v1' && o.kind === 'CustomResourceDefinition';
}
