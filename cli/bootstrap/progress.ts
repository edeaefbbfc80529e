/**
 * Progress of an apply, as one stream of events (the executor emits them, apply.ts), and the three
 * ways to show it: a live per-robot task list on a terminal, plain lines in CI and logs, NDJSON
 * under --output json. The formatting is pure (formatEvent, TaskList); the renderers only write.
 */
import type { PlanKind } from './plan.ts';
import { escapeControl } from '../output.ts';

export type StepOutcome =
  /** The step changed the robot. */
  | 'changed'
  /** The robot already was as the step wants it (checked on the robot). */
  | 'unchanged'
  /** A read-only check passed. */
  | 'ok'
  /** Recorded as done with this exact content in an earlier run: not even checked. */
  | 'done-before'
  /** Runs only when an earlier step changed something, and none did. */
  | 'not-needed';

export interface FailureReport {
  readonly step: string;
  readonly description: string;
  readonly code: string;
  readonly message: string;
  readonly hint?: string | undefined;
  /** The last lines of the failing command's stderr. */
  readonly stderr: string;
  /** Commands to look or fix by hand, then the edgectl command that resumes at this step. */
  readonly recover: readonly string[];
}

/** `at` is milliseconds since the apply started (from the injected clock). */
export type ProgressEvent =
  | {
      readonly type: 'apply.start';
      readonly at: number;
      readonly kind: PlanKind;
      readonly site: string;
      readonly robots: readonly { readonly name: string; readonly steps: number }[];
    }
  | { readonly type: 'robot.start'; readonly at: number; readonly robot: string }
  | { readonly type: 'robot.connected'; readonly at: number; readonly robot: string; readonly runner: string }
  | {
      readonly type: 'step.start';
      readonly at: number;
      readonly robot: string;
      readonly step: string;
      readonly description: string;
      readonly index: number;
      readonly total: number;
    }
  | {
      readonly type: 'step.output';
      readonly at: number;
      readonly robot: string;
      readonly step: string;
      readonly stream: 'stdout' | 'stderr';
      readonly line: string;
    }
  | {
      readonly type: 'step.end';
      readonly at: number;
      readonly robot: string;
      readonly step: string;
      readonly description: string;
      readonly index: number;
      readonly total: number;
      readonly outcome: StepOutcome;
    }
  | {
      readonly type: 'robot.failed';
      readonly at: number;
      readonly robot: string;
      readonly failure: FailureReport;
    }
  | {
      readonly type: 'robot.done';
      readonly at: number;
      readonly robot: string;
      readonly outcomes: Readonly<Record<StepOutcome, number>>;
    }
  | {
      readonly type: 'apply.end';
      readonly at: number;
      readonly ok: readonly string[];
      readonly failed: readonly string[];
    };

const secs = (ms: number) => `${(ms / 1000).toFixed(1)}s`;

/** formatEvent is one plain line for an event, or null for events plain output leaves out. */
export function formatEvent(e: ProgressEvent): string | null {
  switch (e.type) {
    case 'apply.start':
      return `${e.kind} site ${e.site}: ${e.robots.length} robot(s)`;
    case 'robot.start':
      return `[${e.robot}] connecting`;
    case 'robot.connected':
      return `[${e.robot}] connected`;
    case 'step.start':
    case 'step.output':
      return null;
    case 'step.end':
      return `[${e.robot}] ${e.index}/${e.total} ${e.step}: ${e.outcome}`;
    case 'robot.failed':
      return `[${e.robot}] FAILED at ${e.failure.step}: ${e.failure.message}`;
    case 'robot.done': {
      const o = e.outcomes;
      return `[${e.robot}] done in ${secs(e.at)}: ${o.changed} changed, ${o.unchanged + o.ok} unchanged or checked, ${o['done-before'] + o['not-needed']} skipped`;
    }
    case 'apply.end':
      return `${e.ok.length} robot(s) done, ${e.failed.length} failed${e.failed.length ? `: ${e.failed.join(', ')}` : ''}`;
  }
}

type Row = {
  status: 'waiting' | 'connecting' | 'running' | 'done' | 'failed';
  text: string;
  index: number;
  total: number;
};

/** TaskList is the live view's state: one row per robot. Pure. */
export class TaskList {
  private readonly rows = new Map<string, Row>();
  private header = '';

  apply(e: ProgressEvent): void {
    const row = 'robot' in e ? this.rows.get(e.robot) : undefined;
    switch (e.type) {
      case 'apply.start':
        this.header = `${e.kind} site ${e.site}`;
        for (const r of e.robots)
          this.rows.set(r.name, { status: 'waiting', text: '', index: 0, total: r.steps });
        return;
      case 'robot.start':
        if (row) Object.assign(row, { status: 'connecting', text: 'connecting' });
        return;
      case 'robot.connected':
        if (row) Object.assign(row, { status: 'running', text: 'connected' });
        return;
      case 'step.start':
        if (row) Object.assign(row, { index: e.index, text: `${e.step}: ${e.description}` });
        return;
      case 'step.end':
        if (row) row.index = e.index;
        return;
      case 'robot.failed':
        if (row)
          Object.assign(row, { status: 'failed', text: `failed at ${e.failure.step}: ${e.failure.message}` });
        return;
      case 'robot.done':
        if (row)
          Object.assign(row, { status: 'done', index: row.total, text: `${e.outcomes.changed} changed` });
        return;
      default:
        return;
    }
  }

  /** lines renders the list, each line cut to `width` columns. */
  lines(width = 100): string[] {
    const mark = { waiting: '·', connecting: '…', running: '▶', done: '✔', failed: '✖' } as const;
    const nameW = Math.max(0, ...[...this.rows.keys()].map((n) => n.length));
    const out = [this.header];
    for (const [name, r] of this.rows) {
      const line = escapeControl(
        `${mark[r.status]} ${name.padEnd(nameW)}  ${String(r.index).padStart(2)}/${r.total}  ${r.text}`,
      );
      out.push(line.length > width ? `${line.slice(0, width - 1)}…` : line);
    }
    return out;
  }
}

export interface ProgressRenderer {
  event(e: ProgressEvent): void;
  /** Called once after the last event. */
  end(): void;
}

/** NDJSON: one event per line, for machines (--output json). */
export function ndjsonRenderer(write: (line: string) => void): ProgressRenderer {
  return { event: (e) => write(JSON.stringify(e)), end: () => {} };
}

/** Plain lines, for CI logs and pipes. */
export function plainRenderer(write: (line: string) => void): ProgressRenderer {
  return {
    event: (e) => {
      const l = formatEvent(e);
      if (l !== null) write(l);
    },
    end: () => {},
  };
}

/** The live task list, redrawn in place on a terminal (ANSI cursor-up and erase-line). */
export function ttyRenderer(stream: { write(s: string): unknown; columns?: number }): ProgressRenderer {
  const list = new TaskList();
  let drawn = 0;
  const draw = () => {
    const lines = list.lines(Math.max(40, (stream.columns ?? 100) - 1));
    stream.write(`${drawn ? `\x1b[${drawn}F` : ''}${lines.map((l) => `\x1b[2K${l}`).join('\n')}\n`);
    drawn = lines.length;
  };
  return {
    event: (e) => {
      if (e.type === 'step.output') return;
      list.apply(e);
      draw();
    },
    end: () => {},
  };
}
