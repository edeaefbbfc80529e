/**
 * A small runner for data-driven test files in the format of github.com/cockroachdb/datadriven, as
 * etcd-io/raft uses for its `testdata/*.txt` interaction tests:
 *
 *   # Comment lines (and blank lines) may precede a command.
 *   command arg key=value
 *   ----
 *   expected output
 *   (a blank line ends the block)
 *
 * Lines between the command and `----` are the command's input (unused by edgectl's harness, kept
 * for fidelity). An expected output that itself contains blank lines is written between two double
 * separators:
 *
 *   command
 *   ----
 *   ----
 *   output with
 *
 *   a blank line
 *   ----
 *   ----
 *
 * Rewrite mode (env `UPDATE_GOLDEN=1`, or `--rewrite` in argv) runs every command and writes the
 * actual outputs back into the file, keeping comments and layout: review the diff before committing.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { relative } from 'node:path';

export interface CmdArg {
  /** The token before `=`, or the whole token for a positional argument. */
  readonly key: string;
  /** The text after `=`, or null for a positional argument. */
  readonly value: string | null;
}

export interface TestCase {
  /** The file, relative to the working directory. */
  readonly file: string;
  /** 1-based line of the command. */
  readonly line: number;
  /** The command line as written. */
  readonly raw: string;
  readonly cmd: string;
  readonly args: readonly CmdArg[];
  /** Lines between the command and `----`, joined with newlines ('' when none). */
  readonly input: string;
  readonly expected: string;
}

/** A handler runs one command and returns what it printed. It throws on a malformed command. */
export type Handler = (tc: TestCase) => string;

interface Block {
  readonly tc: TestCase;
  /** Index (0-based) of the first `----` line. */
  readonly sepStart: number;
  /** Index one past the last line belonging to the block's expected output (and closing separators). */
  readonly end: number;
}

export interface ParsedFile {
  readonly lines: readonly string[];
  readonly blocks: readonly Block[];
}

const SEP = '----';

export class DataDrivenError extends Error {
  constructor(message: string, opts?: { cause?: unknown }) {
    super(message, opts);
    this.name = 'DataDrivenError';
  }
}

function tokenize(line: string): { cmd: string; args: CmdArg[] } {
  const tokens = line.trim().split(/\s+/);
  const cmd = tokens[0]!;
  const args = tokens.slice(1).map((t): CmdArg => {
    const eq = t.indexOf('=');
    return eq <= 0 ? { key: t, value: null } : { key: t.slice(0, eq), value: t.slice(eq + 1) };
  });
  return { cmd, args };
}

/** parseDataDriven splits a file's text into command blocks; it throws on a malformed file. */
export function parseDataDriven(file: string, text: string): ParsedFile {
  const lines = text.replace(/\r\n/g, '\n').split('\n');
  const blocks: Block[] = [];
  const n = lines.length;
  let i = 0;
  while (i < n) {
    const line = lines[i]!;
    if (line.trim() === '' || line.startsWith('#')) {
      i++;
      continue;
    }
    const cmdLine = i;
    i++;
    const input: string[] = [];
    while (i < n && lines[i] !== SEP) {
      if (lines[i]!.trim() === '') {
        throw new DataDrivenError(
          `${file}:${cmdLine + 1}: command "${line}" has no "${SEP}" line before the blank line ${i + 1}`,
        );
      }
      input.push(lines[i]!);
      i++;
    }
    if (i >= n) throw new DataDrivenError(`${file}:${cmdLine + 1}: command "${line}" has no "${SEP}" line`);
    const sepStart = i;
    i++;
    const out: string[] = [];
    if (i < n && lines[i] === SEP) {
      // Double-separator form: the output runs to the next `----` `----` pair and may hold blank lines.
      i++;
      while (i < n && !(lines[i] === SEP && lines[i + 1] === SEP)) out.push(lines[i++]!);
      if (i >= n)
        throw new DataDrivenError(`${file}:${cmdLine + 1}: unterminated "${SEP}/${SEP}" output block`);
      i += 2;
    } else {
      while (i < n && lines[i]!.trim() !== '') out.push(lines[i++]!);
    }
    const { cmd, args } = tokenize(line);
    blocks.push({
      tc: {
        file,
        line: cmdLine + 1,
        raw: line.trim(),
        cmd,
        args,
        input: input.join('\n'),
        expected: out.join('\n'),
      },
      sepStart,
      end: i,
    });
  }
  return { lines, blocks };
}

/** rewriteRequested: UPDATE_GOLDEN=1 in the environment, or --rewrite on the command line. */
export function rewriteRequested(): boolean {
  return process.env.UPDATE_GOLDEN === '1' || process.argv.includes('--rewrite');
}

export const REWRITE_HINT = 'run UPDATE_GOLDEN=1 npm run test:scenario and review the diff';

/** normalize drops trailing whitespace of each line and trailing blank lines. */
function normalize(s: string): string {
  return s
    .split('\n')
    .map((l) => l.replace(/\s+$/, ''))
    .join('\n')
    .replace(/\n+$/, '');
}

/** lineDiff is a plain LCS line diff: `  ` common, `- ` expected only, `+ ` actual only. */
export function lineDiff(expected: string, actual: string): string[] {
  const a = expected === '' ? [] : expected.split('\n');
  const b = actual === '' ? [] : actual.split('\n');
  const lcs: number[][] = Array.from({ length: a.length + 1 }, () => new Array<number>(b.length + 1).fill(0));
  for (let i = a.length - 1; i >= 0; i--) {
    for (let j = b.length - 1; j >= 0; j--) {
      lcs[i]![j] = a[i] === b[j] ? lcs[i + 1]![j + 1]! + 1 : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!);
    }
  }
  const out: string[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    if (a[i] === b[j]) {
      out.push(`  ${a[i]}`);
      i++;
      j++;
    } else if (lcs[i + 1]![j]! >= lcs[i]![j + 1]!) out.push(`- ${a[i++]}`);
    else out.push(`+ ${b[j++]}`);
  }
  while (i < a.length) out.push(`- ${a[i++]}`);
  while (j < b.length) out.push(`+ ${b[j++]}`);
  return out;
}

const indent = (s: string): string =>
  s === ''
    ? '    (empty)'
    : s
        .split('\n')
        .map((l) => `    ${l}`)
        .join('\n');

export function mismatchMessage(tc: TestCase, actual: string): string {
  return [
    `${tc.file}:${tc.line}: output of "${tc.raw}" does not match the golden`,
    'expected:',
    indent(tc.expected),
    'actual:',
    indent(actual),
    'diff (- expected, + actual):',
    ...lineDiff(tc.expected, actual).map((l) => `    ${l}`),
    REWRITE_HINT,
  ].join('\n');
}

function formatOutput(output: string): string[] {
  if (output === '') return [SEP];
  const lines = output.split('\n');
  // A blank line would end the block early: use the double-separator form.
  if (lines.some((l) => l.trim() === '')) return [SEP, SEP, ...lines, SEP, SEP];
  return [SEP, ...lines];
}

export interface RunResult {
  readonly commands: number;
  /** Set in rewrite mode when the file changed. */
  readonly rewritten: boolean;
}

/**
 * runDataDriven runs every command of `path` through one handler (a fresh environment per file:
 * commands in a file build on each other) and compares each output with the golden. It throws at the
 * first mismatch; in rewrite mode it records the actual outputs and writes the file back instead.
 */
export function runDataDriven(path: string, handler: Handler, opts: { rewrite?: boolean } = {}): RunResult {
  const rewrite = opts.rewrite ?? rewriteRequested();
  const file = relative(process.cwd(), path) || path;
  const text = readFileSync(path, 'utf8');
  const parsed = parseDataDriven(file, text);
  const outLines: string[] = [];
  let cursor = 0;
  for (const b of parsed.blocks) {
    let actual: string;
    try {
      actual = normalize(handler(b.tc));
    } catch (err) {
      const msg = err instanceof Error ? err.message : String(err);
      throw new DataDrivenError(`${file}:${b.tc.line}: command "${b.tc.raw}" failed: ${msg}`, { cause: err });
    }
    if (rewrite) {
      outLines.push(...parsed.lines.slice(cursor, b.sepStart), ...formatOutput(actual));
      cursor = b.end;
    } else if (actual !== normalize(b.tc.expected)) {
      throw new DataDrivenError(mismatchMessage(b.tc, actual));
    }
  }
  if (!rewrite) return { commands: parsed.blocks.length, rewritten: false };
  outLines.push(...parsed.lines.slice(cursor));
  const next = outLines.join('\n');
  if (next === text) return { commands: parsed.blocks.length, rewritten: false };
  writeFileSync(path, next);
  return { commands: parsed.blocks.length, rewritten: true };
}
