/**
 * Bearer-token checks for the ingest and operator endpoints (design §3). Tokens are compared in
 * constant time; an unset token refuses everyone, so a missing secret never opens an endpoint.
 */
import type { Context, MiddlewareHandler } from "hono";
import type { Env } from "./env.ts";
import { Problem, problemResponse } from "./problem.ts";
import { readCookie, SESSION_COOKIE, verifySession } from "./session.ts";

/** The secrets that guard bearer-token endpoints. */
export type BearerTokenName = "ALERTMANAGER_TOKEN" | "NAGIOS_TOKEN" | "OPERATOR_TOKEN";

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

/** Middleware: 401 unless the request carries `Authorization: Bearer $<name>`. */
export function requireBearer(name: BearerTokenName): MiddlewareHandler<{ Bindings: Env }> {
  return async (c, next) => {
    const expected = c.env[name];
    if (expected === undefined || expected === "") {
      return unauthorized(`${name} is not configured, so this endpoint refuses every request`);
    }
    const given = bearerToken(c.req.header("authorization"));
    // The status page's session cookie also reads the operator API (design §5b; GET/HEAD only).
    if (given === null && name === "OPERATOR_TOKEN" && (await sessionAuthorized(c, expected))) return next();
    if (given === null) return unauthorized("missing Authorization: Bearer <token>");
    if (!(await constantTimeEqual(given, expected))) return unauthorized("wrong bearer token");
    await next();
  };
}

/**
 * A valid status-page session cookie, for safe methods only: the cookie is SameSite=Strict, and
 * limiting it to reads means even a same-site forgery cannot issue a command with it.
 */
async function sessionAuthorized(c: Context<{ Bindings: Env }>, operatorToken: string): Promise<boolean> {
  if (c.req.method !== "GET" && c.req.method !== "HEAD") return false;
  const value = readCookie(c.req.header("cookie"), SESSION_COOKIE);
  return value !== null && (await verifySession(operatorToken, value, Date.now() / 1000));
}

/** Whether the request carries `Bearer $OPERATOR_TOKEN` or (GET/HEAD) a valid status-page session cookie. */
export async function operatorAuthorized(c: Context<{ Bindings: Env }>): Promise<boolean> {
  const expected = c.env.OPERATOR_TOKEN;
  if (expected === undefined || expected === "") return false;
  const given = bearerToken(c.req.header("authorization"));
  if (given !== null) return constantTimeEqual(given, expected);
  return sessionAuthorized(c, expected);
}
