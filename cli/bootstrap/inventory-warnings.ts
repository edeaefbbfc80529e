/**
 * inventoryWarnings: what in a valid inventory is allowed but almost surely not meant, for
 * `inventory validate` and the bootstrap commands to say before they go on. Pure.
 */
import { PROBE_PORT } from './multicast-probe.ts';
import type { Inventory } from './inventory.ts';

const MDNS_PORT = 5353;

export function inventoryWarnings(inv: Inventory): string[] {
  const out: string[] = [];
  const port = inv.discovery.port;
  if (port === MDNS_PORT)
    out.push(
      `discovery.port: ${port} is mDNS's own port, which discovery listens on too: the election datagrams would land among the mDNS traffic; keep the default 7946`,
    );
  if (port === PROBE_PORT)
    out.push(
      `discovery.port: ${port} is the port bootstrap's multicast probe uses, which then finds it taken on a running robot; keep the default 7946`,
    );
  if (inv.profile === 'test')
    out.push(
      'profile: test is for tests on one machine (elections within tens of milliseconds): on Wi-Fi robots it makes the site re-elect on every delay; use fleet (or lab)',
    );
  return out;
}
