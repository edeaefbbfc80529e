/**
 * KubeConnection: where an API server is and how edgectl proves who it is there, read from a
 * kubeconfig without the yaml library or @kubernetes/client-node, which a leading robot would
 * otherwise load and keep (docs/benchmarks/agent.md).
 *
 * The reader takes the shape k3s writes to /etc/rancher/k3s/k3s.yaml: one cluster with
 * `server` and `certificate-authority-data`, one user with `client-certificate-data` and
 * `client-key-data` (or a `token`), every value on its own line. A kubeconfig in JSON (what
 * client-node's exportConfig writes) is read through its current context. Anything else (file
 * references, exec plugins, several clusters in YAML) is refused with a hint, never guessed at.
 */
import { readFileSync } from 'node:fs';
import { EdgeError } from '../errors.ts';

export interface KubeConnection {
  /** The API server's URL, `https://host:port`. */
  readonly server: string;
  /** The CA the server's certificate must chain to (PEM). */
  readonly caPem: string;
  /** Client-certificate authentication (k3s's admin kubeconfig), PEM. */
  readonly clientCertPem?: string;
  readonly clientKeyPem?: string;
  /** Bearer-token authentication (the lab's API server). */
  readonly token?: string;
}

/**
 * What the reader needs of a client-node KubeConfig, so that tests and the lab can hand theirs
 * over without this module importing the library.
 */
export interface KubeConfigLike {
  getCurrentCluster(): { readonly server: string; readonly caData?: string; readonly caFile?: string } | null;
  getCurrentUser(): {
    readonly token?: string;
    readonly certData?: string;
    readonly keyData?: string;
    readonly certFile?: string;
    readonly keyFile?: string;
  } | null;
}

const KUBECONFIG_HINT =
  "edgectl reads k3s's admin kubeconfig (/etc/rancher/k3s/k3s.yaml): one cluster with server and certificate-authority-data, one user with client-certificate-data and client-key-data or a token";

function refuse(source: string, problem: string): never {
  throw new EdgeError('KUBECONFIG_UNSUPPORTED', `${source}: ${problem}`, { hint: KUBECONFIG_HINT });
}

const decode = (b64: string) => Buffer.from(b64, 'base64').toString('utf8');

/** fromParts checks and assembles the fields a reader found. */
function fromParts(
  source: string,
  p: { server?: string; caData?: string; certData?: string; keyData?: string; token?: string },
): KubeConnection {
  if (!p.server || !/^https:\/\//.test(p.server)) refuse(source, 'no https server');
  if (!p.caData) refuse(source, 'no certificate-authority-data');
  if ((p.certData === undefined) !== (p.keyData === undefined))
    refuse(source, 'client-certificate-data and client-key-data come together');
  if (p.certData === undefined && !p.token) refuse(source, 'no client certificate and no token');
  return {
    server: p.server.replace(/\/+$/, ''),
    caPem: decode(p.caData),
    ...(p.certData === undefined
      ? {}
      : { clientCertPem: decode(p.certData), clientKeyPem: decode(p.keyData!) }),
    ...(p.token ? { token: p.token } : {}),
  };
}

/** YAML scalars as k3s writes them: bare, or in single or double quotes without escapes. */
function scalar(v: string): string {
  const t = v.trim();
  return /^(['"]).*\1$/.test(t) ? t.slice(1, -1) : t;
}

const YAML_FIELDS = {
  server: 'server',
  'certificate-authority-data': 'caData',
  'client-certificate-data': 'certData',
  'client-key-data': 'keyData',
  token: 'token',
} as const;
const UNSUPPORTED_YAML =
  /^\s*(certificate-authority|client-certificate|client-key|tokenFile|exec|auth-provider):/m;

function parseYaml(text: string, source: string): KubeConnection {
  if (UNSUPPORTED_YAML.test(text)) refuse(source, 'file references and credential plugins are not read');
  const found: Partial<Record<(typeof YAML_FIELDS)[keyof typeof YAML_FIELDS], string>> = {};
  for (const line of text.split('\n')) {
    const m = /^\s*(?:-\s+)?([a-z-]+):\s*(\S.*)?$/.exec(line);
    if (!m || !(m[1]! in YAML_FIELDS) || m[2] === undefined) continue;
    const key = YAML_FIELDS[m[1] as keyof typeof YAML_FIELDS];
    if (found[key] !== undefined)
      refuse(source, `more than one ${m[1]}: give edgectl a kubeconfig of one cluster`);
    found[key] = scalar(m[2]);
  }
  return fromParts(source, found);
}

interface JsonKubeconfig {
  'current-context'?: string;
  contexts?: { name: string; context: { cluster: string; user: string } }[];
  clusters?: { name: string; cluster: Record<string, unknown> }[];
  users?: { name: string; user: Record<string, unknown> }[];
}

function parseJson(text: string, source: string): KubeConnection {
  let c: JsonKubeconfig;
  try {
    c = JSON.parse(text) as JsonKubeconfig;
  } catch (e) {
    return refuse(source, `not valid JSON: ${(e as Error).message}`);
  }
  const ctx = c.contexts?.find((x) => x.name === c['current-context'])?.context;
  if (!ctx) refuse(source, 'no current context');
  const cluster = c.clusters?.find((x) => x.name === ctx.cluster)?.cluster ?? {};
  const user = c.users?.find((x) => x.name === ctx.user)?.user ?? {};
  const str = (v: unknown) => (typeof v === 'string' ? v : undefined);
  return fromParts(source, {
    server: str(cluster['server']),
    caData: str(cluster['certificate-authority-data']),
    certData: str(user['client-certificate-data']),
    keyData: str(user['client-key-data']),
    token: str(user['token']),
  });
}

/** parseKubeconfig reads a kubeconfig's text; `source` names it in errors. */
export function parseKubeconfig(text: string, source = 'kubeconfig'): KubeConnection {
  return text.trimStart().startsWith('{') ? parseJson(text, source) : parseYaml(text, source);
}

/** readKubeconfig reads the kubeconfig at `path` (k3s's admin one). */
export function readKubeconfig(path: string): KubeConnection {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new EdgeError(
      'KUBECONFIG_UNREADABLE',
      `cannot read the kubeconfig ${path}: ${(e as Error).message}`,
      {
        hint: 'k3s writes it when its server starts; edgectl retries on the next reconcile',
        cause: e,
      },
    );
  }
  return parseKubeconfig(text, path);
}

/** connectionOf takes the current cluster and user of a client-node KubeConfig. */
export function connectionOf(kc: KubeConfigLike): KubeConnection {
  const cluster = kc.getCurrentCluster();
  if (!cluster)
    throw new EdgeError('KUBECONFIG_NO_CLUSTER', 'the kubeconfig has no current cluster', {
      hint: 'set current-context in the kubeconfig',
    });
  const user = kc.getCurrentUser() ?? {};
  const file = (f: string | undefined) => (f === undefined ? undefined : readFileSync(f).toString('base64'));
  return fromParts('kubeconfig', {
    server: cluster.server,
    caData: cluster.caData ?? file(cluster.caFile),
    certData: user.certData ?? file(user.certFile),
    keyData: user.keyData ?? file(user.keyFile),
    token: user.token,
  });
}
