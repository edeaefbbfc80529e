/**
 * renderSite turns a validated site spec into the ordered list of Kubernetes objects the leader
 * applies on every epoch. Pure: the same spec and epoch always give the same objects, in the same
 * order (the order they are applied in: the Namespace first). docs/site.md describes each object.
 */
import { cidrContains, cidrWithin, formatCidr, parseCidr, parseIpv4, type Cidr } from './ipv4.ts';
import { edgectlLabels, type KubeObject } from './objects.ts';
import type { PeerRule, SiteNetwork, SiteSpec } from './spec.ts';
import { siteNamespace } from './spec-names.ts';
import { parseExclude } from './validate.ts';

/** k3s's CNI paths (docs.k3s.io/networking/multus-ipams). */
export const K3S_CNI_CONF_DIR = '/var/lib/rancher/k3s/agent/etc/cni/net.d';
export const K3S_CNI_BIN_DIR = '/var/lib/rancher/k3s/data/cni';
/** Whereabouts only searches /etc/cni/net.d for its flat file: on k3s every NAD must point at it. */
export const WHEREABOUTS_CONFIGURATION_PATH = `${K3S_CNI_CONF_DIR}/whereabouts.d/whereabouts.conf`;
export const WHEREABOUTS_KUBECONFIG = `${K3S_CNI_CONF_DIR}/whereabouts.d/whereabouts.kubeconfig`;
/** Where the Whereabouts DaemonSet (templates/site/whereabouts.yaml) runs and keeps its IPPools. */
export const WHEREABOUTS_NAMESPACE = 'kube-system';
export const CNI_VERSION = '1.0.0';

export interface RenderOptions {
  /** The control-plane epoch that applies this render; every object carries it as a label. */
  readonly epoch: number;
}

export function renderSite(spec: SiteSpec, opts: RenderOptions): KubeObject[] {
  const ns = siteNamespace(spec);
  const labels = () => edgectlLabels(spec.id, opts.epoch, 'site');
  const meta = (name: string, namespace: string | undefined = ns) => ({
    name,
    ...(namespace === undefined ? {} : { namespace }),
    labels: labels(),
  });
  const out: KubeObject[] = [];

  const psa = spec.namespace.podSecurity;
  out.push({
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: {
      name: ns,
      labels: {
        ...labels(),
        'pod-security.kubernetes.io/enforce': psa.enforce,
        'pod-security.kubernetes.io/enforce-version': psa.version,
        'pod-security.kubernetes.io/warn': psa.warn,
        'pod-security.kubernetes.io/warn-version': psa.version,
        'pod-security.kubernetes.io/audit': psa.audit,
        'pod-security.kubernetes.io/audit-version': psa.version,
      },
      ...(spec.name ? { annotations: { 'edgectl.io/site-name': spec.name } } : {}),
    },
  });

  out.push(...renderAdmissionPolicy(spec, ns, labels()));
  out.push(...renderNetworkPolicies(spec, meta));

  if (Object.keys(spec.quota.hard).length)
    out.push({
      apiVersion: 'v1',
      kind: 'ResourceQuota',
      metadata: meta('site-quota'),
      spec: { hard: sortedRecord(spec.quota.hard) },
    });

  const c = spec.limits.container;
  const limit: Record<string, unknown> = { type: 'Container' };
  for (const k of ['default', 'defaultRequest', 'max', 'min'] as const) {
    const v = c[k];
    if (v && Object.keys(v).length) limit[k] = sortedRecord(v as Record<string, string>);
  }
  if (Object.keys(limit).length > 1)
    out.push({
      apiVersion: 'v1',
      kind: 'LimitRange',
      metadata: meta('site-limits'),
      spec: { limits: [limit] },
    });

  out.push(...renderRbac(spec, ns, meta));

  for (const n of spec.networks)
    out.push({
      apiVersion: 'k8s.cni.cncf.io/v1',
      kind: 'NetworkAttachmentDefinition',
      metadata: meta(n.name),
      spec: { config: JSON.stringify(renderCniConfig(spec.id, n), null, 2) },
    });

  out.push({
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: meta('whereabouts-config', WHEREABOUTS_NAMESPACE),
    data: { 'cron-expression': spec.whereabouts.reconcilerCron },
  });
  return out;
}

type Meta = (name: string, namespace?: string) => KubeObject['metadata'];

function renderNetworkPolicies(spec: SiteSpec, meta: Meta): KubeObject[] {
  const np = spec.networkPolicy;
  const policy = (name: string, body: Record<string, unknown>): KubeObject => ({
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: meta(name),
    spec: { podSelector: {}, ...body },
  });
  const out: KubeObject[] = [];
  if (np.defaultDeny) out.push(policy('default-deny', { policyTypes: ['Ingress', 'Egress'] }));
  if (np.allowSameNamespace)
    out.push(
      policy('allow-same-namespace', {
        policyTypes: ['Ingress', 'Egress'],
        ingress: [{ from: [{ podSelector: {} }] }],
        egress: [{ to: [{ podSelector: {} }] }],
      }),
    );
  if (np.allowDnsEgress)
    out.push(
      policy('allow-dns-egress', {
        policyTypes: ['Egress'],
        egress: [
          {
            to: [
              {
                namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } },
                podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } },
              },
            ],
            ports: [
              { protocol: 'UDP', port: 53 },
              { protocol: 'TCP', port: 53 },
            ],
          },
        ],
      }),
    );
  if (np.egress.length)
    out.push(
      policy('allow-extra-egress', {
        policyTypes: ['Egress'],
        egress: np.egress.map((r) => ({ to: peers(r), ...ports(r) })),
      }),
    );
  if (np.ingress.length)
    out.push(
      policy('allow-extra-ingress', {
        policyTypes: ['Ingress'],
        ingress: np.ingress.map((r) => ({ from: peers(r), ...ports(r) })),
      }),
    );
  return out;
}

/** peers gives each CIDR its own ipBlock, with the excepts that lie inside it. */
function peers(r: PeerRule): unknown[] {
  return r.cidrs.map((cidr) => {
    const outer = parseCidr(cidr);
    const except = r.except.filter((e) => {
      const inner = parseCidr(e);
      // IPv6 blocks are not parsed here: keep an IPv6 except with every IPv6 cidr.
      if (!outer.ok || !inner.ok) return cidr.includes(':') && e.includes(':');
      return cidrWithin(inner.cidr, outer.cidr);
    });
    return { ipBlock: except.length ? { cidr, except } : { cidr } };
  });
}

function ports(r: PeerRule): { ports?: unknown[] } {
  if (!r.ports.length) return {};
  return {
    ports: r.ports.map((p) => ({
      protocol: p.protocol,
      port: p.port,
      ...(p.endPort === undefined ? {} : { endPort: p.endPort }),
    })),
  };
}

/** Multus' annotation: the secondary networks a pod asks for (`dds@net1`, `ns/dds`, or a JSON list). */
export const NETWORKS_ANNOTATION = 'k8s.v1.cni.cncf.io/networks';
/** Multus' annotation that replaces a pod's cluster network, and with it every NetworkPolicy. */
export const DEFAULT_NETWORK_ANNOTATION = 'v1.multus-cni.io/default-network';

/** admissionPolicyName names a site's ValidatingAdmissionPolicy and its binding (cluster-scoped). */
export function admissionPolicyName(site: string): string {
  return `edgectl-site-${site}`;
}

/**
 * renderAdmissionPolicy is the site's ValidatingAdmissionPolicy and its binding. NetworkPolicies
 * do not see Multus interfaces, so what keeps a workload of the site's namespace off other
 * networks is admission: a pod, or the pod template of a workload, may name only the site's own
 * NetworkAttachmentDefinitions, in Multus' short form (`dds`, `<namespace>/dds`, `dds@net1`: the
 * JSON form can ask for addresses and MACs, so it is refused), may not replace its cluster network,
 * and may not use the host's network, PID or IPC namespace or a privileged or network-admin
 * container, whatever Pod Security level the namespace enforces. A Service may not claim
 * externalIPs, which would capture traffic to those addresses (a robot's own, say) on every node.
 * Pods are matched whoever creates them, controllers included; both CREATE and UPDATE, because
 * Multus reads the annotation again whenever the pod's sandbox is recreated.
 */
function renderAdmissionPolicy(spec: SiteSpec, ns: string, labels: Record<string, string>): KubeObject[] {
  const name = admissionPolicyName(spec.id);
  const names = spec.networks.map((n) => n.name);
  const podKinds = "object.kind != 'Service'";
  const annotated = (key: string) =>
    `has(variables.podMeta.annotations) && '${key}' in variables.podMeta.annotations`;
  const networkRule =
    names.length === 0
      ? `${podKinds} ? !(${annotated(NETWORKS_ANNOTATION)}) : true`
      : `${podKinds} ? !(${annotated(NETWORKS_ANNOTATION)}) || variables.podMeta.annotations['${NETWORKS_ANNOTATION}'].split(',').all(n, n.trim().matches('^(${ns}/)?(${names.join('|')})(@[A-Za-z0-9_.-]{1,15})?$')) : true`;
  const flag = (field: string) => `(has(variables.podSpec.${field}) && variables.podSpec.${field})`;
  const rules = (group: string, resources: string[]) => ({
    apiGroups: [group],
    apiVersions: ['v1'],
    operations: ['CREATE', 'UPDATE'],
    resources,
    scope: 'Namespaced',
  });
  const selector = { matchLabels: { 'kubernetes.io/metadata.name': ns } };
  const policy: KubeObject = {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'ValidatingAdmissionPolicy',
    metadata: { name, labels },
    spec: {
      failurePolicy: 'Fail',
      matchConstraints: {
        namespaceSelector: selector,
        resourceRules: [
          rules('', ['pods', 'services']),
          rules('apps', ['deployments', 'statefulsets', 'daemonsets', 'replicasets']),
          rules('batch', ['jobs', 'cronjobs']),
        ],
      },
      variables: [
        {
          name: 'podMeta',
          expression:
            "object.kind == 'Pod' ? object.metadata : object.kind == 'CronJob' ? (has(object.spec.jobTemplate.spec.template.metadata) ? object.spec.jobTemplate.spec.template.metadata : {}) : (has(object.spec.template.metadata) ? object.spec.template.metadata : {})",
        },
        {
          name: 'podSpec',
          expression:
            "object.kind == 'Pod' ? object.spec : object.kind == 'CronJob' ? object.spec.jobTemplate.spec.template.spec : object.spec.template.spec",
        },
        {
          name: 'containers',
          expression:
            'variables.podSpec.containers + (has(variables.podSpec.initContainers) ? variables.podSpec.initContainers : [])',
        },
      ],
      validations: [
        {
          expression: networkRule,
          message:
            names.length === 0
              ? `the site ${spec.id} has no secondary networks: pods in ${ns} may not ask for one (${NETWORKS_ANNOTATION})`
              : `pods in ${ns} may attach only the site's own networks (${names.join(', ')}), named in the short form, like ${NETWORKS_ANNOTATION}: ${names[0]}@net1`,
          reason: 'Forbidden',
        },
        {
          expression: `${podKinds} ? !(${annotated(DEFAULT_NETWORK_ANNOTATION)}) : true`,
          message: `pods in ${ns} may not replace their cluster network (${DEFAULT_NETWORK_ANNOTATION}): the NetworkPolicies only cover it`,
          reason: 'Forbidden',
        },
        {
          expression: `${podKinds} ? !(${flag('hostNetwork')} || ${flag('hostPID')} || ${flag('hostIPC')}) : true`,
          message: `pods in ${ns} may not use the robot's network, PID or IPC namespace`,
          reason: 'Forbidden',
        },
        {
          expression: `${podKinds} ? variables.containers.all(c, !has(c.securityContext) || (!(has(c.securityContext.privileged) && c.securityContext.privileged) && !(has(c.securityContext.capabilities) && has(c.securityContext.capabilities.add) && c.securityContext.capabilities.add.exists(a, a in ['ALL', 'NET_ADMIN', 'SYS_ADMIN'])))) : true`,
          message: `containers in ${ns} may not be privileged or add NET_ADMIN, SYS_ADMIN or ALL: they could leave the pod's network`,
          reason: 'Forbidden',
        },
        {
          expression:
            "object.kind == 'Service' ? !has(object.spec.externalIPs) || size(object.spec.externalIPs) == 0 : true",
          message: `Services in ${ns} may not set externalIPs: every node would capture traffic to those addresses`,
          reason: 'Forbidden',
        },
      ],
    },
  };
  const binding: KubeObject = {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'ValidatingAdmissionPolicyBinding',
    metadata: { name, labels },
    spec: {
      policyName: name,
      validationActions: ['Deny'],
      matchResources: { namespaceSelector: selector },
    },
  };
  return [policy, binding];
}

const ALL_VERBS = ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'];
const READ_VERBS = ['get', 'list', 'watch'];

function renderRbac(spec: SiteSpec, ns: string, meta: Meta): KubeObject[] {
  const op = spec.operators;
  const role: KubeObject = {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'Role',
    metadata: meta('site-operator'),
    rules: [
      {
        apiGroups: [''],
        resources: [
          'pods',
          'pods/log',
          'pods/exec',
          'pods/portforward',
          'services',
          'configmaps',
          'secrets',
          'persistentvolumeclaims',
          'serviceaccounts',
        ],
        verbs: ALL_VERBS,
      },
      // Endpoints read-only: a hand-written Endpoints object points a Service at any address, a
      // robot's own included (the built-in edit role dropped that write for the same reason).
      {
        apiGroups: [''],
        resources: ['endpoints', 'events', 'resourcequotas', 'limitranges'],
        verbs: READ_VERBS,
      },
      {
        apiGroups: ['apps'],
        resources: ['deployments', 'statefulsets', 'daemonsets', 'replicasets', 'deployments/scale'],
        verbs: ALL_VERBS,
      },
      { apiGroups: ['batch'], resources: ['jobs', 'cronjobs'], verbs: ALL_VERBS },
      { apiGroups: ['networking.k8s.io'], resources: ['networkpolicies'], verbs: READ_VERBS },
      // The built-in admin/edit/view roles do not grant NADs (no Multus manifest aggregates them).
      // Read-only: a NAD writer could rewrite a site network onto the robots' management NIC.
      { apiGroups: ['k8s.cni.cncf.io'], resources: ['network-attachment-definitions'], verbs: READ_VERBS },
    ],
  };
  const groups = op.groups ?? [`${ns}-operators`];
  const subjects = [
    ...op.users.map((name) => ({ kind: 'User', apiGroup: 'rbac.authorization.k8s.io', name })),
    ...groups.map((name) => ({ kind: 'Group', apiGroup: 'rbac.authorization.k8s.io', name })),
    ...op.serviceAccounts.map((sa) => {
      const [namespace, name] = sa.split('/');
      return { kind: 'ServiceAccount', name, namespace };
    }),
  ];
  const binding: KubeObject = {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'RoleBinding',
    metadata: meta('site-operator'),
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'site-operator' },
    ...(subjects.length ? { subjects } : {}),
  };
  return [role, binding];
}

/** networkName is Whereabouts' network_name: unique per site, so no two sites share an IPPool. */
export function networkName(site: string, network: string): string {
  return `${site}-${network}`;
}

/**
 * renderCniConfig is the CNI config in a NAD: ipvlan (L2) or macvlan on the robot's NIC, with
 * Whereabouts IPAM. The spec must have passed validateSiteSpec.
 */
export function renderCniConfig(site: string, n: SiteNetwork): Record<string, unknown> {
  const mode = n.mode ?? (n.type === 'ipvlan' ? 'l2' : 'bridge');
  return {
    cniVersion: CNI_VERSION,
    name: networkName(site, n.name),
    type: n.type,
    master: n.master,
    mode,
    ...(n.mtu === undefined ? {} : { mtu: n.mtu }),
    ipam: {
      type: 'whereabouts',
      range: n.range,
      ...(n.rangeStart === undefined ? {} : { range_start: n.rangeStart }),
      ...(n.rangeEnd === undefined ? {} : { range_end: n.rangeEnd }),
      ...(n.gateway === undefined ? {} : { gateway: n.gateway }),
      ...excludes(n),
      network_name: networkName(site, n.name),
      configuration_path: WHEREABOUTS_CONFIGURATION_PATH,
      kubernetes: { kubeconfig: WHEREABOUTS_KUBECONFIG },
    },
  };
}

/**
 * excludes writes every exclude as a block (a bare address becomes /32, as Whereabouts reads
 * it) and adds the gateway when no exclude covers it. Validation already keeps the gateway out of
 * the pool; excluding it as well means that a pool Whereabouts widens on its own (it ignores a
 * range_start/range_end it cannot use) still never hands out the router's address.
 */
function excludes(n: SiteNetwork): { exclude?: string[] } {
  const blocks: Cidr[] = [];
  for (const e of n.exclude) {
    const c = parseExclude(e);
    if (c.ok) blocks.push(c.cidr);
  }
  const range = parseCidr(n.range);
  const gw = n.gateway === undefined ? null : parseIpv4(n.gateway);
  if (gw !== null && range.ok && cidrContains(range.cidr, gw) && !blocks.some((b) => cidrContains(b, gw)))
    blocks.push({ network: gw, prefix: 32 });
  return blocks.length ? { exclude: blocks.map(formatCidr) } : {};
}

function sortedRecord(r: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(r).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
