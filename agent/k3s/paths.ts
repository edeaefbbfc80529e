/**
 * Where k3s and edgectl keep things on a robot. k3s paths are k3s's defaults (data-dir
 * /var/lib/rancher/k3s); edgectl's own files live under /etc/edgectl and /var/lib/edgectl.
 * Sources: docs.k3s.io/installation/configuration (config file and drop-ins),
 * docs.k3s.io/cli/certificate (custom CA files),
 * docs.k3s.io/architecture (node password, agent load balancer).
 */

/** The k3s binary the units run. Installed by installPlan from a binary already on the robot. */
export const K3S_BIN = '/usr/local/bin/k3s';
/** Symlinks install.sh would create; we create them only where no such command exists. */
export const K3S_TOOL_LINKS = ['kubectl', 'crictl', 'ctr'] as const;

export const SYSTEMD_DIR = '/etc/systemd/system';
export const SERVER_UNIT = 'k3s.service';
export const AGENT_UNIT = 'k3s-agent.service';
/** The edgectl agent's own unit (templates/edgectl-agent.service): k3s units are PartOf it. */
export const EDGECTL_AGENT_UNIT = 'edgectl-agent.service';

export const CONFIG_DIR = '/etc/rancher/k3s';
export const CONFIG_FILE = `${CONFIG_DIR}/config.yaml`;
/** Drop-ins, read after config.yaml in alphabetical order; the last value of a key wins. */
export const CONFIG_DROPIN_DIR = `${CONFIG_DIR}/config.yaml.d`;
/** The worker's server URL; written on every (re)join, removed when the robot serves. */
export const SERVER_URL_DROPIN = `${CONFIG_DROPIN_DIR}/50-edgectl-server.yaml`;
/** The admin kubeconfig k3s writes on a server. */
export const ADMIN_KUBECONFIG = `${CONFIG_DIR}/k3s.yaml`;

export const DATA_DIR = '/var/lib/rancher/k3s';
export const SERVER_DIR = `${DATA_DIR}/server`;
/** Custom CA files must be here before the first server start (docs.k3s.io/cli/certificate). */
export const TLS_DIR = `${SERVER_DIR}/tls`;
export const AGENT_DIR = `${DATA_DIR}/agent`;
/** The agent caches its server list here; a stale list points it at the old leader. */
export const AGENT_LOAD_BALANCER_FILES = [
  `${AGENT_DIR}/etc/k3s-agent-load-balancer.json`,
  // Only present when the supervisor and apiserver ports differ; removed too so no old address survives.
  `${AGENT_DIR}/etc/k3s-api-server-agent-load-balancer.json`,
] as const;
/**
 * Certificates the agent got from the server it last joined (k3s names them in
 * `k3s certificate rotate`). The agent fetches new ones from the new server on start.
 */
export const AGENT_SERVER_BOUND_FILES = [
  'client-kubelet.crt',
  'client-kubelet.key',
  'serving-kubelet.crt',
  'serving-kubelet.key',
  'client-kube-proxy.crt',
  'client-kube-proxy.key',
  'client-k3s-controller.crt',
  'client-k3s-controller.key',
  'server-ca.crt',
  'client-ca.crt',
].map((f) => `${AGENT_DIR}/${f}`);
/** The kubelet's kubeconfig: the worker's readiness probe reads its own Node with it. */
export const KUBELET_KUBECONFIG = `${AGENT_DIR}/kubelet.kubeconfig`;
/** The node password the agent presents; the server keeps its hash in <node>.node-password.k3s. */
/** The kubelet's root dir (pods, volumes), outside k3s's data dir. */
export const KUBELET_DIR = '/var/lib/kubelet';
export const NODE_PASSWORD_FILE = '/etc/rancher/node/password';

/** Token files: secrets reach k3s only as file content (token-file, agent-token-file). */
export const SECRETS_DIR = '/etc/edgectl/k3s';
export const SERVER_TOKEN_FILE = `${SECRETS_DIR}/server-token`;
export const AGENT_TOKEN_FILE = `${SECRETS_DIR}/agent-token`;

export const EDGECTL_K3S_STATE_DIR = '/var/lib/edgectl/k3s';
/** While this file exists systemd refuses to start k3s.service (ConditionPathExists=!). */
export const SERVER_FENCE_FILE = `${EDGECTL_K3S_STATE_DIR}/server.fence`;
/** The last epoch this robot started a server for (for whoever looks; the datastore dirs decide). */
export const SERVED_EPOCH_FILE = `${EDGECTL_K3S_STATE_DIR}/served-epoch`;
/** The snapshots this robot took while it led (etcdctl snapshot save), shipped to the voters. */
export const LOCAL_SNAPSHOT_DIR = '/var/lib/edgectl/snapshots/local';
/** Snapshots received from other leaders, verified against their site-log record. */
export const RECEIVED_SNAPSHOT_DIR = '/var/lib/edgectl/snapshots/received';

/** Stops what a stopped k3s server left running, except containerd-shims (they hold the pods). */
export const REAP_SCRIPT = '/usr/local/lib/edgectl/edgectl-k3s-reap';

/** The supervisor and API server port of k3s. */
export const K3S_API_PORT = 6443;

/* edgectl's etcd: k3s's external datastore on the leader, a learner of it on the standby (replica-plans.ts). */
export const ETCD_BIN = '/usr/local/bin/etcd';
export const ETCDCTL_BIN = '/usr/local/bin/etcdctl';
/** Every epoch's datastore and replica; nothing else lives here. */
export const EDGECTL_ETCD_DIR = '/var/lib/edgectl/etcd';
/** The etcd units' environment files (their flags for the current epoch). */
export const ETCD_ENV_DIR = '/etc/edgectl/etcd';
/** The voter's peer certificate of the site's etcd peer CA: bootstrap writes it to voters only. */
export const ETCD_PEER_DIR = '/etc/edgectl/etcd-peer';
/**
 * The loopback client port's TLS: etcd's serving certificate (127.0.0.1) and the client
 * certificate k3s and etcdctl present, both of the site's etcd client CA. Voters only.
 */
export const ETCD_CLIENT_DIR = '/etc/edgectl/etcd-client';
export const ETCD_CLIENT_CA = `${ETCD_CLIENT_DIR}/ca.crt`;
export const ETCD_CLIENT_CERT = `${ETCD_CLIENT_DIR}/client.crt`;
export const ETCD_CLIENT_KEY = `${ETCD_CLIENT_DIR}/client.key`;
export const DATASTORE_UNIT = 'edgectl-etcd.service';
export const REPLICA_UNIT = 'edgectl-etcd-replica.service';
export const DATASTORE_ENV = `${ETCD_ENV_DIR}/edgectl-etcd.env`;
export const REPLICA_ENV = `${ETCD_ENV_DIR}/edgectl-etcd-replica.env`;
/** Loopback only, TLS with client certificates: k3s (datastore-endpoint) and the agent are the only clients. */
export const ETCD_CLIENT_URL = 'https://127.0.0.1:2379';
