/**
 * The files a real lab node runs on (lab/node/real-node.ts), rendered from its directory and
 * settings. Pure: no I/O; lab/node/render.test.ts checks the settings the node depends on.
 */
import { join } from 'node:path';
import { K3S_CNI_BIN_DIR, K3S_CNI_CONF_DIR } from '../../agent/site/render.ts';

/** renderHolderScript sets up the node's private mount namespace, then sleeps for the node's life. */
export function renderHolderScript(dir: string): string {
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  return [
    'set -e',
    // cgroup v1 hierarchies survive a fresh sysfs by being moved aside and back.
    `mkdir -p ${q(join(dir, 'cgroup-aside'))}`,
    `mount --rbind /sys/fs/cgroup ${q(join(dir, 'cgroup-aside'))}`,
    'umount -l /sys',
    'mount -t sysfs sysfs /sys',
    `mount --move ${q(join(dir, 'cgroup-aside'))} /sys/fs/cgroup`,
    // containerd's shim sockets live under /run/containerd whatever its state dir, and CNI's cache
    // and the pods' network namespaces under /var/lib/cni and /run/netns: private to this node.
    'mkdir -p /run/containerd /var/lib/cni',
    'mount -t tmpfs -o mode=0711 tmpfs /run/containerd',
    `mount --bind ${q(join(dir, 'cni-state'))} /var/lib/cni`,
    'mount -t tmpfs -o mode=0755 tmpfs /run/netns',
    // The site's addon DaemonSets install into k3s's CNI dirs (hostPath): this node's own.
    `mount --bind ${q(join(dir, 'cni', 'net.d'))} ${q(K3S_CNI_CONF_DIR)}`,
    `mount --bind ${q(join(dir, 'cni', 'bin'))} ${q(K3S_CNI_BIN_DIR)}`,
    'echo ready',
    'exec sleep infinity',
  ].join('\n');
}

/** renderContainerdConfig is containerd's config.toml (version 2, containerd 1.6). */
export function renderContainerdConfig(dir: string, socket: string, pauseImage: string): string {
  return `version = 2
root = "${join(dir, 'containerd', 'root')}"
state = "${join(dir, 'containerd', 'state')}"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "${socket}"

[ttrpc]
  address = "${socket}.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "${join(dir, 'containerd', 'opt')}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${pauseImage}"
  restrict_oom_score_adj = true
  enable_selinux = false
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "${join(dir, 'cni', 'bin')}"
    conf_dir = "${K3S_CNI_CONF_DIR}"
    max_conf_num = 1
`;
}

/** renderKubeletConfig is kubelet's KubeletConfiguration (YAML). */
export function renderKubeletConfig(
  dir: string,
  socket: string,
  cgroupRoot: string,
  address: string,
): string {
  return `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: ${cgroupRoot}
cgroupsPerQOS: true
containerRuntimeEndpoint: unix://${socket}
address: ${address}
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: false
authorization:
  mode: AlwaysAllow
failSwapOn: false
# The Lease is renewed every quarter of its duration: 2.5 s, as often as the lab kubelet renews,
# so a silent node shows within the lab's lease staleness (8 s) and kube-controller-manager's grace.
nodeLeaseDurationSeconds: 10
nodeStatusUpdateFrequency: 5s
podLogsDir: ${join(dir, 'pod-logs')}
resolvConf: /etc/resolv.conf
# Many lab nodes share one disk: evict only when it is really full.
evictionHard:
  memory.available: 50Mi
  nodefs.available: 1%
  imagefs.available: 1%
  nodefs.inodesFree: 1%
imageGCHighThresholdPercent: 99
imageGCLowThresholdPercent: 98
`;
}

/**
 * The CNI plugins a node has before any DaemonSet runs: those k3s ships in its own CNI dir (the
 * Multus DaemonSet's init container skips exactly these, SKIP_CNI_BINARIES in
 * templates/site/multus.yaml). The others (macvlan, ipvlan, ...), Multus and Whereabouts come from
 * the site's addon images.
 */
export const NODE_BASE_CNI_PLUGINS = ['bridge', 'host-local', 'loopback', 'portmap', 'bandwidth', 'firewall'];

/** The pod network's CNI config file, which Multus' autoconfig wraps (as it wraps k3s's flannel). */
export const POD_NETWORK_CONF = '10-lab-pods.conflist';

/**
 * renderPodNetworkConfig is the node's pod network, in the place k3s puts flannel's: a bridge in
 * the robot's namespace with host-local addresses from the node's pod CIDR. The Multus DaemonSet
 * finds it in the conf dir and writes 00-multus.conf, which delegates to it.
 */
export function renderPodNetworkConfig(dir: string, podCidr: string): string {
  return JSON.stringify(
    {
      cniVersion: '0.4.0',
      name: 'lab-pods',
      plugins: [
        {
          type: 'bridge',
          bridge: 'cni0',
          isGateway: true,
          ipMasq: false,
          ipam: {
            type: 'host-local',
            ranges: [[{ subnet: podCidr }]],
            dataDir: join(dir, 'cni-state', 'host-local'),
          },
        },
      ],
    },
    null,
    2,
  );
}

/**
 * The `kubernetes` Service's address (the first of the lab API server's service range,
 * lab/kube-apiserver/apiserver.ts): what pods' in-cluster config names, and where the addon
 * DaemonSets' kubeconfigs point.
 */
export const KUBERNETES_SERVICE = { address: '10.0.0.1', port: 443 } as const;

/** The nat chain that plays kube-proxy for the `kubernetes` Service on a lab node. */
export const KUBE_SERVICE_CHAIN = 'EDGECTL-KUBE-SVC';

/**
 * renderKubeServiceNat is the iptables commands (argument lists) that send the `kubernetes`
 * Service's address to `server` (the API server the node reports to), from the node's own
 * processes (OUTPUT: the hostNetwork addon pods and the CNI plugins) and from its pods
 * (PREROUTING), as kube-proxy does on a robot. `first` adds the chain and its jumps; later calls
 * only re-point it.
 */
export function renderKubeServiceNat(server: string, first: boolean): string[][] {
  const u = new URL(server);
  const port = u.port || '443';
  const nat = ['-w', '5', '-t', 'nat'];
  const svc = KUBERNETES_SERVICE;
  return [
    ...(first
      ? [
          [...nat, '-N', KUBE_SERVICE_CHAIN],
          [...nat, '-A', 'OUTPUT', '-j', KUBE_SERVICE_CHAIN],
          [...nat, '-A', 'PREROUTING', '-j', KUBE_SERVICE_CHAIN],
        ]
      : []),
    [...nat, '-F', KUBE_SERVICE_CHAIN],
    [
      ...nat,
      '-A',
      KUBE_SERVICE_CHAIN,
      '-d',
      `${svc.address}/32`,
      '-p',
      'tcp',
      '--dport',
      String(svc.port),
      '-j',
      'DNAT',
      '--to-destination',
      `${u.hostname}:${port}`,
    ],
  ];
}
