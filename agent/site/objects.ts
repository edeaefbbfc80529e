/**
 * The Kubernetes objects edgectl renders and applies, as plain JSON-shaped values, and the labels
 * that mark them as edgectl's. Pure: no I/O.
 */

export interface ObjectMeta {
  name: string;
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  resourceVersion?: string;
  [key: string]: unknown;
}

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  [key: string]: unknown;
}

export const LABEL_MANAGED_BY = 'app.kubernetes.io/managed-by';
export const LABEL_SITE = 'edgectl.io/site';
export const LABEL_EPOCH = 'edgectl.io/epoch';
/** Which part of the render an object belongs to: `site` objects are pruned, `addons` never are. */
export const LABEL_COMPONENT = 'edgectl.io/component';
export const MANAGER = 'edgectl';

export type Component = 'site' | 'addons';

export function edgectlLabels(site: string, epoch: number, component: Component): Record<string, string> {
  return {
    [LABEL_MANAGED_BY]: MANAGER,
    [LABEL_SITE]: site,
    [LABEL_EPOCH]: String(epoch),
    [LABEL_COMPONENT]: component,
  };
}

/** The label selector for the objects of one site's render component. */
export function siteSelector(site: string, component: Component = 'site'): string {
  return `${LABEL_MANAGED_BY}=${MANAGER},${LABEL_SITE}=${site},${LABEL_COMPONENT}=${component}`;
}

/** objectKey names an object uniquely in a cluster: `apiVersion/Kind/namespace/name`. */
export function objectKey(o: {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
}): string {
  return `${o.apiVersion}/${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;
}

/** describeObject is how people read an object's identity: `NetworkPolicy site-a/default-deny`. */
export function describeObject(o: { kind: string; metadata: { name: string; namespace?: string } }): string {
  return `${o.kind} ${o.metadata.namespace ? `${o.metadata.namespace}/` : ''}${o.metadata.name}`;
}

/** The kinds a site render can produce: what pruning lists. The Namespace is never pruned. */
export const PRUNABLE_KINDS: readonly { apiVersion: string; kind: string }[] = [
  { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy' },
  { apiVersion: 'v1', kind: 'ResourceQuota' },
  { apiVersion: 'v1', kind: 'LimitRange' },
  { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role' },
  { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding' },
  { apiVersion: 'k8s.cni.cncf.io/v1', kind: 'NetworkAttachmentDefinition' },
  { apiVersion: 'v1', kind: 'ConfigMap' },
  { apiVersion: 'admissionregistration.k8s.io/v1', kind: 'ValidatingAdmissionPolicy' },
  { apiVersion: 'admissionregistration.k8s.io/v1', kind: 'ValidatingAdmissionPolicyBinding' },
];
