/**
 * The status page's session cookie (design §3a, §5b): after signing in once (the POST form, or
 * `/?token=` once), the browser holds `__Host-turnout_session=v2.<expiry>.<identity>.<mac>`, an
 * HMAC-SHA256 over expiry and identity name with a key derived from that identity's token. The
 * token itself never leaves the server again, and rotating a token ends that identity's sessions.
 */

import { fromHex, hmacKey, toHex } from "../../shared/signature.ts";

/**
 * Cookie name. `__Host-` makes browsers refuse it unless Secure, Path=/ and host-only, so no
 * sibling subdomain can set or shadow it. Browsers treat http://127.0.0.1 and localhost as secure
 * contexts, so local runs keep working.
 */
export const SESSION_COOKIE = "__Host-turnout_session";
/** Sessions last 12 hours: a working day on call, then `/?token=` again. */
export const SESSION_TTL_SECONDS = 12 * 3600;

const encoder = new TextEncoder();

async function hmac(key: BufferSource, message: string): Promise<ArrayBuffer> {
  return crypto.subtle.sign("HMAC", await hmacKey(key, "sign"), encoder.encode(message));
}

/** The session MAC key: derived from the token, so a cookie MAC never doubles as a token MAC elsewhere. */
async function sessionKey(operatorToken: string): Promise<ArrayBuffer> {
  return hmac(encoder.encode(operatorToken), "turnout status-page session key v1");
}

/** A new session for `identity` (signed with its token), valid until `nowSeconds + SESSION_TTL_SECONDS`. */
export async function issueSession(token: string, nowSeconds: number, identity = "operator"): Promise<string> {
  const expiry = Math.floor(nowSeconds) + SESSION_TTL_SECONDS;
  const mac = await hmac(await sessionKey(token), `v2.${expiry}.${identity}`);
  return `v2.${expiry}.${identity}.${toHex(mac)}`;
}

/** Whether `value` is an unexpired session issued to `identity` with this token (MAC compared in constant time). */
export async function verifySession(
  token: string,
  value: string,
  nowSeconds: number,
  identity = "operator",
): Promise<boolean> {
  const m = /^v2\.(\d{1,12})\.([A-Za-z0-9._@:-]{1,64})\.([0-9a-f]{64})$/.exec(value);
  if (!m?.[1] || !m[2] || !m[3] || m[2] !== identity) return false;
  const expiry = Number(m[1]);
  if (!(expiry > nowSeconds)) return false;
  const expected = await hmac(await sessionKey(token), `v2.${expiry}.${identity}`);
  const given = fromHex(m[3]);
  if (!given) return false;
  // `timingSafeEqual` is a workerd extension of Web Crypto
  // (developers.cloudflare.com/workers/runtime-apis/web-crypto/#timingsafeequal).
  return given.byteLength === expected.byteLength && crypto.subtle.timingSafeEqual(given, expected);
}

/**
 * The `Set-Cookie` value for a session: HttpOnly (no script reads it), Secure, SameSite=Strict (no
 * cross-site request carries it, which is what keeps the cookie from authorizing forged requests).
 */
export function sessionCookie(value: string): string {
  return `${SESSION_COOKIE}=${value}; Max-Age=${SESSION_TTL_SECONDS}; Path=/; HttpOnly; Secure; SameSite=Strict`;
}

/** One cookie's value from a `Cookie` header, or null. */
export function readCookie(header: string | undefined | null, name: string): string | null {
  for (const part of (header ?? "").split(";")) {
    const i = part.indexOf("=");
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return null;
}
