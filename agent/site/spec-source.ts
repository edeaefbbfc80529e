/**
 * SiteSpecSource: how the agent reads and checks site specs without loading zod and yaml at idle.
 * fileSiteSpecSource parses in the caller's process, loading the parser (agent/site/spec.ts) and
 * the templates' YAML only when a robot leads or an operator proposes a spec; the bundled agent
 * parses in a short-lived child process instead (agent/site/spec-subprocess.ts), so that its own
 * process never loads them.
 *
 * A spec travels and is hashed as canonical JSON: the parsed spec, defaults filled in, keys in the
 * schema's order. Two files that differ only in comments, key order or spelled-out defaults are
 * the same spec with the same digest.
 */
import { ConfigError } from '../errors.ts';
import type { AddonTemplate } from './addon-objects.ts';
import type { SiteSpec } from './spec.ts';

/** A spec to apply, validated, with the parsed addon templates the leader installs with it. */
export interface LoadedSite {
  readonly spec: SiteSpec;
  readonly templates: readonly AddonTemplate[];
}

export interface SiteSpecSource {
  /** The spec installed with this robot (bootstrap's /etc/edgectl/site.yaml), canonical; null if none. */
  local(): Promise<string | null>;
  /** Check a proposed spec (JSON text) for `siteId`: its canonical JSON, or a ConfigError listing every problem. */
  validate(text: string, siteId: string): Promise<string>;
  /**
   * Parse a spec's JSON text (committed or installed) with the full schema, and read the addon
   * templates: what the leader applies. `source` names the spec in a ConfigError.
   */
  load(text: string, source: string): Promise<LoadedSite>;
}

/** canonicalSiteSpec is the canonical JSON of a parsed spec. */
export function canonicalSiteSpec(spec: SiteSpec): string {
  return JSON.stringify(spec);
}

/** parseSpecText parses a spec's JSON text (canonical or not) with the full schema. */
export async function parseSpecText(text: string, source = 'proposed site spec'): Promise<SiteSpec> {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(source, [`not valid JSON: ${(e as Error).message}`]);
  }
  const { parseSiteSpec } = await import('./spec.ts');
  return parseSiteSpec(raw, source);
}

/**
 * fileSiteSpecSource reads the installed spec from `path` (none: no installed spec) and the addon
 * templates from `templatesDir` (none: the repository's templates/), in this process.
 */
export function fileSiteSpecSource(path: string | undefined, templatesDir?: string): SiteSpecSource {
  return {
    local: async () => {
      if (!path) return null;
      const { loadSiteSpec } = await import('./spec.ts');
      return canonicalSiteSpec(loadSiteSpec(path));
    },
    validate: async (text, siteId) => {
      const spec = await parseSpecText(text);
      if (spec.id !== siteId)
        throw new ConfigError('proposed site spec', [`id: is "${spec.id}", but this is site "${siteId}"`], {
          hint: 'apply the spec of this site, or send it to an agent of the site it names',
        });
      return canonicalSiteSpec(spec);
    },
    load: async (text, source) => {
      const spec = await parseSpecText(text, source);
      const { readAddonTemplates } = await import('./addons.ts');
      const templates = readAddonTemplates(templatesDir).map(({ file, objects }) => ({ file, objects }));
      return { spec, templates };
    },
  };
}
