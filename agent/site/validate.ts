/**
 * Cross-field checks of a site spec that the schema cannot express, run before anything is rendered
 * or applied. Whereabouts silently ignores a bad range_start, a start outside the range and a gateway
 * inside the pool (docs/site.md, "Whereabouts validation"), so edgectl refuses them here, with the
 * field path and the fix. Pure: no I/O.
 */
import { isIPv6 } from 'node:net';
import {
  cidrContains,
  cidrsOverlap,
  cidrWithin,
  countOutside,
  formatCidr,
  formatIpv4,
  lastAddress,
  parseCidr,
  parseIpv4,
  usableSpan,
  type Cidr,
} from './ipv4.ts';
import type { PeerRule, SiteNetwork, SiteSpec } from './spec.ts';

export interface Problem {
  /** The field at fault, like `networks[1].rangeStart`. */
  readonly path: string;
  /** What is wrong and how to fix it. */
  readonly message: string;
}

export interface ReservedRange {
  readonly cidr: string;
  readonly why: string;
}

/** A robot's own address (the inventory's robots[].address), which no site network may hand out. */
export interface ManagementAddress {
  readonly robot: string;
  readonly address: string;
}

export interface ValidateOptions {
  /** Blocks no site network may overlap. Default: k3s's pod and service CIDRs. */
  readonly reserved?: readonly ReservedRange[];
  /**
   * What the inventory knows of the robots' management side, on top of the spec's own
   * `management`: each robot's wifiInterface and address (names that are not IPv4 addresses are
   * not checked).
   */
  readonly management?: {
    readonly interfaces: readonly string[];
    readonly addresses: readonly ManagementAddress[];
  };
}

export const K3S_RESERVED: readonly ReservedRange[] = [
  { cidr: '10.42.0.0/16', why: "k3s's pod network (cluster-cidr)" },
  { cidr: '10.43.0.0/16', why: "k3s's service network (service-cidr)" },
];

/**
 * Blocks no site network may use, whatever the cluster: their addresses cannot be a pod's on a
 * shared segment (RFC 6890's special-purpose blocks that hosts and routers treat specially).
 */
export const SPECIAL_RANGES: readonly ReservedRange[] = [
  { cidr: '0.0.0.0/8', why: 'the "this network" block (0.0.0.0/8), which no host may use' },
  { cidr: '127.0.0.0/8', why: 'the loopback block (127.0.0.0/8): its packets never leave a host' },
  {
    cidr: '169.254.0.0/16',
    why: 'the link-local block (169.254.0.0/16): routers never forward it, and hosts give it to cloud metadata and zeroconf',
  },
  {
    cidr: '224.0.0.0/4',
    why: 'the multicast block (224.0.0.0/4): an address there names a group, not a host',
  },
  { cidr: '240.0.0.0/4', why: 'the reserved block (240.0.0.0/4), with the broadcast address' },
];

/** The namespaces a site must not claim: edgectl labels, and would prune inside, its namespace. */
const SYSTEM_NAMESPACES = new Set(['default', 'kube-system', 'kube-public', 'kube-node-lease']);

/** The modes each CNI plugin accepts (cni.dev plugin reference). */
const MODES: Record<SiteNetwork['type'], readonly string[]> = {
  ipvlan: ['l2', 'l3', 'l3s'],
  macvlan: ['bridge', 'private', 'vepa', 'passthru'],
};

export function validateSiteSpec(spec: SiteSpec, opts: ValidateOptions = {}): Problem[] {
  const problems: Problem[] = [];
  const ns = spec.namespace.name;
  if (ns !== undefined && (SYSTEM_NAMESPACES.has(ns) || ns.startsWith('kube-')))
    problems.push({
      path: 'namespace.name',
      message: `${ns} is a system namespace: leave namespace.name out (site-${spec.id}) or pick a namespace of the site's own`,
    });
  problems.push(...validateCron(spec.whereabouts.reconcilerCron, 'whereabouts.reconcilerCron'));
  problems.push(...validateLimits(spec));
  problems.push(...validateServerLimits(spec));
  spec.networkPolicy.egress.forEach((r, i) =>
    problems.push(...validatePeerRule(r, `networkPolicy.egress[${i}]`)),
  );
  spec.networkPolicy.ingress.forEach((r, i) =>
    problems.push(...validatePeerRule(r, `networkPolicy.ingress[${i}]`)),
  );
  problems.push(...validateNetworks(spec.networks, opts.reserved ?? K3S_RESERVED));
  problems.push(...validateManagement(spec, opts.management));
  return problems;
}

// ---------------------------------------------------------------------------------------------
// Keeping site networks off the robots' management side

/**
 * validateManagement keeps every site network off the robots' own LAN unless the network says
 * otherwise: its `master` must not be a management NIC (the spec's management.interfaces and the
 * inventory's wifiInterfaces) unless `sharesManagementLan` is set, and, either way, its pool (the
 * addresses Whereabouts may hand out: rangeStart..rangeEnd less the excludes) must contain no
 * address of management.cidrs and no robot's own address.
 */
export function validateManagement(spec: SiteSpec, known: ValidateOptions['management']): Problem[] {
  const problems: Problem[] = [];
  const interfaces = new Set([...spec.management.interfaces, ...(known?.interfaces ?? [])]);
  const blocks: { cidr: Cidr; what: string }[] = [];
  spec.management.cidrs.forEach((text, i) => {
    const r = parseCidr(text);
    if (!r.ok) problems.push({ path: `management.cidrs[${i}]`, message: describeCidrError(text, r) });
    else blocks.push({ cidr: r.cidr, what: `management.cidrs[${i}] ${text}` });
  });
  for (const a of known?.addresses ?? []) {
    const ip = parseIpv4(a.address);
    if (ip !== null)
      blocks.push({ cidr: { network: ip, prefix: 32 }, what: `${a.robot}'s address ${a.address}` });
  }
  spec.networks.forEach((n, i) => {
    const at = `networks[${i}]`;
    if (interfaces.has(n.master) && !n.sharesManagementLan)
      problems.push({
        path: `${at}.master`,
        message: `${n.master} is a management NIC of the robots: pods on ${n.name} would share the robots' own LAN and reach their agents, SSH, k3s and kubelet; put the network on its own NIC or VLAN (like ${n.master}.50), or set sharesManagementLan: true to accept that`,
      });
    const pool = poolOf(n);
    if (!pool) return;
    for (const b of blocks) {
      const first = Math.max(pool.start, b.cidr.network);
      const last = Math.min(pool.end, lastAddress(b.cidr));
      if (first <= last && countOutside({ first, last }, pool.excludes) > 0)
        problems.push({
          path: `${at}.range`,
          message: `the pool ${formatIpv4(pool.start)}-${formatIpv4(pool.end)} would hand out ${b.what}, a robot management address: add "${formatCidr(b.cidr)}" to exclude, or move the pool off it`,
        });
    }
  });
  return problems;
}

/** poolOf is a network's pool, or null when its fields do not parse (validateNetwork reports that). */
function poolOf(n: SiteNetwork): { start: number; end: number; excludes: Cidr[] } | null {
  const r = parseCidr(n.range);
  if (!r.ok) return null;
  const usable = usableSpan(r.cidr);
  if (!usable) return null;
  const start = n.rangeStart === undefined ? usable.first : parseIpv4(n.rangeStart);
  const end = n.rangeEnd === undefined ? usable.last : parseIpv4(n.rangeEnd);
  if (start === null || end === null || start > end) return null;
  const excludes: Cidr[] = [];
  for (const e of n.exclude) {
    const c = parseExclude(e);
    if (c.ok) excludes.push(c.cidr);
  }
  return { start, end, excludes };
}

// ---------------------------------------------------------------------------------------------
// Whereabouts networks

/** A network's addresses, resolved; null fields did not parse (a problem was reported for them). */
interface ResolvedNetwork {
  readonly range: Cidr | null;
}

export function validateNetworks(
  networks: readonly SiteNetwork[],
  reserved: readonly ReservedRange[] = K3S_RESERVED,
): Problem[] {
  const problems: Problem[] = [];
  const resolved: ResolvedNetwork[] = networks.map((n, i) => {
    const r = validateNetwork(n, `networks[${i}]`, reserved);
    problems.push(...r.problems);
    return { range: r.range };
  });
  const byName = new Map<string, number>();
  networks.forEach((n, i) => {
    const first = byName.get(n.name);
    if (first !== undefined)
      problems.push({
        path: `networks[${i}].name`,
        message: `${n.name} is also the name of networks[${first}]: give every network its own name`,
      });
    else byName.set(n.name, i);
  });
  for (let i = 0; i < resolved.length; i++) {
    for (let j = 0; j < i; j++) {
      const a = resolved[j]!.range;
      const b = resolved[i]!.range;
      if (a && b && cidrsOverlap(a, b))
        problems.push({
          path: `networks[${i}].range`,
          message: `${formatCidr(b)} overlaps networks[${j}].range ${formatCidr(a)}: two segments on the same robots would hand out the same addresses; give each network its own block`,
        });
    }
  }
  return problems;
}

function describeCidrError(text: string, r: Exclude<ReturnType<typeof parseCidr>, { ok: true }>): string {
  if (r.reason === 'host-bits')
    return `"${text}" has host bits set: write ${formatIpv4(r.network!)}/${r.prefix} (the block it means), or fix the prefix`;
  if (r.reason === 'prefix') return `"${text}" has a prefix over 32: an IPv4 prefix is 0-32`;
  return `"${text}" is not an IPv4 CIDR: write it like 192.168.50.0/24`;
}

function validateNetwork(
  n: SiteNetwork,
  at: string,
  reserved: readonly ReservedRange[],
): { problems: Problem[]; range: Cidr | null } {
  const problems: Problem[] = [];
  const push = (field: string, message: string) => problems.push({ path: `${at}.${field}`, message });

  if (n.mode !== undefined && !MODES[n.type].includes(n.mode))
    push('mode', `${n.type} has no mode ${n.mode}: use one of ${MODES[n.type].join(', ')}`);

  const parsed = parseCidr(n.range);
  if (!parsed.ok) {
    push('range', describeCidrError(n.range, parsed));
    return { problems, range: null };
  }
  const range = parsed.cidr;
  const usable = usableSpan(range);
  if (!usable) {
    push('range', `${n.range} has no address to hand out (a /31 or /32): use a /30 or wider block`);
    return { problems, range };
  }
  for (const r of reserved) {
    const rc = parseCidr(r.cidr);
    if (rc.ok && cidrsOverlap(range, rc.cidr))
      push('range', `${n.range} overlaps ${r.cidr}, ${r.why}: pick a block outside it`);
  }
  for (const r of SPECIAL_RANGES) {
    const rc = parseCidr(r.cidr);
    if (rc.ok && cidrsOverlap(range, rc.cidr))
      push('range', `${n.range} overlaps ${r.why}: pick a private block, like 192.168.50.0/24`);
  }

  const bound = (field: 'rangeStart' | 'rangeEnd', fallback: number): number | null => {
    const text = n[field];
    if (text === undefined) return fallback;
    const ip = parseIpv4(text);
    if (ip === null) {
      push(field, `"${text}" is not an IPv4 address: write it like 192.168.50.20`);
      return null;
    }
    if (!cidrContains(range, ip)) {
      push(
        field,
        `${text} is outside range ${n.range} (Whereabouts would ignore it and use the whole range): use an address from ${formatIpv4(usable.first)} to ${formatIpv4(usable.last)}`,
      );
      return null;
    }
    if (ip < usable.first || ip > usable.last) {
      push(
        field,
        `${text} is the ${ip === range.network ? 'network' : 'broadcast'} address of ${n.range}: use an address from ${formatIpv4(usable.first)} to ${formatIpv4(usable.last)}`,
      );
      return null;
    }
    return ip;
  };
  const start = bound('rangeStart', usable.first);
  const end = bound('rangeEnd', usable.last);
  if (start !== null && end !== null && start > end)
    push(
      'rangeEnd',
      `rangeEnd ${formatIpv4(end)} is before rangeStart ${formatIpv4(start)} (Whereabouts would ignore both): swap them`,
    );

  const excludes: Cidr[] = [];
  n.exclude.forEach((text, j) => {
    const field = `exclude[${j}]`;
    const c = parseExclude(text);
    if (!c.ok) {
      push(field, c.message);
      return;
    }
    if (!cidrWithin(c.cidr, range)) {
      push(
        field,
        cidrsOverlap(c.cidr, range)
          ? `${text} reaches outside range ${n.range}: exclude only addresses inside it`
          : `${text} is outside range ${n.range}, so it excludes nothing: remove it or fix the address`,
      );
      return;
    }
    excludes.push(c.cidr);
  });

  if (n.gateway !== undefined) {
    const gw = parseIpv4(n.gateway);
    if (gw === null) push('gateway', `"${n.gateway}" is not an IPv4 address: write it like 192.168.50.1`);
    else if (!cidrContains(range, gw))
      push('gateway', `${n.gateway} is outside range ${n.range}: a gateway must be on the segment`);
    else if (gw === range.network || gw === lastAddress(range))
      push('gateway', `${n.gateway} is the network or broadcast address of ${n.range}: use a host address`);
    else if (
      start !== null &&
      end !== null &&
      gw >= start &&
      gw <= end &&
      !excludes.some((e) => cidrContains(e, gw))
    )
      push(
        'gateway',
        `${n.gateway} is inside the pool ${formatIpv4(start)}-${formatIpv4(end)}, and Whereabouts would hand it to a pod: add "${n.gateway}" to exclude, or start the pool after it with rangeStart`,
      );
  }

  if (
    start !== null &&
    end !== null &&
    start <= end &&
    countOutside({ first: start, last: end }, excludes) === 0
  )
    push(
      'exclude',
      `the excludes cover the whole pool ${formatIpv4(start)}-${formatIpv4(end)}: leave addresses to hand out`,
    );

  return { problems, range };
}

/**
 * poolContains: Whereabouts may hand `address` to a pod of network `n` (it is in the pool and no
 * exclude covers it). False when the network does not parse (validateNetwork reports that).
 */
export function poolContains(n: SiteNetwork, address: number): boolean {
  const parsed = parseCidr(n.range);
  if (!parsed.ok) return false;
  const usable = usableSpan(parsed.cidr);
  if (!usable) return false;
  const start = n.rangeStart === undefined ? usable.first : parseIpv4(n.rangeStart);
  const end = n.rangeEnd === undefined ? usable.last : parseIpv4(n.rangeEnd);
  if (start === null || end === null || address < start || address > end) return false;
  return !n.exclude.some((e) => {
    const c = parseExclude(e);
    return c.ok && cidrContains(c.cidr, address);
  });
}

/** parseExclude reads an exclude entry: a bare address (a /32, as Whereabouts reads it) or a block. */
export function parseExclude(text: string): { ok: true; cidr: Cidr } | { ok: false; message: string } {
  if (!text.includes('/')) {
    const ip = parseIpv4(text);
    return ip === null
      ? {
          ok: false,
          message: `"${text}" is not an IPv4 address or CIDR: write 192.168.50.1 or 192.168.50.0/28`,
        }
      : { ok: true, cidr: { network: ip, prefix: 32 } };
  }
  const r = parseCidr(text);
  return r.ok ? r : { ok: false, message: describeCidrError(text, r) };
}

// ---------------------------------------------------------------------------------------------
// NetworkPolicy peers

/** validatePolicyCidr accepts an IPv4 block (network address only) or an IPv6 block. */
function validatePolicyCidr(text: string): { ok: true; v4: Cidr | null } | { ok: false; message: string } {
  if (text.includes(':')) {
    const [addr, prefix, extra] = text.split('/');
    const ok =
      extra === undefined &&
      addr !== undefined &&
      isIPv6(addr) &&
      prefix !== undefined &&
      /^[0-9]{1,3}$/.test(prefix) &&
      Number(prefix) <= 128;
    return ok
      ? { ok: true, v4: null }
      : { ok: false, message: `"${text}" is not an IPv6 CIDR like fd00::/64` };
  }
  const r = parseCidr(text);
  return r.ok ? { ok: true, v4: r.cidr } : { ok: false, message: describeCidrError(text, r) };
}

function validatePeerRule(rule: PeerRule, at: string): Problem[] {
  const problems: Problem[] = [];
  const blocks: Cidr[] = [];
  rule.cidrs.forEach((text, i) => {
    const r = validatePolicyCidr(text);
    if (!r.ok) problems.push({ path: `${at}.cidrs[${i}]`, message: r.message });
    else if (r.v4) blocks.push(r.v4);
  });
  rule.except.forEach((text, i) => {
    const r = validatePolicyCidr(text);
    if (!r.ok) problems.push({ path: `${at}.except[${i}]`, message: r.message });
    else if (r.v4 && !blocks.some((b) => cidrWithin(r.v4!, b)))
      problems.push({
        path: `${at}.except[${i}]`,
        message: `${text} is not inside any of cidrs (the API server requires it): fix it or remove it`,
      });
  });
  rule.ports.forEach((p, i) => {
    // A named port is an IANA service name to the API server: a letter at least, no `--`, no dash
    // at either end.
    if (typeof p.port === 'string' && (!/[a-z]/.test(p.port) || /--|^-|-$/.test(p.port)))
      problems.push({
        path: `${at}.ports[${i}].port`,
        message: `"${p.port}" is not a port name the API server accepts (a letter at least, no -- and no dash at either end): give a number or a container port's name, like http`,
      });
    if (p.endPort === undefined) return;
    if (typeof p.port !== 'number')
      problems.push({
        path: `${at}.ports[${i}].endPort`,
        message: 'endPort needs a numeric port: give port as a number or drop endPort',
      });
    else if (p.endPort < p.port)
      problems.push({
        path: `${at}.ports[${i}].endPort`,
        message: `endPort ${p.endPort} is below port ${p.port}: the range runs from port to endPort`,
      });
  });
  return problems;
}

// ---------------------------------------------------------------------------------------------
// LimitRange

const SUFFIX: Record<string, number> = {
  '': 1,
  m: 1e-3,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};

/** quantityValue reads a Kubernetes quantity as a number (cores or bytes), for comparisons only. */
export function quantityValue(q: string): number {
  const m = /^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))([eE][+-]?[0-9]+|[a-zA-Z]*)$/.exec(q);
  if (!m) return Number.NaN;
  const [, num, suffix] = m;
  if (suffix && /^[eE]/.test(suffix)) return Number(`${num}${suffix}`);
  return Number(num) * (SUFFIX[suffix ?? ''] ?? Number.NaN);
}

function validateLimits(spec: SiteSpec): Problem[] {
  const c = spec.limits.container;
  // Each pair must satisfy lower <= upper, or the API server rejects the LimitRange.
  const pairs: [keyof typeof c, keyof typeof c][] = [
    ['min', 'defaultRequest'],
    ['defaultRequest', 'default'],
    ['default', 'max'],
    ['min', 'max'],
  ];
  const problems: Problem[] = [];
  for (const [lo, hi] of pairs) {
    const low = c[lo];
    const high = c[hi];
    if (!low || !high) continue;
    for (const [res, lowQ] of Object.entries(low)) {
      const highQ = (high as Record<string, string>)[res];
      if (highQ !== undefined && quantityValue(lowQ) > quantityValue(highQ))
        problems.push({
          path: `limits.container.${hi}.${res}`,
          message: `${highQ} is below limits.container.${lo}.${res} (${lowQ}): raise ${hi} or lower ${lo}`,
        });
    }
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------
// What the API server refuses (k8s.io/kubernetes pkg/apis/core/validation): checked here so that
// validation, not the leader's first apply, says so.

/** The quota resources without a `/` that the API server accepts (plus hugepages-<size>). */
const STANDARD_QUOTA_RESOURCES = new Set([
  'cpu',
  'memory',
  'ephemeral-storage',
  'requests.cpu',
  'requests.memory',
  'requests.storage',
  'requests.ephemeral-storage',
  'limits.cpu',
  'limits.memory',
  'limits.ephemeral-storage',
  'pods',
  'services',
  'replicationcontrollers',
  'resourcequotas',
  'secrets',
  'configmaps',
  'persistentvolumeclaims',
  'services.nodeports',
  'services.loadbalancers',
]);

/** Resources counted in whole objects: a fraction of one is refused. */
const INTEGER_RESOURCES = new Set([
  'pods',
  'services',
  'replicationcontrollers',
  'resourcequotas',
  'secrets',
  'configmaps',
  'persistentvolumeclaims',
  'services.nodeports',
  'services.loadbalancers',
]);

/** Every annotation of an object together, in bytes (TotalAnnotationSizeLimitB). */
export const MAX_ANNOTATIONS_BYTES = 256 * 1024;

const QUALIFIED_NAME =
  /^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** An extended resource (vendor.example/gpu) is counted in whole units, like an integer resource. */
function isIntegerResource(name: string): boolean {
  if (INTEGER_RESOURCES.has(name)) return true;
  if (!name.includes('/') || name.startsWith('requests.')) return false;
  const prefix = name.slice(0, name.indexOf('/'));
  return !(prefix === 'kubernetes.io' || prefix.endsWith('.kubernetes.io'));
}

function quantityProblems(path: string, resource: string, q: string): Problem[] {
  const v = quantityValue(q);
  if (v < 0) return [{ path, message: `${q} is negative: a quantity must be 0 or more` }];
  if (isIntegerResource(resource) && !Number.isInteger(Math.round(v * 1000) / 1000))
    return [{ path, message: `${q} is not a whole number: ${resource} counts whole objects` }];
  return [];
}

function validateServerLimits(spec: SiteSpec): Problem[] {
  const problems: Problem[] = [];
  for (const [resource, q] of Object.entries(spec.quota.hard)) {
    const path = `quota.hard.${resource}`;
    if (!resource.includes('/')) {
      if (!STANDARD_QUOTA_RESOURCES.has(resource) && !/^(requests\.)?hugepages-/.test(resource)) {
        const near = resource.replace(/^request\./, 'requests.').replace(/^limit\./, 'limits.');
        problems.push({
          path,
          message: `${resource} is not a resource the API server knows for a quota: ${
            STANDARD_QUOTA_RESOURCES.has(near)
              ? `did you mean ${near}?`
              : `use one of ${[...STANDARD_QUOTA_RESOURCES].join(', ')}, or count/<resource>.<group>`
          }`,
        });
        continue;
      }
    } else if (!QUALIFIED_NAME.test(resource)) {
      problems.push({
        path,
        message: `${resource} is not a qualified resource name: write <prefix>/<name>, like count/deployments.apps`,
      });
      continue;
    }
    problems.push(...quantityProblems(path, resource, q));
  }
  spec.operators.serviceAccounts.forEach((sa, i) => {
    const [ns = '', name = ''] = sa.split('/');
    if (!DNS_LABEL.test(ns) || !DNS_SUBDOMAIN.test(name))
      problems.push({
        path: `operators.serviceAccounts[${i}]`,
        message: `"${sa}" is not <namespace>/<name> as the API server takes them (a namespace is a DNS label, a name a DNS subdomain: lower-case letters, digits, - and ., starting and ending with a letter or digit)`,
      });
  });
  const c = spec.limits.container;
  for (const k of ['default', 'defaultRequest', 'max', 'min'] as const)
    for (const [resource, q] of Object.entries(c[k] ?? {}))
      problems.push(...quantityProblems(`limits.container.${k}.${resource}`, resource, q as string));
  if (spec.name !== undefined) {
    const bytes = Buffer.byteLength('edgectl.io/site-name') + Buffer.byteLength(spec.name);
    if (bytes > MAX_ANNOTATIONS_BYTES)
      problems.push({
        path: 'name',
        message: `${Buffer.byteLength(spec.name)} bytes: it becomes the namespace's edgectl.io/site-name annotation, and the API server refuses annotations over ${MAX_ANNOTATIONS_BYTES} bytes in all: shorten it`,
      });
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------
// Cron

const CRON_FIELDS = [
  { name: 'minute', min: 0, max: 59 },
  { name: 'hour', min: 0, max: 23 },
  { name: 'day of month', min: 1, max: 31 },
  { name: 'month', min: 1, max: 12 },
  { name: 'day of week', min: 0, max: 7 },
] as const;

const NAMES: Record<string, number> = {
  jan: 1, feb: 2, mar: 3, apr: 4, may: 5, jun: 6, jul: 7, aug: 8, sep: 9, oct: 10, nov: 11, dec: 12,
  sun: 0, mon: 1, tue: 2, wed: 3, thu: 4, fri: 5, sat: 6,
}; // prettier-ignore

/** cronField expands one field to the set of values it matches, or null if it does not parse. */
export function cronField(text: string, min: number, max: number): Set<number> | null {
  const out = new Set<number>();
  const value = (t: string): number | null => {
    const v = /^[0-9]{1,2}$/.test(t) ? Number(t) : NAMES[t.toLowerCase()];
    return v === undefined || v < min || v > max ? null : v;
  };
  for (const item of text.split(',')) {
    const m = /^(\*|[0-9a-zA-Z]+(?:-[0-9a-zA-Z]+)?)(?:\/([0-9]{1,2}))?$/.exec(item);
    if (!m) return null;
    const step = m[2] === undefined ? 1 : Number(m[2]);
    if (step < 1) return null;
    let lo = min;
    let hi = max;
    if (m[1] !== '*') {
      const [a, b] = m[1]!.split('-');
      const va = value(a!);
      const vb = b === undefined ? (m[2] === undefined ? va : max) : value(b);
      if (va === null || vb === null || vb < va) return null;
      lo = va;
      hi = vb;
    }
    for (let v = lo; v <= hi; v += step) out.add(v);
  }
  return out;
}

/**
 * validateCron checks a 5-field cron expression and that it runs more than once a day: the reconciler
 * is the backstop that frees IPs held by pods that are gone, and Whereabouts' daily default is what
 * this setting exists to shorten.
 */
export function validateCron(expr: string, path: string): Problem[] {
  const fields = expr.trim().split(/\s+/);
  if (fields.length !== 5)
    return [
      {
        path,
        message: `"${expr}" has ${fields.length} fields: write a 5-field cron expression (minute hour day-of-month month day-of-week), like */5 * * * *`,
      },
    ];
  const sets: Set<number>[] = [];
  const problems: Problem[] = [];
  CRON_FIELDS.forEach((f, i) => {
    const s = cronField(fields[i]!, f.min, f.max);
    if (!s)
      problems.push({
        path,
        message: `the ${f.name} field "${fields[i]}" is not valid (${f.min}-${f.max}, *, */n, a-b, lists)`,
      });
    else sets.push(s);
  });
  if (problems.length) return problems;
  const everyDay = fields[2] === '*' && fields[3] === '*' && fields[4] === '*';
  if (!everyDay || sets[0]!.size * sets[1]!.size < 2)
    problems.push({
      path,
      message: `"${expr}" runs once a day or less, so a dead robot's IPs stay held until then: run it several times a day, like */5 * * * *`,
    });
  return problems;
}
