/**
 * Bearer-token checks for the ingest endpoints (design §3), and the constant-time comparison every
 * credential check uses. Tokens are compared in
 * constant time; an unset token refuses everyone, so a missing secret never opens an endpoint.
 */
import type { MiddlewareHandler } from "hono";
import type { Env } from "../env.ts";
import { Problem, problemResponse } from "../problem.ts";

/** The secrets that guard the ingest endpoints (operator identities: worker/http/identity.ts). */
export type BearerTokenName = "ALERTMANAGER_TOKEN" | "NAGIOS_TOKEN";

const encoder = new TextEncoder();

/**
 * Constant-time equality of two strings of any length: both are hashed to 32 bytes first, so
 * neither the comparison nor its length check leaks where the strings differ.
 * `crypto.subtle.timingSafeEqual` is a workerd extension (developers.cloudflare.com/workers/
 * runtime-apis/web-crypto/#timingsafeequal).
 */
export async function constantTimeEqual(a: string, b: string): Promise<boolean> {
  const [da, db] = await Promise.all([
    crypto.subtle.digest("SHA-256", encoder.encode(a)),
    crypto.subtle.digest("SHA-256", encoder.encode(b)),
  ]);
  return crypto.subtle.timingSafeEqual(da, db);
}

/** The token of an `Authorization: Bearer <token>` header (scheme case-insensitive), or null. */
export function bearerToken(header: string | undefined | null): string | null {
  const m = /^\s*Bearer\s+(\S+)\s*$/i.exec(header ?? "");
  return m?.[1] ?? null;
}

function unauthorized(detail: string): Response {
  return problemResponse(new Problem("unauthorized", detail), { "www-authenticate": 'Bearer realm="turnout"' });
}

/** Middleware: 401 unless the request carries `Authorization: Bearer $<name>` (the ingest tokens). */
export function requireBearer(name: BearerTokenName): MiddlewareHandler<{ Bindings: Env }> {
  return async (c, next) => {
    const expected = c.env[name];
    if (expected === undefined || expected === "") {
      return unauthorized(`${name} is not configured, so this endpoint refuses every request`);
    }
    const given = bearerToken(c.req.header("authorization"));
    if (given === null) return unauthorized("missing Authorization: Bearer <token>");
    if (!(await constantTimeEqual(given, expected))) return unauthorized("wrong bearer token");
    await next();
  };
}
