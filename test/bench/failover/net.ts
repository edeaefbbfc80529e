/**
 * Loss and bursts on a bridge, for the loss schedule of the failover benchmark. The edgectl lab
 * has its own (applyLabFault); the etcd site gets the same rules, rendered by the lab's own
 * renderNftRuleset into a table of its own (`bridge <prefix>faults`), loaded atomically with
 * `nft -f` and deleted afterwards. Only frames between robots are touched: the host's polling
 * goes to the bridge's own address and never crosses the forward hook.
 */
import { execFileSync } from 'node:child_process';
import type { NetnsSite } from '../../../lab/netns.ts';
import {
  applyNetFault,
  EMPTY_NET,
  nftTableName,
  renderNftRuleset,
  type LabNetState,
} from '../../../lab/nft.ts';
import { sleep } from './system.ts';

/** NetFaults is one bridge's loss and bursts. */
export interface NetFaults {
  readonly name: string;
  /** setLoss drops this fraction (0..1) of the frames between any two robots. */
  setLoss(rate: number): Promise<void>;
  /** burst drops every frame between robots for `ms`, on top of the loss. */
  burst(ms: number): Promise<void>;
  /** heal removes every rule. */
  heal(): Promise<void>;
}

/** BridgeFaults keeps the fault state of a netns site's bridge and loads it as one nft table. */
export class BridgeFaults implements NetFaults {
  readonly name: string;
  readonly table: string;
  private readonly veth: Readonly<Record<string, string>>;
  private state: LabNetState = EMPTY_NET;

  constructor(site: NetnsSite) {
    this.name = site.bridge;
    this.table = nftTableName(site.prefix);
    this.veth = Object.fromEntries(site.robots.map((r) => [r.name, r.veth]));
  }

  private load(): void {
    execFileSync('nft', ['-f', '-'], { input: renderNftRuleset(this.table, this.state, this.veth) });
  }

  async setLoss(rate: number): Promise<void> {
    this.state = applyNetFault(this.state, { kind: 'drop', from: 'all', to: 'all', rate });
    this.load();
  }

  async burst(ms: number): Promise<void> {
    this.state = { ...this.state, blackout: true };
    this.load();
    await sleep(ms);
    this.state = { ...this.state, blackout: false };
    this.load();
  }

  async heal(): Promise<void> {
    this.state = EMPTY_NET;
    this.load();
  }

  /** remove deletes the table (the clean-up). */
  remove(): void {
    try {
      execFileSync('nft', ['delete', 'table', 'bridge', this.table], { stdio: 'ignore' });
    } catch {
      // no table: nothing to remove
    }
  }
}
