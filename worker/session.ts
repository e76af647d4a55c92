/**
 * The status page's session cookie (design §5b): after `/?token=<OPERATOR_TOKEN>` once, the browser
 * holds `turnout_session=v1.<expiry>.<mac>`, an HMAC-SHA256 over the expiry with a key derived from
 * OPERATOR_TOKEN. The token itself never leaves the server again, and rotating the token ends every
 * session.
 */

import { fromHex, hmacKey, toHex } from "../shared/signature.ts";

/** Cookie name; no `__Host-` prefix so the page also works on http://127.0.0.1 in local runs. */
export const SESSION_COOKIE = "turnout_session";
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

/** A new session value valid until `nowSeconds + SESSION_TTL_SECONDS`. */
export async function issueSession(operatorToken: string, nowSeconds: number): Promise<string> {
  const expiry = Math.floor(nowSeconds) + SESSION_TTL_SECONDS;
  const mac = await hmac(await sessionKey(operatorToken), `v1.${expiry}`);
  return `v1.${expiry}.${toHex(mac)}`;
}

/** Whether `value` is an unexpired session issued with this token (MAC compared in constant time). */
export async function verifySession(operatorToken: string, value: string, nowSeconds: number): Promise<boolean> {
  const m = /^v1\.(\d{1,12})\.([0-9a-f]{64})$/.exec(value);
  if (!m?.[1] || !m[2]) return false;
  const expiry = Number(m[1]);
  if (!(expiry > nowSeconds)) return false;
  const expected = await hmac(await sessionKey(operatorToken), `v1.${expiry}`);
  const given = fromHex(m[2]);
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
