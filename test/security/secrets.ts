/**
 * Looking for secrets in bytes: a secret leaks if any 16-byte piece of it shows up raw, in hex
 * (either case) or in base64 (standard or URL-safe), or if the whole of it does. Pure.
 *
 * The wire-capture test takes a list of secrets so that the lab's k3s tokens and CA private key can
 * join the site key once the lab runs k3s (`pemSecret` turns a PEM private key into its DER bytes,
 * whose base64 is the PEM body).
 */

export interface Secret {
  readonly name: string;
  readonly bytes: Buffer;
}

export interface SecretHit {
  readonly secret: string;
  readonly form: string;
  readonly offset: number;
}

/** Pieces shorter than this are not looked for: 16 random bytes do not turn up by chance. */
export const MIN_PIECE_BYTES = 16;

/** secretForms lists the byte strings whose presence means the secret leaked, each with a label. */
export function secretForms(s: Secret): { form: string; bytes: Buffer }[] {
  const out: { form: string; bytes: Buffer }[] = [];
  const b = s.bytes;
  const piece = Math.min(MIN_PIECE_BYTES, b.length);
  for (let off = 0; off + piece <= b.length; off++) {
    const p = b.subarray(off, off + piece);
    const at = `bytes ${off}..${off + piece - 1}`;
    out.push({ form: `raw ${at}`, bytes: Buffer.from(p) });
    out.push({ form: `hex ${at}`, bytes: Buffer.from(p.toString('hex')) });
    out.push({ form: `HEX ${at}`, bytes: Buffer.from(p.toString('hex').toUpperCase()) });
    // base64 of a piece matches the base64 of the whole only at 3-byte boundaries; drop the padding.
    if (off % 3 === 0) {
      const whole = piece - (piece % 3);
      out.push({ form: `base64 ${at}`, bytes: Buffer.from(b.subarray(off, off + whole).toString('base64')) });
      out.push({
        form: `base64url ${at}`,
        bytes: Buffer.from(b.subarray(off, off + whole).toString('base64url')),
      });
    }
  }
  out.push({ form: 'base64 (whole)', bytes: Buffer.from(b.toString('base64')) });
  return out;
}

/** findSecrets returns every place in `haystack` where a form of a secret occurs. */
export function findSecrets(haystack: Buffer, secrets: readonly Secret[]): SecretHit[] {
  const hits: SecretHit[] = [];
  for (const s of secrets) {
    for (const f of secretForms(s)) {
      let at = haystack.indexOf(f.bytes);
      while (at >= 0) {
        hits.push({ secret: s.name, form: f.form, offset: at });
        at = haystack.indexOf(f.bytes, at + 1);
      }
    }
  }
  return hits;
}

/** pemSecret reads the DER body of a PEM block (a private key, say) as a secret. */
export function pemSecret(name: string, pem: string): Secret {
  const body = /-----BEGIN [^-]+-----([\s\S]*?)-----END [^-]+-----/.exec(pem);
  if (!body) throw new Error(`${name}: no PEM block`);
  return { name, bytes: Buffer.from(body[1]!.replace(/\s+/g, ''), 'base64') };
}

/** textSecret: a secret that is used as text (a k3s join token, a hex key file). */
export function textSecret(name: string, text: string): Secret {
  return { name, bytes: Buffer.from(text.trim(), 'utf8') };
}
