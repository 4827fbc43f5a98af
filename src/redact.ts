/**
 * Credentials never leave mailpacer: every reply text and error message that goes into an event,
 * an error or a log passes through a redactor that knows the configured secrets.
 */
export type Redactor = (text: string | undefined) => string | undefined;

const SECRET_KEYS = ['pass', 'password', 'accessToken', 'refreshToken', 'clientSecret', 'privateKey', 'user'];

/** What a secret, or a base64 text that carries one, becomes. */
const REDACTED = '[redacted]';

/** Secrets shorter than this are not looked for: a two-letter secret would redact half of every reply. */
const MIN_SECRET_LENGTH = 3;

/**
 * A run of base64 text (the URL-safe alphabet too), at least one group long. `-` and `_` belong to
 * it, so a run may start with a word glued to the base64 text: each run is decoded from each of its
 * first four characters (see `carriesSecret`).
 */
const BASE64_RUN = /[A-Za-z0-9+/_-]{4,}={0,2}/g;

/** Options that hold secrets under `SECRET_KEYS`: `dkim.keys` is an array of them. */
const SECRET_HOLDERS = ['auth', 'dkim', 'oauth2', 'keys'];

/**
 * Collects the secrets of transport options: `auth.pass`, tokens, `auth.user`, DKIM private keys
 * (`dkim.privateKey` and each of `dkim.keys`), and the user names and passwords of the connection
 * URL and of a `proxy` URL.
 */
export function collectSecrets(transport: unknown): string[] {
  const secrets: string[] = [];
  const visit = (value: unknown, depth: number) => {
    if (depth > 3 || typeof value !== 'object' || value === null) return;
    for (const [key, inner] of Object.entries(value)) {
      // A number is sent as its digits (nodemailer makes a string of it): `pass: 73915286` too.
      const text = typeof inner === 'string' ? inner : typeof inner === 'number' || typeof inner === 'bigint' ? String(inner) : undefined;
      if (text !== undefined && SECRET_KEYS.includes(key) && text.length >= MIN_SECRET_LENGTH) secrets.push(text);
      else if (SECRET_HOLDERS.includes(key) || Array.isArray(value)) visit(inner, depth + 1);
    }
  };
  visit(transport, 0);
  if (typeof transport === 'string') secrets.push(...urlSecrets(transport));
  else if (typeof transport === 'object' && transport !== null) {
    for (const key of ['url', 'proxy']) {
      const url = (transport as Record<string, unknown>)[key];
      if (typeof url === 'string') secrets.push(...urlSecrets(url));
    }
  }
  return secrets;
}

/** The user name and password of a connection URL, as written and decoded. */
function urlSecrets(text: string): string[] {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return []; // not a URL: the schema refuses it before a transport is made
  }
  return [url.password, safeDecode(url.password), url.username, safeDecode(url.username)].filter((s) => s.length >= MIN_SECRET_LENGTH);
}

/** `decodeURIComponent`, or the text as it is when its percent signs do not encode anything. */
function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/**
 * A redactor for `secrets`. It hides each secret as written and percent-encoded (URL user info),
 * and every run of base64 text that decodes to bytes holding one: a server that echoes SASL lines
 * echoes them base64-encoded, and a secret there sits inside a longer encoding at any of three byte
 * alignments (`AUTH PLAIN` is base64 of `authzid\0user\0pass`, `XOAUTH2` of a line holding the
 * access token, `AUTH LOGIN` sends user and password each on its own). Decoding the run, rather
 * than looking for the secret's own encodings in it, is exact at every alignment and for every
 * secret length; the whole run goes, so no part of the encoded line is left behind.
 */
export function createRedactor(secrets: readonly string[]): Redactor {
  const unique = [...new Set(secrets)].filter((s) => s.length >= MIN_SECRET_LENGTH);
  if (unique.length === 0) return (text) => text;
  // Longest first, so that a secret holding a shorter one is hidden whole.
  const plain = [...new Set(unique.flatMap((s) => [s, encodeURIComponent(s)]))].sort((a, b) => b.length - a.length);
  const encoded = unique.map((s) => Buffer.from(s));
  const carriesSecret = (run: string): boolean => {
    for (let start = 0; start < 4 && run.length - start >= 4; start++) {
      const bytes = Buffer.from(run.slice(start), 'base64');
      if (encoded.some((secret) => bytes.includes(secret))) return true;
    }
    return false;
  };
  return (text) => {
    if (!text) return text;
    // Base64 first: a plain secret replaced inside a base64 run would leave the rest undecodable.
    let out = text.replace(BASE64_RUN, (run) => (carriesSecret(run) ? REDACTED : run));
    for (const form of plain) if (out.includes(form)) out = out.split(form).join(REDACTED);
    return out;
  };
}
