/**
 * makeDiscovery builds the agent's Discovery from its config: mDNS on the configured interfaces
 * (when enabled) merged with the static seed peers, which always count, so a site still forms
 * where the Wi-Fi filters multicast.
 */
import { AGENT_VERSION } from '../agent.ts';
import type { AgentConfig } from '../config.ts';
import { CompositeDiscovery, StaticSeedDiscovery, type Advertisement, type Discovery } from './discovery.ts';
import { MdnsDiscovery } from './mdns.ts';

export function makeDiscovery(
  config: AgentConfig,
  port: number,
  onWarning: (message: string, err?: unknown) => void,
): Discovery {
  const advertisement: Advertisement = {
    siteId: config.site.id,
    nodeId: config.node.id,
    agentVersion: AGENT_VERSION,
    role: 'starting',
    term: 0,
    port,
    serverCapable: config.node.serverCapable,
  };
  const seeds = new StaticSeedDiscovery({
    self: { siteId: config.site.id, nodeId: config.node.id },
    seeds: config.network.seeds.map((s) => ({
      nodeId: s.node,
      host: s.host,
      port: s.port,
      serverCapable: config.voters.includes(s.node),
    })),
    onListenerError: (err) => onWarning('seed discovery listener failed', err),
  });
  if (!config.network.mdns) return seeds;
  const mdns = new MdnsDiscovery({
    advertisement,
    interfaces: config.network.interfaces,
    // The robots the config names keep their own part of the cache: forged peers cannot crowd them out.
    members: [...new Set([...config.voters, ...config.network.seeds.map((s) => s.node)])],
    onWarning,
  });
  return new CompositeDiscovery([mdns, seeds], {
    onListenerError: (err) => onWarning('discovery listener failed', err),
  });
}
