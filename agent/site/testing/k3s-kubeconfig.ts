/** The admin kubeconfig in the layout k3s writes to /etc/rancher/k3s/k3s.yaml (tests only). */
const b64 = (s: string) => Buffer.from(s).toString('base64');

export function k3sKubeconfigText(o: {
  readonly server: string;
  readonly caPem: string;
  readonly cert: string;
  readonly key: string;
}): string {
  return `apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: ${b64(o.caPem)}
    server: ${o.server}
  name: default
contexts:
- context:
    cluster: default
    user: default
  name: default
current-context: default
kind: Config
preferences: {}
users:
- name: default
  user:
    client-certificate-data: ${b64(o.cert)}
    client-key-data: ${b64(o.key)}
`;
}
