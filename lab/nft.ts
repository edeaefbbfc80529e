/**
 * Network faults on the lab's "Wi-Fi" as nftables rules on the bridge (this kernel has no netem:
 * loss is `numgen random`). renderNftRuleset is pure: the lab keeps the network fault state and
 * replaces the whole table from it on every change, atomically (`nft -f`), so the table always
 * says exactly which faults are in force. Delay and reordering live in the in-process simulator.
 */
import type { Fault } from './faults.ts';

export interface LabNetState {
  /** Loss from one robot to another, 0..1; `all` on either side. */
  readonly drops: readonly { readonly from: string; readonly to: string; readonly rate: number }[];
  readonly cuts: readonly (readonly [string, string])[];
  readonly partition: readonly (readonly string[])[] | null;
  /** Every frame between robots is lost (a burst). */
  readonly blackout: boolean;
}

export const EMPTY_NET: LabNetState = { drops: [], cuts: [], partition: null, blackout: false };

/** nftTableName is the lab's table: one per lab, named after its prefix so leak checks find it. */
export function nftTableName(prefix: string): string {
  return `${prefix.replace(/[^a-zA-Z0-9]/g, '_')}faults`;
}

/** applyNetFault returns the network state after a network fault (other faults leave it alone). */
export function applyNetFault(state: LabNetState, f: Fault): LabNetState {
  switch (f.kind) {
    case 'drop': {
      const drops = state.drops.filter((d) => !(d.from === f.from && d.to === f.to));
      return { ...state, drops: f.rate > 0 ? [...drops, { from: f.from, to: f.to, rate: f.rate }] : drops };
    }
    case 'cut':
      return { ...state, cuts: [...state.cuts, [f.a, f.b] as const] };
    case 'partition':
      return { ...state, partition: f.groups };
    case 'heal':
      return EMPTY_NET;
    default:
      return state;
  }
}

/** The lab applies loss in whole percents (numgen random mod 100). */
export function lossPercent(rate: number): number {
  return Math.round(rate * 100);
}

const set = (names: readonly string[]) =>
  names.length === 1 ? `"${names[0]}"` : `{ ${names.map((n) => `"${n}"`).join(', ')} }`;

/**
 * renderNftRuleset renders the table for `state`; `veth` maps a robot name to its bridge port.
 * Traffic to and from the host's own bridge address (status polling) is never touched: the bridge
 * forward hook sees only frames between robots.
 */
export function renderNftRuleset(
  table: string,
  state: LabNetState,
  veth: Readonly<Record<string, string>>,
): string {
  const robots = Object.keys(veth).sort();
  const ports = (t: string) => (t === 'all' ? robots.map((r) => veth[r]!) : [veth[t] ?? `unknown-${t}`]);
  // Bridge-family rules see every bridge on the machine: first let through every frame that does
  // not enter from one of this lab's ports, so a rule can never touch another lab or bridge.
  const rules: string[] = [`iifname != ${set(robots.map((r) => veth[r]!))} accept`];
  if (state.blackout) rules.push('drop');
  for (const [a, b] of state.cuts) {
    rules.push(`iifname ${set(ports(a))} oifname ${set(ports(b))} drop`);
    rules.push(`iifname ${set(ports(b))} oifname ${set(ports(a))} drop`);
  }
  if (state.partition) {
    const groups = state.partition.map((g) => g.flatMap(ports));
    groups.forEach((g, i) =>
      groups.forEach((h, j) => {
        if (i !== j) rules.push(`iifname ${set(g)} oifname ${set(h)} drop`);
      }),
    );
  }
  for (const d of state.drops) {
    const pct = lossPercent(d.rate);
    const from = d.from === 'all' ? '' : `iifname ${set(ports(d.from))} `;
    const to = d.to === 'all' ? '' : `oifname ${set(ports(d.to))} `;
    // nftables refuses `mod 100 < 100` (its range is 0-99): all loss is a plain drop.
    rules.push(pct >= 100 ? `${from}${to}drop` : `${from}${to}numgen random mod 100 < ${pct} drop`);
  }
  return [
    `table bridge ${table}`,
    `delete table bridge ${table}`,
    `table bridge ${table} {`,
    '  chain forward {',
    '    type filter hook forward priority 0; policy accept;',
    ...rules.map((r) => `    ${r}`),
    '  }',
    '}',
    '',
  ].join('\n');
}
