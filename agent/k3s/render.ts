/**
 * Pure renderers of what k3s reads on a robot: /etc/rancher/k3s/config.yaml for the server and for
 * the agent, the server-URL drop-in a worker gets on every (re)join, and the two systemd units.
 * Golden-tested (render.test.ts, testdata/). Only plans.ts puts them on a robot.
 *
 * config.yaml is rendered per role and rewritten on every role change: a robot runs one role at a
 * time, and a server must never read a worker's `server:` key (it would try to join the old leader),
 * nor an agent a server's keys. k3s reads config.yaml, then config.yaml.d/*.yaml in alphabetical
 * order, the last value of a key winning (docs.k3s.io/installation/configuration).
 *
 * No secret is rendered here: tokens reach k3s only through token-file and agent-token-file.
 */
import type { EtcdMemberConfig } from './replica-plans.ts';
import {
  AGENT_TOKEN_FILE,
  DATASTORE_ENV,
  DATASTORE_UNIT,
  ETCD_BIN,
  ETCD_CLIENT_CA,
  ETCD_CLIENT_CERT,
  ETCD_CLIENT_DIR,
  ETCD_CLIENT_KEY,
  ETCD_CLIENT_URL,
  ETCD_PEER_DIR,
  REPLICA_ENV,
  REPLICA_UNIT,
  AGENT_UNIT,
  EDGECTL_AGENT_UNIT,
  K3S_API_PORT,
  K3S_BIN,
  SERVER_FENCE_FILE,
  SERVER_TOKEN_FILE,
  SERVER_UNIT,
  SERVER_URL_DROPIN,
} from './paths.ts';
import type { K3sNodeSpec } from './settings.ts';

/** Labels edgectl puts on every node it registers, besides the spec's own. */
export const LABEL_SITE = 'edgectl.io/site';
export const LABEL_SERVER_CAPABLE = 'edgectl.io/server-capable';

const HEADER = (what: string) =>
  `# ${what}\n# Rendered by edgectl (agent/k3s/render.ts) and rewritten on every role change: do not edit.\n`;

function nodeLabels(spec: K3sNodeSpec): string[] {
  const labels: Record<string, string> = {
    ...spec.labels,
    [LABEL_SITE]: spec.site,
    [LABEL_SERVER_CAPABLE]: String(spec.serverCapable),
  };
  return Object.keys(labels)
    .sort()
    .map((k) => `${k}=${labels[k]}`);
}

/** The keys both roles share: who this node is and which interface carries the pod network. */
function nodeKeys(spec: K3sNodeSpec): Record<string, unknown> {
  return {
    'node-name': spec.nodeName,
    'node-ip': spec.nodeIp,
    'flannel-iface': spec.flannelIface,
    'node-label': nodeLabels(spec),
  };
}

/** Scalars that a YAML 1.1 or 1.2 reader (k3s reads 1.1) would not take for a plain string. */
const NOT_A_STRING =
  /^(?:[-+]?(?:\d[\d_]*(?:\.[\d_]*)?(?:e[-+]?\d+)?|(?:\d[\d_]*)?\.[\d_]*(?:e[-+]?\d+)?|\d[\d_]*(?::[0-5]?\d)+(?:\.[\d_]*)?|0x[\da-f_]+|0o?[0-7_]+|0b[01_]+|\.inf|\.nan)|y|n|yes|no|true|false|on|off|null|~|)$/i;
/** A string written plain: no indicator first, no `: ` or ` #` inside, nothing special at the end. */
const PLAIN = /^[\w./][\w ./=@*,+~:()[\]-]*$/;

function scalar(v: unknown): string {
  if (typeof v === 'boolean' || typeof v === 'number') return String(v);
  const s = String(v);
  const plain = PLAIN.test(s) && !NOT_A_STRING.test(s) && !/: | #|[: ]$/.test(s) && !/[[\]]/.test(s);
  return plain ? s : JSON.stringify(s);
}

/**
 * flatYaml writes a flat config document (scalars and lists of scalars), the only shape k3s's config
 * files have here. A dozen lines instead of the yaml package, so the k3s runtime, which renders
 * these on the robot at every role change, loads no YAML library into the agent; a string that a
 * YAML reader could take for anything else is double-quoted (JSON's quoting is valid YAML).
 */
export function flatYaml(doc: Record<string, unknown>): string {
  return Object.entries(doc)
    .map(([key, v]) => {
      const k = scalar(key);
      if (!Array.isArray(v)) return `${k}: ${scalar(v)}\n`;
      return v.length ? `${k}:\n${v.map((x) => `  - ${scalar(x)}\n`).join('')}` : `${k}: []\n`;
    })
    .join('');
}

/**
 * renderServerConfig: config.yaml while this robot leads. The datastore is the edgectl-run etcd on
 * loopback (replica-plans.ts: k3s's embedded etcd would promote the standby's learner to a voter),
 * reached with a client certificate; secrets encrypted at rest so a snapshot or a replica alone
 * does not give away the site's Secrets. k3s's own etcd snapshots do not apply to an external
 * datastore: the agent takes them with etcdctl (plans.ts snapshotSavePlan).
 */
export function renderServerConfig(spec: K3sNodeSpec): string {
  return (
    HEADER(`k3s server config of ${spec.nodeName} (site ${spec.site}), used while it leads the site.`) +
    flatYaml({
      'token-file': SERVER_TOKEN_FILE,
      'agent-token-file': AGENT_TOKEN_FILE,
      ...nodeKeys(spec),
      'tls-san': [...new Set(spec.tlsSans)].sort(),
      disable: [...new Set(spec.disable)].sort(),
      'datastore-endpoint': ETCD_CLIENT_URL,
      'datastore-cafile': ETCD_CLIENT_CA,
      'datastore-certfile': ETCD_CLIENT_CERT,
      'datastore-keyfile': ETCD_CLIENT_KEY,
      'secrets-encryption': true,
      'write-kubeconfig-mode': '0600',
    })
  );
}

/** renderAgentConfig: config.yaml while this robot is a worker. The server URL is a drop-in. */
export function renderAgentConfig(spec: K3sNodeSpec): string {
  return (
    HEADER(
      `k3s agent config of ${spec.nodeName} (site ${spec.site}); the leader's URL is in ${SERVER_URL_DROPIN}.`,
    ) + flatYaml({ 'token-file': AGENT_TOKEN_FILE, ...nodeKeys(spec) })
  );
}

/** serverUrl: the leader's supervisor and API server URL (IPv6 literals in brackets). */
export function serverUrl(host: string): string {
  const h = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  return `https://${h}:${K3S_API_PORT}`;
}

/** renderServerUrlDropin: config.yaml.d/50-edgectl-server.yaml, pointing the agent at the leader. */
export function renderServerUrlDropin(
  leader: { readonly id: string; readonly host: string },
  epoch: number,
): string {
  return (
    `# The site leader this worker joins: ${leader.id}, server epoch ${epoch}.\n` +
    `# Rendered by edgectl (agent/k3s/render.ts) on every (re)join: do not edit.\n` +
    flatYaml({ server: serverUrl(leader.host) })
  );
}

/**
 * Unit settings both units share with k3s's install.sh: k3s manages its own cgroups (Delegate), and
 * KillMode=process stops only the k3s process on `systemctl stop`, so pods keep running through a
 * role change and the next containerd picks them up.
 */
const SERVICE_COMMON = `KillMode=process
Delegate=yes
LimitNOFILE=1048576
LimitNPROC=infinity
LimitCORE=infinity
TasksMax=infinity
TimeoutStartSec=0
Restart=always
RestartSec=5s
ExecStartPre=-/sbin/modprobe br_netfilter
ExecStartPre=-/sbin/modprobe overlay`;

/**
 * renderServerUnit: k3s.service. It has no [Install] section, so it cannot be enabled: after a
 * reboot no server starts until the edgectl agent has an epoch for it. While the fence file exists
 * systemd starts it neither on request nor by Restart=, which is how a demoted robot stays demoted.
 * It conflicts with k3s-agent.service, so systemd itself never runs both. No EnvironmentFile: k3s
 * reads its tokens from token files.
 */
export function renderServerUnit(): string {
  return `# k3s server, run by the edgectl agent while this robot leads the site (docs/k3s.md).
# Rendered by edgectl (agent/k3s/render.ts). Deliberately not enableable: the agent starts it.
[Unit]
Description=k3s server (edgectl: this robot leads the site)
Documentation=https://docs.k3s.io
Wants=network-online.target
After=network-online.target ${EDGECTL_AGENT_UNIT} ${DATASTORE_UNIT}
PartOf=${EDGECTL_AGENT_UNIT}
Conflicts=${AGENT_UNIT}
# The demotion fence: present from the moment this robot stops leading until it leads again.
ConditionPathExists=!${SERVER_FENCE_FILE}

[Service]
Type=notify
ExecStart=${K3S_BIN} server
# Demotion must not wait long: SIGKILL after 10 s.
TimeoutStopSec=10s
${SERVICE_COMMON}
`;
}

/** renderAgentUnit: k3s-agent.service; it does not start before a leader's URL is known. */
export function renderAgentUnit(): string {
  return `# k3s agent, run by the edgectl agent while this robot is a worker (docs/k3s.md).
# Rendered by edgectl (agent/k3s/render.ts). Deliberately not enableable: the agent starts it.
[Unit]
Description=k3s agent (edgectl: this robot is a worker of the site)
Documentation=https://docs.k3s.io
Wants=network-online.target
After=network-online.target ${EDGECTL_AGENT_UNIT}
PartOf=${EDGECTL_AGENT_UNIT}
Conflicts=${SERVER_UNIT}
ConditionPathExists=${SERVER_URL_DROPIN}

[Service]
Type=exec
ExecStart=${K3S_BIN} agent
TimeoutStopSec=30s
${SERVICE_COMMON}
`;
}

/**
 * renderEtcdUnit: edgectl-etcd.service (the leader's datastore) or edgectl-etcd-replica.service
 * (the standby's learner). Static: what changes per epoch is the environment file, which etcd reads
 * as its flags (ETCD_NAME for --name, …). Neither is enableable (a robot that boots is a follower
 * until elected), they conflict (both bind the loopback client port and the peer port), and both
 * are PartOf the agent like k3s. SIGTERM on stop: etcd commits its backend before it exits, which
 * is what makes a stopped replica's bbolt file a complete starting point. A learner exits at once
 * until the leader has added it, so the replica restarts without a start limit.
 */
export function renderEtcdUnit(role: 'datastore' | 'replica'): string {
  const [unit, env, what, other] =
    role === 'datastore'
      ? [DATASTORE_UNIT, DATASTORE_ENV, "the datastore of this robot's k3s server", REPLICA_UNIT]
      : [REPLICA_UNIT, REPLICA_ENV, "a replica (learner) of the leader's datastore", DATASTORE_UNIT];
  return `# ${unit}: etcd, run by the edgectl agent (docs/k3s.md "Replication").
# Rendered by edgectl (agent/k3s/render.ts). Deliberately not enableable: the agent starts it.
[Unit]
Description=etcd (edgectl: ${what})
Wants=network-online.target
After=network-online.target ${EDGECTL_AGENT_UNIT}
PartOf=${EDGECTL_AGENT_UNIT}
Conflicts=${other}
StartLimitIntervalSec=0
ConditionPathExists=${env}

[Service]
Type=notify
EnvironmentFile=${env}
ExecStart=${ETCD_BIN}
TimeoutStopSec=30s
Restart=on-failure
RestartSec=3s
LimitNOFILE=65536
`;
}

/**
 * renderEtcdEnv: an etcd unit's environment file, one ETCD_<FLAG> per flag. The client port is
 * loopback with TLS and client certificates (k3s and etcdctl present the voter's client
 * certificate); the peer port is TLS both ways with the voters-only peer CA.
 */
export function renderEtcdEnv(m: EtcdMemberConfig): string {
  const flags: [string, string][] = [
    ['name', m.name],
    ['data-dir', m.dataDir],
    ['listen-client-urls', ETCD_CLIENT_URL],
    ['advertise-client-urls', ETCD_CLIENT_URL],
    ['cert-file', `${ETCD_CLIENT_DIR}/server.crt`],
    ['key-file', `${ETCD_CLIENT_DIR}/server.key`],
    ['trusted-ca-file', ETCD_CLIENT_CA],
    ['client-cert-auth', 'true'],
    ['listen-peer-urls', m.peerUrl],
    ['initial-advertise-peer-urls', m.peerUrl],
    ['initial-cluster', m.initialCluster],
    ['initial-cluster-state', m.state],
    ['peer-cert-file', `${ETCD_PEER_DIR}/peer.crt`],
    ['peer-key-file', `${ETCD_PEER_DIR}/peer.key`],
    ['peer-trusted-ca-file', `${ETCD_PEER_DIR}/peer-ca.crt`],
    ['peer-client-cert-auth', 'true'],
  ];
  return (
    `# etcd flags of ${m.name} (${m.dataDir}). Rendered by edgectl (agent/k3s/replica-plans.ts): do not edit.\n` +
    flags.map(([k, v]) => `ETCD_${k.toUpperCase().replaceAll('-', '_')}=${v}\n`).join('')
  );
}
