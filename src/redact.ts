/**
 * Credentials never leave mailpacer: every reply text and error message that goes into an event,
 * an error or a log passes through a redactor that knows the configured secrets.
 */
export type Redactor = (text: string | undefined) => string | undefined;

const SECRET_KEYS = ['pass', 'password', 'accessToken', 'refreshToken', 'clientSecret', 'privateKey', 'user'];

/** Collects the secrets of transport options (`auth.pass`, tokens, `auth.user`, URL passwords). */
export function collectSecrets(transport: unknown): string[] {
  const secrets: string[] = [];
  const visit = (value: unknown, depth: number) => {
    if (depth > 3 || typeof value !== 'object' || value === null) return;
    for (const [key, inner] of Object.entries(value)) {
      if (typeof inner === 'string' && SECRET_KEYS.includes(key) && inner.length >= 3) secrets.push(inner);
      else if (key === 'auth' || key === 'dkim' || key === 'oauth2') visit(inner, depth + 1);
    }
  };
  visit(transport, 0);
  if (typeof transport === 'string') {
    try {
      const url = new URL(transport);
      if (url.password) secrets.push(decodeURIComponent(url.password), url.password);
      if (url.username) secrets.push(decodeURIComponent(url.username));
    } catch {
      // not a URL: validated elsewhere
    }
  }
  return secrets;
}

export function createRedactor(secrets: readonly string[]): Redactor {
  const unique = [...new Set(secrets)].filter((s) => s.length >= 3).sort((a, b) => b.length - a.length);
  if (unique.length === 0) return (text) => text;
  // Base64 too: AUTH PLAIN and LOGIN carry credentials that way, and servers sometimes echo them.
  const forms = unique.flatMap((s) => [s, Buffer.from(s).toString('base64')]);
  return (text) => {
    if (!text) return text;
    let out = text;
    for (const form of forms) if (out.includes(form)) out = out.split(form).join('[redacted]');
    return out;
  };
}
