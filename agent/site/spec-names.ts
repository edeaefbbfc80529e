/**
 * What the site's objects are called, from a parsed spec. A module without the spec's schema: the
 * leader's apply path (render.ts, applier.ts) imports it, and must not load zod (spec.ts), which the
 * bundled agent keeps in a child process (agent/site/spec-subprocess.ts).
 */
import type { SiteSpec } from './spec.ts';

/** siteNamespace is the namespace a site's objects live in. */
export function siteNamespace(spec: SiteSpec): string {
  return spec.namespace.name ?? `site-${spec.id}`;
}
