/**
 * The status page's CSRF token (design §5b actions): an HMAC of the session cookie's value under a
 * key derived from the session identity's token. It is bound to that one session, so a token seen
 * in one session is useless in another, and rotating the identity's token voids it with the session.
 *
 * Behind Cloudflare Access the page's "session" is the Access assertion, which Cloudflare adds to
 * every request to the app, a forged cross-site one included: there the token is a keyed digest of
 * that assertion. A forger never sees the assertion (it travels in Access's HttpOnly cookie), so it
 * cannot compute the token; whoever holds the assertion could call the API with it anyway.
 */
import { hmacKey, toHex } from "../../../shared/signature.ts";
import { constantTimeEqual } from "../auth.ts";

const encoder = new TextEncoder();

async function hmac(key: BufferSource, message: string): Promise<ArrayBuffer> {
  return crypto.subtle.sign("HMAC", await hmacKey(key, "sign"), encoder.encode(message));
}

/** The CSRF token for the session cookie value `session` of the identity whose token is `token`. */
export async function csrfToken(token: string, session: string): Promise<string> {
  // A key of its own, so the CSRF MAC never doubles as the session MAC.
  const key = await hmac(encoder.encode(token), "turnout status-page csrf key v1");
  return toHex(await hmac(key, session));
}

/** The CSRF token for a page read with the Cloudflare Access assertion `jwt`. */
export async function accessCsrfToken(jwt: string): Promise<string> {
  return toHex(await hmac(encoder.encode("turnout status-page access csrf key v1"), jwt));
}

/** Whether `given` is the CSRF token `expected` (from csrfToken or accessCsrfToken), compared in constant time. */
export async function csrfMatches(expected: string, given: string): Promise<boolean> {
  if (given === "") return false;
  return constantTimeEqual(given, expected);
}
