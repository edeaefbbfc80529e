/**
 * Manifests as files: YAML text for rendered objects, and the numbered file names `edgectl render
 * site` writes (00-namespace.yaml, 01-networkpolicy-default-deny.yaml, ...), so `kubectl apply -f`
 * on the directory applies them in render order. Pure.
 */
import { stringify } from 'yaml';
import type { KubeObject } from './objects.ts';

/** toYaml writes one object; lineWidth 0 keeps long strings on one line, so diffs stay readable. */
export function toYaml(o: KubeObject): string {
  return stringify(o, { lineWidth: 0, aliasDuplicateObjects: false });
}

/** toYamlStream writes objects as one multi-document YAML stream. */
export function toYamlStream(objects: readonly KubeObject[]): string {
  return objects.map((o) => `---\n${toYaml(o)}`).join('');
}

export interface ManifestFile {
  readonly file: string;
  readonly object: KubeObject;
}

/** manifestFiles names one file per object: `<index>-<kind>-<name>.yaml`, zero-padded to sort. */
export function manifestFiles(objects: readonly KubeObject[]): ManifestFile[] {
  const width = Math.max(2, String(objects.length - 1).length);
  return objects.map((object, i) => {
    const kind = object.kind.toLowerCase();
    const name = object.metadata.name.replace(/[^a-z0-9.-]/gi, '_');
    const stem = kind === 'namespace' ? kind : `${kind}-${name}`;
    return { file: `${String(i).padStart(width, '0')}-${stem}.yaml`, object };
  });
}
