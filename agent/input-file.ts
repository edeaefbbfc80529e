/**
 * readYamlFile: the one way edgectl reads a YAML (or JSON) input file: the inventory, a site spec,
 * agent.yaml. Every problem is a ConfigError that names the file and the fix:
 * - a file that cannot be read says why (missing, permission denied, a directory), and only a
 *   missing file gets the caller's "start from …" hint;
 * - bytes that are not UTF-8 are refused, never silently replaced with U+FFFD;
 * - YAML tags (`!!binary`, `!custom`) and merge keys (`<<`) are refused: edgectl's inputs are plain
 *   maps, lists and scalars, and what a tag or a merge would make of them is easy to misread.
 *   Anchors and aliases are fine.
 */
import { readFileSync } from 'node:fs';
import { LineCounter, isMap, isPair, isScalar, isSeq, parseDocument, visit } from 'yaml';
import { ConfigError } from './errors.ts';

const WHY: Readonly<Record<string, string>> = {
  ENOENT: 'it does not exist',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  EISDIR: 'it is a directory, not a file',
  ENOTDIR: 'a part of its path is not a directory',
  ELOOP: 'its path has a symlink loop',
};

export function readYamlFile(
  path: string,
  opts: { missingHint: string; read?: (path: string) => Buffer },
): unknown {
  return parseYamlText(readTextFile(path, opts), path);
}

/** readTextFile reads a UTF-8 text file, or throws a ConfigError saying why it cannot. */
export function readTextFile(
  path: string,
  opts: { missingHint: string; read?: (path: string) => Buffer },
): string {
  let bytes: Buffer;
  try {
    bytes = (opts.read ?? readFileSync)(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? '';
    const why = WHY[code] ? `${WHY[code]} (${code})` : (e as Error).message;
    const hint =
      code === 'ENOENT'
        ? opts.missingHint
        : code === 'EACCES' || code === 'EPERM'
          ? `let this user read it (ls -l ${path}; chmod or chown it), or run edgectl as a user that may`
          : code === 'EISDIR'
            ? 'pass the file itself, not its directory'
            : `check the path ${path}`;
    throw new ConfigError(path, [`cannot read the file: ${why}`], { hint });
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    const at = firstInvalidUtf8(bytes);
    throw new ConfigError(path, [`not UTF-8 text: the byte at offset ${at} is not valid UTF-8`], {
      hint: `save the file as UTF-8 (iconv -f latin1 -t utf-8 ${path} > fixed.yaml, for example)`,
    });
  }
}

/** parseYamlText parses YAML text as plain data (no tags, no merge keys); `source` names it in errors. */
export function parseYamlText(text: string, source: string): unknown {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, merge: false, uniqueKeys: true });
  const where = (offset: number | undefined) => {
    if (offset === undefined) return '';
    const p = lines.linePos(offset);
    return ` (line ${p.line}, column ${p.col})`;
  };
  const problems: string[] = doc.errors.map((e) => `not valid YAML: ${e.message}`);
  if (problems.length === 0) {
    visit(doc, {
      Pair(_, pair) {
        if (isPair(pair) && isScalar(pair.key) && pair.key.value === '<<')
          problems.push(
            `merge key <<${where(pair.key.range?.[0])} is not supported: write the fields out (an alias *name alone is fine)`,
          );
      },
      Node(_, node) {
        // yaml sets `tag` only on nodes tagged in the source.
        if ((isScalar(node) || isMap(node) || isSeq(node)) && node.tag)
          problems.push(
            `YAML tag ${node.tag}${where(tagStart(text, node.range?.[0]))} is not supported: write a plain value`,
          );
      },
    });
  }
  if (problems.length) throw new ConfigError(source, [...new Set(problems)]);
  return doc.toJS({ maxAliasCount: 100 });
}

/** tagStart: where the `!` of the tag before a node's value is (the node's range starts after it). */
function tagStart(text: string, valueStart: number | undefined): number | undefined {
  if (valueStart === undefined) return undefined;
  const lineStart = text.lastIndexOf('\n', valueStart - 1) + 1;
  const m = /!\S*\s*$/.exec(text.slice(lineStart, valueStart));
  return m ? lineStart + m.index : valueStart;
}

/** firstInvalidUtf8: the offset where the first malformed UTF-8 sequence starts. */
function firstInvalidUtf8(bytes: Buffer): number {
  for (let i = 0; i < bytes.length;) {
    const b = bytes[i]!;
    const n =
      b < 0x80
        ? 0
        : b >= 0xc2 && b <= 0xdf
          ? 1
          : b >= 0xe0 && b <= 0xef
            ? 2
            : b >= 0xf0 && b <= 0xf4
              ? 3
              : -1;
    if (n < 0) return i;
    for (let k = 1; k <= n; k++) if (((bytes[i + k] ?? 0) & 0xc0) !== 0x80) return i;
    i += n + 1;
  }
  return bytes.length;
}
