/**
 * The files a real lab node runs on (lab/node/real-node.ts), rendered from its directory and
 * settings. Pure: no I/O; lab/node/render.test.ts checks the settings the node depends on.
 */
import { join } from 'node:path';
import { K3S_CNI_CONF_DIR } from '../../agent/site/render.ts';

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
    `mount --bind ${q(join(dir, 'cni', 'net.d'))} ${q(K3S_CNI_CONF_DIR)}`,
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
 * renderWhereaboutsConf is Whereabouts' flat file, where the site's NADs name it (k3s's conf dir,
 * mounted in the node's mount namespace).
 */
export function renderWhereaboutsConf(dir: string): string {
  return JSON.stringify({
    datastore: 'kubernetes',
    kubernetes: { kubeconfig: join(K3S_CNI_CONF_DIR, 'whereabouts.d', 'whereabouts.kubeconfig') },
    log_file: join(dir, 'whereabouts.log'),
    log_level: 'debug',
  });
}

/**
 * renderMultusConfig is the node's one CNI config: Multus (thin plugin) with the kubelet's
 * credentials, the pod network delegated to a bridge in the robot's namespace, and the NADs a pod
 * asks for added as net1, net2...
 */
export function renderMultusConfig(dir: string, podCidr: string): string {
  return JSON.stringify(
    {
      cniVersion: '0.4.0',
      name: 'multus-cni-network',
      type: 'multus',
      kubeconfig: join(K3S_CNI_CONF_DIR, 'multus.kubeconfig'),
      binDir: join(dir, 'cni', 'bin'),
      cniDir: join(dir, 'cni-state', 'multus'),
      logFile: join(dir, 'multus.log'),
      logLevel: 'verbose',
      delegates: [
        {
          cniVersion: '0.4.0',
          name: 'lab-pods',
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
