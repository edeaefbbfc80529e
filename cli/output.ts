/**
 * Output for people and for machines. Every command takes `--output table|json`: tables are for
 * reading, JSON is a stable contract for scripts. Progress and errors go to stderr, results to stdout.
 */
export type OutputFormat = 'table' | 'json';
export const OUTPUT_FORMATS: readonly OutputFormat[] = ['table', 'json'];

/** A terminal that takes escape sequences, for progress redrawn in place. */
export interface LiveStream {
  write(s: string): unknown;
  readonly columns?: number;
}

export interface Io {
  out(text: string): void;
  err(text: string): void;
  /**
   * Where live progress may be redrawn in place, or null/absent for plain lines on err: a pipe, a
   * file, `NO_COLOR`, `TERM=dumb` and `--quiet` get no escape sequences at all.
   */
  readonly live?: LiveStream | null;
}

// Control characters that make a terminal do something rather than show something: C0 except tab
// and newline (ESC starts every escape sequence, CR overwrites a line), DEL, C1 (CSI on its own) and
// the bidirectional overrides that reorder what is shown. Text from input files, robots and agents
// reaches the terminal through here.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;

/**
 * escapeControl shows control characters as `\u001b`-style escapes, so input cannot drive the
 * terminal it is printed on. The escapes are JSON's own, so JSON output stays valid JSON.
 */
export function escapeControl(text: string): string {
  return text.replace(CONTROL, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** wantsLiveOutput: the environment lets us redraw in place (no-color.org; TERM=dumb). */
export function wantsLiveOutput(env: NodeJS.ProcessEnv = process.env): boolean {
  return !(env.NO_COLOR ?? '') && env.TERM !== 'dumb';
}

// A reader that went away (`edgectl … | head -1`) is not an error: stop writing to it and let the
// command finish, rather than die of EPIPE in the middle of its work.
let stdoutGone = false;
let stdoutWatched = false;
function writeStdout(text: string): void {
  if (!stdoutWatched) {
    stdoutWatched = true;
    process.stdout.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code !== 'EPIPE') throw e;
      stdoutGone = true;
    });
  }
  if (!stdoutGone) process.stdout.write(text);
}

const line = (t: string) => escapeControl(t.endsWith('\n') ? t : `${t}\n`);

export const processIo: Io = {
  out: (t) => writeStdout(line(t)),
  err: (t) => process.stderr.write(line(t)),
  get live() {
    return process.stderr.isTTY && wantsLiveOutput() ? process.stderr : null;
  },
};

/** table renders rows as aligned columns with a header. */
export function table(headers: readonly string[], rows: readonly (readonly (string | number)[])[]): string {
  const cells = [headers, ...rows.map((r) => r.map(String))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells
    .map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  '))
    .join('\n');
}

/** seconds formats milliseconds as seconds with 3 decimals, or a dash. */
export function seconds(ms: number | null | undefined): string {
  return ms === null || ms === undefined ? '-' : `${(ms / 1000).toFixed(3)}s`;
}
