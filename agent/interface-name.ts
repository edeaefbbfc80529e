/**
 * Network interface names as the Linux kernel accepts them (dev_valid_name): 1 to 15 bytes, not
 * `.` or `..`, and no `/`, `:` or white space. Everything else is a valid name, `@` included;
 * `ip link` shows a VLAN or veth as `name@parent`, but only the part before `@` is its name.
 */
export const IFNAMSIZ = 16;

/** interfaceNameProblem says why the kernel would refuse `name`, or null. */
export function interfaceNameProblem(name: string): string | null {
  const bytes = Buffer.byteLength(name);
  if (bytes === 0) return 'must be a network interface name, not empty';
  if (bytes >= IFNAMSIZ)
    return `must be a network interface name: at most ${IFNAMSIZ - 1} bytes (it has ${bytes})`;
  if (name === '.' || name === '..') return 'must be a network interface name, not . or ..';
  if (/[\s/:]/.test(name)) return 'must be a network interface name: no spaces, / or :';
  return null;
}
