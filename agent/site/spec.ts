/**
 * The site spec: what the leader applies to its control plane on every new epoch (the per-site
 * namespace and its isolation, and the site's secondary networks). It is part of the inventory
 * (site.yaml, `edgectl bootstrap site`) and is installed on every server-capable robot.
 * templates/site/site.example.yaml is a commented example; docs/site.md describes every field.
 *
 * Parsing has two layers, like agent/config.ts: the zod schema (shape, defaults), then
 * validateSiteSpec (agent/site/validate.ts: Whereabouts ranges, CIDRs, cron, cross-field rules).
 * parseSiteSpec runs both and reports every problem at once in one ConfigError.
 */
import { readYamlFile } from '../input-file.ts';
import { z } from 'zod';
import { ConfigError } from '../errors.ts';
import { interfaceNameProblem } from '../interface-name.ts';
import { remapIndexes, salvage, salvageEach } from '../partial-parse.ts';
import { validateSiteSpec, type ValidateOptions } from './validate.ts';

const dnsLabel = z
  .string()
  .regex(
    /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/,
    'must be a DNS label: lower-case letters, digits and dashes, 1-63 characters',
  );

/** A site id becomes part of the namespace (`site-<id>`), so it leaves room for the prefix. */
const siteId = dnsLabel.max(58, 'must be at most 58 characters (the namespace is site-<id>)');

/** A Kubernetes resource quantity: 500m, 2, 1.5, 512Mi, 4Gi, 1e3. */
const quantity = z
  .string()
  .regex(
    /^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?[0-9]+)?$/,
    'must be a Kubernetes quantity, like 500m, 2, 512Mi or 4Gi (quote it in YAML)',
  );

const podSecurityLevel = z.enum(['privileged', 'baseline', 'restricted']);

/**
 * Pod Security Admission labels on the namespace. `enforce` rejects pods; `warn` and `audit` only
 * report, so they default one level stricter to show what `restricted` would break.
 */
const podSecuritySchema = z
  .object({
    /** baseline forbids hostNetwork/hostPID/privileged; the Multus secondary network needs none of them. */
    enforce: podSecurityLevel.default('baseline'),
    warn: podSecurityLevel.default('restricted'),
    audit: podSecurityLevel.default('restricted'),
    /** `latest`, or `v1.<minor>` to pin the policy to one Kubernetes release. */
    version: z
      .string()
      .regex(/^(latest|v1\.[0-9]+)$/, 'must be latest or v1.<minor>, like v1.33')
      .default('latest'),
  })
  .strict();

const portSchema = z
  .object({
    /** A number (1-65535) or a named container port. */
    port: z.union([z.number().int().min(1).max(65535), z.string().regex(/^[a-z0-9-]{1,15}$/)]),
    protocol: z.enum(['TCP', 'UDP', 'SCTP']).default('TCP'),
    /** The last port of a range starting at `port` (numbers only). */
    endPort: z.number().int().min(1).max(65535).optional(),
  })
  .strict();

/** An extra NetworkPolicy rule: traffic to (egress) or from (ingress) these CIDRs, on these ports. */
const peerRuleSchema = z
  .object({
    cidrs: z.array(z.string()).min(1),
    /** Sub-blocks of the CIDRs to leave out (NetworkPolicy ipBlock.except). */
    except: z.array(z.string()).default([]),
    /** No ports: every port. */
    ports: z.array(portSchema).default([]),
  })
  .strict();

const networkPolicySchema = z
  .object({
    /** Deny all ingress and egress that no other policy allows. */
    defaultDeny: z.boolean().default(true),
    /** Allow every pod in the namespace to reach every other one. */
    allowSameNamespace: z.boolean().default(true),
    /** Allow DNS (UDP and TCP 53) to CoreDNS (k8s-app=kube-dns in kube-system). */
    allowDnsEgress: z.boolean().default(true),
    egress: z.array(peerRuleSchema).default([]),
    ingress: z.array(peerRuleSchema).default([]),
  })
  .strict();

const resourceList = z.record(
  z
    .string()
    // The API server's own rules (validate.ts) say which names it knows; hugepages-2Mi has capitals.
    .regex(
      /^[A-Za-z0-9]([A-Za-z0-9._/-]*[A-Za-z0-9])?$/,
      'must be a resource name, like requests.cpu or count/pods',
    ),
  quantity,
);

const computeResource = z.enum(['cpu', 'memory', 'ephemeral-storage']);

const limitsSchema = z
  .object({
    /** Per container. `default` fills limits and `defaultRequest` fills requests a pod leaves out. */
    container: z
      .object({
        default: z.partialRecord(computeResource, quantity).optional(),
        defaultRequest: z.partialRecord(computeResource, quantity).optional(),
        max: z.partialRecord(computeResource, quantity).optional(),
        min: z.partialRecord(computeResource, quantity).optional(),
      })
      .strict()
      .prefault({
        default: { cpu: '500m', memory: '512Mi' },
        defaultRequest: { cpu: '100m', memory: '128Mi' },
      }),
  })
  .strict();

const operatorsSchema = z
  .object({
    /** Users (as the API server authenticates them) bound to the site-operator Role. */
    users: z.array(z.string().min(1)).default([]),
    /** Groups bound to the site-operator Role. Default: `<namespace>-operators`. */
    groups: z.array(z.string().min(1)).optional(),
    /** ServiceAccounts as `namespace/name`, for automation (CI, GitOps). */
    serviceAccounts: z
      .array(z.string().regex(/^[a-z0-9-]{1,63}\/[a-z0-9.-]{1,253}$/, 'must be namespace/name'))
      .default([]),
    /**
     * NetworkAttachmentDefinitions: `read` only. edgectl owns them, and a NAD writer could rewrite a
     * site network onto any host NIC (`master`) and any range, past the site's admission policy:
     * add a network to the site spec instead.
     */
    networkAttachments: z
      .string()
      .refine(
        (v) => v === 'read',
        'only read is offered: a NAD writer could put pods on any host NIC, past the site network policy; add the network to the site spec (networks[]) instead',
      )
      .default('read'),
  })
  .strict();

/** A Linux interface name, as the kernel accepts it (agent/interface-name.ts). */
const interfaceName = z.string().superRefine((s, ctx) => {
  const p = interfaceNameProblem(s);
  if (p) ctx.addIssue({ code: 'custom', message: p });
});

export const siteNetworkSchema = z
  .object({
    /** The NetworkAttachmentDefinition's name; pods ask for it in k8s.v1.cni.cncf.io/networks. */
    name: dnsLabel,
    /** ipvlan L2 by default: macvlan does not work over most Wi-Fi, and L2 keeps multicast (DDS). */
    type: z.enum(['ipvlan', 'macvlan']).default('ipvlan'),
    /** ipvlan: l2 (keeps multicast); l3/l3s drop multicast and broadcast. macvlan: bridge. */
    mode: z.enum(['l2', 'l3', 'l3s', 'bridge', 'private', 'vepa', 'passthru']).optional(),
    /**
     * The robot's NIC (or VLAN interface, like wlan0.50) the network rides on, same name on every
     * robot. No default: it must not be a management interface (management.interfaces, and each
     * robot's wifiInterface in the inventory) unless sharesManagementLan says so.
     */
    master: z
      .string({
        error: (iss) =>
          iss.input === undefined
            ? "missing: name the robots' NIC or VLAN interface for this network (like eth1 or wlan0.50), not their management NIC"
            : undefined,
      })
      .pipe(interfaceName),
    /**
     * true: this network rides a management NIC, so its pods share the robots' own LAN and can
     * reach what listens there (docs/site.md, "What protects what"). Its pool must still leave out
     * every management address.
     */
    sharesManagementLan: z.boolean().default(false),
    /** IPv4 CIDR of the segment, network address only, like 192.168.50.0/24. */
    range: z.string().min(1),
    /** First and last address Whereabouts may hand out; default: the whole range minus network/broadcast. */
    rangeStart: z.string().optional(),
    rangeEnd: z.string().optional(),
    /** The segment's router, if any. Must not be in the pool unless excluded. */
    gateway: z.string().optional(),
    /** Addresses (a.b.c.d) or blocks (a.b.c.d/n) inside the range that Whereabouts never hands out. */
    exclude: z.array(z.string()).default([]),
    mtu: z.number().int().min(576).max(9000).optional(),
  })
  .strict();

const whereaboutsSchema = z
  .object({
    /**
     * When the ip-reconciler frees IPs of pods that are gone (5-field cron, UTC). Whereabouts' default
     * is daily (30 4 * * *); a robot that dies holds its IPs until then, so we run it every 5 minutes.
     */
    reconcilerCron: z.string().default('*/5 * * * *'),
    /** Where Whereabouts runs and keeps its IPPools (the namespace of its DaemonSet). */
    namespace: dnsLabel.default('kube-system'),
  })
  .strict();

/** A container image reference: [registry/]name[:tag][@digest]. */
const imageRef = z
  .string()
  .regex(
    /^[a-z0-9][a-z0-9._/-]*(:[A-Za-z0-9_][A-Za-z0-9._-]{0,127})?(@sha256:[a-f0-9]{64})?$/,
    'must be an image reference, like registry.example/multus:v4.2.2',
  );

/**
 * The images the addons (templates/site) run, in place of the pinned ones in the templates: for
 * robots whose image cache holds other builds (the lab imports images it builds itself). An image
 * must already be on every robot (tags other than `latest` are never pulled when present).
 */
const addonsSchema = z
  .object({
    images: z
      .object({
        /** The Multus DaemonSet's container (thin_entrypoint and the multus binary). */
        multus: imageRef.optional(),
        /** The Multus DaemonSet's init container that installs the reference CNI plugins. */
        cniPlugins: imageRef.optional(),
        /** The Whereabouts DaemonSet (install scripts, whereabouts binary, ip-control-loop). */
        whereabouts: imageRef.optional(),
      })
      .strict()
      .prefault({}),
  })
  .strict();

/**
 * The robots' management side: the NICs and subnets their own addresses live on, where the agents
 * (UDP 7946, status 7947-7948), mDNS (5353), k3s (6443), the kubelet (10250) and SSH listen. Site
 * networks are kept off it by validation (validate.ts validateManagement).
 */
const managementSchema = z
  .object({
    /** NICs that carry the robots' own addresses. The inventory adds each robot's wifiInterface. */
    interfaces: z.array(interfaceName).default(['wlan0']),
    /** Blocks holding the robots' own addresses: no site network's pool may hand one out. */
    cidrs: z.array(z.string()).default([]),
  })
  .strict();

const nodeLossSchema = z
  .object({
    /**
     * The grace period: how long a worker must be unheard (and called dead by membership) before the
     * leader acts. Bootstrap writes it into every agent's config as membership.lostAfterMs, which
     * the agent enforces. At least 10 s: the default time membership takes to call a robot dead.
     * Kubernetes alone waits 40 s (node-monitor-grace-period) + 300 s (default toleration).
     */
    graceSeconds: z.number().int().min(10).max(3600).default(60),
    /**
     * taint: node.kubernetes.io/out-of-service:NoExecute, so pods are force-deleted and reschedule,
     * and the Node (and its identity) stay for the robot's return. delete: remove the Node object.
     */
    action: z.enum(['taint', 'delete']).default('taint'),
  })
  .strict();

export const siteSpecSchema = z
  .object({
    id: siteId,
    /** A display name for people. */
    name: z.string().optional(),
    namespace: z
      .object({
        /** Default: `site-<id>`. */
        name: dnsLabel.optional(),
        /** A level (`restricted`) sets `enforce` only; an object sets each mode. */
        podSecurity: z
          .preprocess((v) => (typeof v === 'string' ? { enforce: v } : v), podSecuritySchema)
          .prefault({}),
      })
      .strict()
      .prefault({}),
    quota: z
      .object({
        /** ResourceQuota spec.hard. Empty: no ResourceQuota. */
        hard: resourceList.default({
          pods: '100',
          'requests.cpu': '8',
          'requests.memory': '16Gi',
          'limits.cpu': '16',
          'limits.memory': '32Gi',
          persistentvolumeclaims: '20',
        }),
      })
      .strict()
      .prefault({}),
    limits: limitsSchema.prefault({}),
    networkPolicy: networkPolicySchema.prefault({}),
    operators: operatorsSchema.prefault({}),
    management: managementSchema.prefault({}),
    networks: z.array(siteNetworkSchema).default([]),
    whereabouts: whereaboutsSchema.prefault({}),
    /** Unset (the usual case): the templates' pinned images. */
    addons: addonsSchema.optional(),
    nodeLoss: nodeLossSchema.prefault({}),
  })
  .strict();

export type SiteSpecInput = z.input<typeof siteSpecSchema>;
export type SiteSpec = z.output<typeof siteSpecSchema>;
export type SiteNetwork = z.output<typeof siteNetworkSchema>;
export type AddonImages = NonNullable<z.output<typeof addonsSchema>>['images'];
export type PeerRule = z.output<typeof peerRuleSchema>;

export { siteNamespace } from './spec-names.ts';

function formatPath(path: readonly PropertyKey[]): string {
  return (
    path.reduce<string>(
      (acc, p) => (typeof p === 'number' ? `${acc}[${p}]` : acc ? `${acc}.${String(p)}` : String(p)),
      '',
    ) || '(top level)'
  );
}

/**
 * parseSiteSpec checks a parsed YAML/JSON value and returns the spec with defaults filled in, or
 * throws a ConfigError listing every problem (schema and Whereabouts/CIDR rules). `source` names the
 * file in messages; when the spec sits inside a larger document, `pathPrefix` (like `site`) is put
 * in front of every field path.
 */
export function parseSiteSpec(
  input: unknown,
  source = 'site spec',
  opts: ValidateOptions & { pathPrefix?: string } = {},
): SiteSpec {
  const prefix = (p: string) =>
    opts.pathPrefix ? (p === '(top level)' ? opts.pathPrefix : `${opts.pathPrefix}.${p}`) : p;
  const parsed = siteSpecSchema.safeParse(input);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => {
      const where = prefix(formatPath(i.path));
      if (i.code === 'unrecognized_keys')
        return `${where}: unknown field(s) ${i.keys.join(', ')}: remove or fix the spelling`;
      if (i.code === 'invalid_type' && /received undefined/.test(i.message))
        return `${where}: missing: add it (${i.message})`;
      return `${where}: ${i.message}`;
    });
    // The later checks still run on what parsed, so one run shows every problem.
    const partial = salvageSiteSpec(input);
    if (partial)
      problems.push(
        ...remapIndexes(
          validateSiteSpec(partial.spec, opts).map((p) => `${p.path}: ${p.message}`),
          'networks',
          partial.networkIndex,
        ).map((p) => prefix(p)),
      );
    throw new ConfigError(source, problems);
  }
  const problems = validateSiteSpec(parsed.data, opts).map((p) => `${prefix(p.path)}: ${p.message}`);
  if (problems.length) throw new ConfigError(source, problems);
  return parsed.data;
}

/**
 * salvageSiteSpec is the part of a spec that failed its schema that can still be checked: the
 * refused fields removed (defaults in their place), and every network that parses on its own.
 */
export function salvageSiteSpec(input: unknown): { spec: SiteSpec; networkIndex: number[] } | null {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) return null;
  const nets = salvageEach(siteNetworkSchema, (input as { networks?: unknown }).networks);
  const spec = salvage(siteSpecSchema, { ...input, networks: nets.items });
  return spec && { spec, networkIndex: nets.origIndex };
}

/**
 * loadSiteSpec reads a YAML (or JSON) file and parses it with parseSiteSpec. With `acceptInventory`
 * an inventory (site.yaml, with `robots:`) is read too: its `site:` section is the spec.
 */
export function loadSiteSpec(
  path: string,
  opts: ValidateOptions & { acceptInventory?: boolean } = {},
): SiteSpec {
  const raw = readYamlFile(path, {
    missingHint: 'start from templates/site/site.example.yaml, or pass -f <path>',
  });
  if (isInventory(raw)) {
    if (opts.acceptInventory) return parseSiteSpec(raw.site, path, { ...opts, pathPrefix: 'site' });
    throw new ConfigError(path, ['this is an inventory (it has robots:), not a site spec'], {
      hint: 'pass the site spec file, or the inventory to a command that takes one',
    });
  }
  return parseSiteSpec(raw, path, opts);
}

/** An inventory has `robots:` and the site spec under `site:`. */
function isInventory(raw: unknown): raw is { site: unknown; robots: unknown } {
  return raw !== null && typeof raw === 'object' && 'robots' in raw && 'site' in raw;
}
