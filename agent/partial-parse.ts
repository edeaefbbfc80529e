/**
 * Salvaging what parsed from a document that failed its schema, so that the checks after the
 * schema (cross-field rules, CIDRs, files) still run on the rest and every problem is reported in
 * one run. What a salvage drops is only what the schema already reported. Pure.
 */
import type { z } from 'zod';

/** deleteAt removes the value at `path` from `root`; false when there is nothing it can remove. */
function deleteAt(root: unknown, path: readonly PropertyKey[]): boolean {
  if (path.length === 0) return false;
  let parent: unknown = root;
  for (const key of path.slice(0, -1)) {
    if (parent === null || typeof parent !== 'object') return false;
    parent = (parent as Record<PropertyKey, unknown>)[key];
  }
  const last = path.at(-1)!;
  // An array element cannot go without moving every later one: the caller salvages arrays whose
  // indexes matter element by element (salvageEach).
  if (parent === null || typeof parent !== 'object' || Array.isArray(parent)) return false;
  if (!(last in (parent as object))) return false;
  delete (parent as Record<PropertyKey, unknown>)[last];
  return true;
}

/**
 * salvage parses `value`, and when that fails removes every field the schema refused (unknown keys,
 * wrong values) and tries again, so that defaults fill what was removed. Null when a refused value
 * cannot be removed (a required field, an array element, the document itself).
 */
export function salvage<S extends z.ZodType>(schema: S, value: unknown, rounds = 5): z.output<S> | null {
  if (value === null || typeof value !== 'object') return null;
  const v: unknown = structuredClone(value);
  for (let i = 0; i < rounds; i++) {
    const r = schema.safeParse(v);
    if (r.success) return r.data;
    let changed = false;
    for (const issue of r.error.issues)
      if (issue.code === 'unrecognized_keys')
        for (const k of issue.keys) changed = deleteAt(v, [...issue.path, k]) || changed;
      else changed = deleteAt(v, issue.path) || changed;
    if (!changed) return null;
  }
  return null;
}

/** The elements of an array that could be salvaged, and where each was in the document. */
export interface Salvaged<T> {
  readonly items: T[];
  /** items[k] was element origIndex[k] of the document's array. */
  readonly origIndex: number[];
}

export function salvageEach<S extends z.ZodType>(schema: S, value: unknown): Salvaged<z.output<S>> {
  const items: z.output<S>[] = [];
  const origIndex: number[] = [];
  if (Array.isArray(value))
    value.forEach((v, i) => {
      const s = salvage(schema, v);
      if (s !== null) {
        items.push(s);
        origIndex.push(i);
      }
    });
  return { items, origIndex };
}

/**
 * remapIndexes rewrites `<field>[k]` in problems found on salvaged items back to the document's
 * own indexes, so every message names the element as the file has it.
 */
export function remapIndexes(
  problems: readonly string[],
  field: string,
  origIndex: readonly number[],
): string[] {
  const re = new RegExp(`(^|[^A-Za-z0-9_])${field.replace(/[.[\]]/g, '\\$&')}\\[(\\d+)\\]`, 'g');
  return problems.map((p) =>
    p.replace(re, (_m, pre: string, k: string) => `${pre}${field}[${origIndex[Number(k)] ?? k}]`),
  );
}
