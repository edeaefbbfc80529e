/**
 * The site spec: what the leader applies to its control plane on every new epoch (the per-site
 * namespace and its isolation, and the site's secondary networks). It is part of the inventory
 * (site.yaml, `edgectl bootstrap site`) and is installed on every server-capable robot.
 *
 * Skeleton: the site issue (#5) owns and completes this file.
 */
import { z } from 'zod';

const dnsLabel = z
  .string()
  .regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, 'must be a DNS label: lower-case letters, digits, dashes');

export const siteNetworkSchema = z
  .object({
    name: dnsLabel,
    /** ipvlan L2 by default: macvlan does not work over most Wi-Fi, and L2 keeps multicast (DDS). */
    type: z.enum(['ipvlan', 'macvlan']).default('ipvlan'),
    /** The robot's NIC the secondary network rides on (the Wi-Fi interface). */
    master: z.string().min(1).default('wlan0'),
    range: z.string().min(1),
    rangeStart: z.string().optional(),
    rangeEnd: z.string().optional(),
    gateway: z.string().optional(),
    exclude: z.array(z.string()).default([]),
  })
  .strict();

export const siteSpecSchema = z
  .object({
    id: dnsLabel,
    name: z.string().optional(),
    namespace: z
      .object({
        name: dnsLabel.optional(),
        podSecurity: z.enum(['privileged', 'baseline', 'restricted']).default('baseline'),
      })
      .passthrough()
      .default({ podSecurity: 'baseline' }),
    networks: z.array(siteNetworkSchema).default([]),
  })
  .passthrough();

export type SiteSpecInput = z.input<typeof siteSpecSchema>;
export type SiteSpec = z.output<typeof siteSpecSchema>;
