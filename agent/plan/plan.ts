/**
 * A plan is what edgectl would do to a machine, as data: renderers build plans (pure, golden
 * tested), `--dry-run` prints them, and only an executor running them through a CommandRunner
 * (agent/exec/runner.ts) touches anything. Every step is idempotent, or carries a check that tells
 * whether it is already done, so a re-run changes nothing and an interrupted run resumes.
 */
export type PlanStep =
  | {
      readonly kind: 'writeFile';
      readonly id: string;
      readonly description: string;
      readonly path: string;
      readonly mode: number;
      readonly owner?: string;
      readonly content: string;
      /** Secret content: plans print a digest instead of the content. */
      readonly secret?: boolean;
    }
  | {
      readonly kind: 'upload';
      readonly id: string;
      readonly description: string;
      readonly localPath: string;
      readonly path: string;
      readonly mode: number;
      readonly sha256: string;
    }
  | {
      readonly kind: 'run';
      readonly id: string;
      readonly description: string;
      readonly argv: readonly string[];
      readonly sudo?: boolean;
      /** If this argv exits 0, the step is already done and is skipped. */
      readonly unless?: readonly string[];
      readonly timeoutMs?: number;
    }
  | {
      readonly kind: 'remove';
      readonly id: string;
      readonly description: string;
      readonly path: string;
      readonly recursive?: boolean;
    }
  | {
      readonly kind: 'systemd';
      readonly id: string;
      readonly description: string;
      readonly action: 'daemon-reload' | 'enable-now' | 'start' | 'restart' | 'stop' | 'disable-now';
      readonly unit?: string;
    };

export interface Plan {
  /** The machine this plan is for: a robot name, or "local". */
  readonly target: string;
  readonly steps: readonly PlanStep[];
}
