/**
 * An `Upstash-Signature` as QStash signs it (wire-formats.md §d): HS256 JWT, iss "Upstash",
 * sub = the destination URL, iat = nbf = now, exp = +5 min, a jti, and body =
 * base64url(SHA-256(body)). Web APIs only, so the fake QStash on Node and the worker tests inside
 * workerd sign with the same code.
 */
import { SignJWT } from "jose";

function base64url(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes))
    .replace(/\+/g, "-")
    .replace(/\//g, "_")
    .replace(/=+$/, "");
}

/** Signs `body` for delivery to `url` with the signing `key`, issued at `nowMs` (default: the wall clock). */
export async function upstashJwt(key: string, body: string, url: string, nowMs = Date.now()): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(body)));
  const t = Math.floor(nowMs / 1000);
  return new SignJWT({ body: base64url(digest) })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setIssuer("Upstash")
    .setSubject(url)
    .setIssuedAt(t)
    .setNotBefore(t)
    .setExpirationTime(t + 300)
    .setJti(`jwt_${crypto.randomUUID()}`)
    .sign(new TextEncoder().encode(key));
}
