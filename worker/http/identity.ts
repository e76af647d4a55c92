/**
 * Who is asking (design §3a). Every operator request is made by an identity, taken from its
 * credential and never from the request body:
 * - a named bearer token of `OPERATOR_TOKENS` (`{"<name>": {"token", "role"}}`), or the legacy
 *   `OPERATOR_TOKEN` as the identity `operator` with role `operator`;
 * - a Cloudflare Access JWT (`Cf-Access-Jwt-Assertion`), verified against the team's JWKS, whose
 *   `email` claim `access.roles` maps to a role;
 * - the status page's session cookie, which names the identity it was issued to (GET/HEAD only).
 * `viewer` may read; `operator` may also command. No or an unknown credential is 401; a known
 * identity without the role is 403.
 */
import type { Context, MiddlewareHandler } from "hono";
import { createRemoteJWKSet, type JWTVerifyGetKey, jwtVerify } from "jose";
import { z } from "zod";
import type { ConfigProblem, WorkerConfig } from "../../shared/config.ts";
import { loadConfig } from "../config.ts";
import type { Env } from "../env.ts";
import { Problem, problemResponse } from "../problem.ts";
import { bearerToken, constantTimeEqual } from "./auth.ts";
import { readCookie, SESSION_COOKIE, verifySession } from "./session.ts";

export const RoleSchema = z.enum(["viewer", "operator"]);
export type Role = z.infer<typeof RoleSchema>;

/** An authenticated caller. `role` null: known (e.g. an Access email) but granted nothing. */
export interface Identity {
  name: string;
  role: Role | null;
  via: "token" | "access" | "session";
}

/** One named token (never logged, never shown: `/healthz` names the identity only). */
export interface TokenIdentity {
  name: string;
  token: string;
  role: Role;
}

/** Tokens shorter than this make the config invalid (design §3a). */
export const MIN_TOKEN_LENGTH = 16;

const TokensSchema = z.record(
  z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._@:-]{0,63}$/, "identity names are letters, digits and . _ @ : -"),
  z.object({ token: z.string(), role: RoleSchema }).strict(),
);

let tokenCache: { key: string; value: { identities: TokenIdentity[]; problems: ConfigProblem[] } } | undefined;

/**
 * The token identities of this environment and the problems that make them invalid (a short
 * token, a token two identities share, unreadable `OPERATOR_TOKENS`). With problems, no token
 * authenticates anyone: a half-valid credential set is not one to guess about.
 */
export function tokenIdentities(env: Pick<Env, "OPERATOR_TOKEN" | "OPERATOR_TOKENS">): {
  identities: TokenIdentity[];
  problems: ConfigProblem[];
} {
  const key = `${env.OPERATOR_TOKEN ?? ""}\u0000${env.OPERATOR_TOKENS ?? ""}`;
  if (tokenCache?.key === key) return tokenCache.value;
  const problems: ConfigProblem[] = [];
  const identities: TokenIdentity[] = [];
  if (env.OPERATOR_TOKENS !== undefined && env.OPERATOR_TOKENS.trim() !== "") {
    let raw: unknown;
    try {
      raw = JSON.parse(env.OPERATOR_TOKENS);
    } catch {
      raw = undefined;
      problems.push({ path: "OPERATOR_TOKENS", message: "is not JSON" });
    }
    if (raw !== undefined) {
      const parsed = TokensSchema.safeParse(raw);
      if (!parsed.success) {
        for (const issue of parsed.error.issues) {
          // Name the identity (the first path element), never a value.
          problems.push({ path: ["OPERATOR_TOKENS", ...issue.path.slice(0, 2)].join("."), message: issue.message });
        }
      } else {
        for (const [name, t] of Object.entries(parsed.data)) identities.push({ name, token: t.token, role: t.role });
      }
    }
  }
  if (env.OPERATOR_TOKEN !== undefined && env.OPERATOR_TOKEN !== "") {
    if (identities.some((i) => i.name === "operator")) {
      problems.push({ path: "OPERATOR_TOKENS.operator", message: "the name operator is taken by OPERATOR_TOKEN" });
    } else identities.push({ name: "operator", token: env.OPERATOR_TOKEN, role: "operator" });
  }
  const owner = new Map<string, string>();
  for (const i of identities) {
    const path =
      i.name === "operator" && i.token === env.OPERATOR_TOKEN ? "OPERATOR_TOKEN" : `OPERATOR_TOKENS.${i.name}`;
    if (i.token.length < MIN_TOKEN_LENGTH) {
      problems.push({ path, message: `identity ${i.name}: the token is shorter than ${MIN_TOKEN_LENGTH} characters` });
    }
    const first = owner.get(i.token);
    if (first !== undefined) {
      problems.push({ path, message: `identities ${first} and ${i.name} share a token; give each its own` });
    } else owner.set(i.token, i.name);
  }
  const value = { identities: problems.length === 0 ? identities : [], problems };
  tokenCache = { key, value };
  return value;
}

/** The identity whose token this is; every token is compared, so timing does not tell which matched. */
export async function byToken(env: Env, given: string): Promise<TokenIdentity | null> {
  let found: TokenIdentity | null = null;
  for (const i of tokenIdentities(env).identities) {
    if ((await constantTimeEqual(given, i.token)) && found === null) found = i;
  }
  return found;
}

/** The identity a status-page session was issued to, if the cookie verifies against its token. */
export async function sessionIdentity(env: Env, value: string, nowSeconds: number): Promise<TokenIdentity | null> {
  const name = /^v2\.\d{1,12}\.([A-Za-z0-9._@:-]{1,64})\./.exec(value)?.[1];
  const identity = tokenIdentities(env).identities.find((i) => i.name === name);
  if (!identity) return null;
  return (await verifySession(identity.token, value, nowSeconds, identity.name)) ? identity : null;
}

/**
 * Test seam: tests running in the worker's isolate hand the Access verifier a local JWKS instead
 * of the team's certs URL (no network here).
 */
export const accessTesting: { jwks?: JWTVerifyGetKey } = {};

// One remote key set per team, kept for the isolate's life: jose caches the keys it fetched and
// refetches on an unknown `kid` (with a cooldown), which is how it recommends using it.
const jwksByTeam = new Map<string, JWTVerifyGetKey>();

function accessKeys(teamDomain: string): JWTVerifyGetKey {
  if (accessTesting.jwks) return accessTesting.jwks;
  let keys = jwksByTeam.get(teamDomain);
  if (!keys) {
    keys = createRemoteJWKSet(new URL(`https://${teamDomain}/cdn-cgi/access/certs`));
    jwksByTeam.set(teamDomain, keys);
  }
  return keys;
}

/** The role `access.roles` gives an email: an exact entry first, then `*@<domain>`. */
export function accessRole(roles: Record<string, Role>, email: string): Role | null {
  const lower = email.toLowerCase();
  for (const [pattern, role] of Object.entries(roles)) if (pattern.toLowerCase() === lower) return role;
  const domain = lower.slice(lower.lastIndexOf("@") + 1);
  for (const [pattern, role] of Object.entries(roles)) if (pattern.toLowerCase() === `*@${domain}`) return role;
  return null;
}

/** Verifies a Cloudflare Access assertion (RS256, audience, expiry); the person's identity, or null. */
async function byAccess(access: NonNullable<WorkerConfig["access"]>, jwt: string): Promise<Identity | null> {
  try {
    const { payload } = await jwtVerify(jwt, accessKeys(access.teamDomain), {
      audience: access.audience,
      algorithms: ["RS256"],
      issuer: `https://${access.teamDomain}`,
    });
    const email = typeof payload.email === "string" ? payload.email : null;
    if (email === null) return null;
    return { name: email, role: accessRole(access.roles, email), via: "access" };
  } catch {
    return null;
  }
}

/**
 * The caller's identity from its credential, `null` when it sent none, or `"invalid"` when the
 * credential it sent matches nobody (wrong token, bad JWT, forged cookie).
 */
export async function identify<E extends { Bindings: Env }>(c: Context<E>): Promise<Identity | null | "invalid"> {
  const given = bearerToken(c.req.header("authorization"));
  if (given !== null) {
    const t = await byToken(c.env, given);
    return t ? { name: t.name, role: t.role, via: "token" } : "invalid";
  }
  const jwt = c.req.header("cf-access-jwt-assertion");
  if (jwt !== undefined && jwt !== "") {
    const loaded = loadConfig(c.env);
    const access = loaded.ok ? loaded.value.access : undefined;
    if (!access) return "invalid";
    return (await byAccess(access, jwt)) ?? "invalid";
  }
  const cookie = readCookie(c.req.header("cookie"), SESSION_COOKIE);
  if (cookie !== null) {
    // The cookie is SameSite=Strict, and limiting it to reads means even a same-site forgery
    // cannot issue a command with it.
    if (c.req.method !== "GET" && c.req.method !== "HEAD") return null;
    const s = await sessionIdentity(c.env, cookie, Date.now() / 1000);
    return s ? { name: s.name, role: s.role, via: "session" } : "invalid";
  }
  return null;
}

function unauthorized(detail: string): Response {
  return problemResponse(new Problem("unauthorized", detail), { "www-authenticate": 'Bearer realm="turnout"' });
}

/** The identity set by {@link requireRole} for this request. */
export function identityOf(c: Context): Identity {
  const id = c.get("identity") as Identity | undefined;
  if (!id) throw new Error("identityOf called on a route without requireRole");
  return id;
}

/** Whether `role` includes `needed` (operators may do what viewers may). */
export function hasRole(role: Role | null, needed: Role): boolean {
  return role === "operator" || (role === "viewer" && needed === "viewer");
}

/** Middleware: 401 for no or an unknown credential, 403 for a known identity without `role`. */
export function requireRole(role: Role): MiddlewareHandler<{ Bindings: Env; Variables: { identity: Identity } }> {
  return async (c, next) => {
    const id = await identify(c);
    if (id === null) {
      const { identities, problems } = tokenIdentities(c.env);
      if (identities.length === 0 && problems.length > 0) {
        return unauthorized(
          "the operator tokens are misconfigured (see /healthz), so this endpoint refuses every request",
        );
      }
      return unauthorized("missing credential: Authorization: Bearer <token>, Cf-Access-Jwt-Assertion, or a session");
    }
    if (id === "invalid") return unauthorized("the credential is not valid");
    if (!hasRole(id.role, role)) {
      return problemResponse(
        new Problem(
          "forbidden",
          `${id.name} has ${id.role === null ? "no role" : `role ${id.role}`}; this needs ${role}`,
        ),
      );
    }
    c.set("identity", id);
    await next();
  };
}
