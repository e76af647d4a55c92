/**
 * A faithful local fake of DigitalOcean's domain records API (v2) over real HTTP on 127.0.0.1:
 * list with `type` and fully-qualified `name` filters, pagination (`page`, `per_page` ≤ 200,
 * `links.pages.next/last`, `meta.total`), create (201), update (PUT), delete (204); record names
 * stored relative to the domain (`@` = apex); bearer auth with `{id, message}` error bodies
 * (401 Unauthorized, 403 Forbidden, 404 not_found, 422 unprocessable_entity); on demand 429 with
 * Retry-After, 500 on a chosen write, or no answer at all.
 * Reference: https://docs.digitalocean.com/reference/api/digitalocean/#tag/Domain-Records
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { isIPv4, isIPv6 } from "node:net";
import {
  bearerAccess,
  type FakeDnsApi,
  type FakeDnsOptions,
  listenLocal,
  rateLimiter,
  writeFailer,
} from "./fake-dns-api.ts";
import { readText } from "./request-text.ts";

export interface FakeDoRecord {
  id: number;
  type: string;
  /** Relative to the domain; `@` for the apex. */
  name: string;
  data: string;
  priority: null;
  port: null;
  ttl: number;
  weight: null;
  flags: null;
  tag: null;
}

/** `maxPerPage` defaults to 200 (DigitalOcean caps per_page at 200). */
export interface FakeDigitalOceanOptions extends FakeDnsOptions {
  domain: string;
}

/** The fake; `addRecord` and `valuesOf` take names relative to the domain, values are `data`. */
export type FakeDigitalOcean = FakeDnsApi<FakeDoRecord>;

function err(id: string, message: string) {
  return { id, message };
}

/** The JSON body, or null when it is empty or not JSON (the validator then answers 422). */
async function readBody(req: IncomingMessage): Promise<unknown> {
  const text = await readText(req);
  try {
    return text ? JSON.parse(text) : null;
  } catch {
    return null;
  }
}

/** Starts the fake on a random port. */
export async function startFakeDigitalOcean(options: FakeDigitalOceanOptions): Promise<FakeDigitalOcean> {
  const records: FakeDoRecord[] = [];
  const requests: FakeDigitalOcean["requests"] = [];
  const rateLimit = rateLimiter();
  const writeFault = writeFailer();
  let nextId = 1000;
  const maxPerPage = options.maxPerPage ?? 200;
  const domain = options.domain.toLowerCase();
  let base = "";

  const addRecord = (type: string, name: string, data: string, ttl = 1800): FakeDoRecord => {
    const rec: FakeDoRecord = {
      id: nextId++,
      type,
      name,
      data,
      priority: null,
      port: null,
      ttl,
      weight: null,
      flags: null,
      tag: null,
    };
    records.push(rec);
    return rec;
  };

  const validate = (
    body: unknown,
  ): { ok: true; type: string; name: string; data: string; ttl: number } | { ok: false; message: string } => {
    if (typeof body !== "object" || body === null) return { ok: false, message: "Request body is invalid" };
    const b = body as Record<string, unknown>;
    if (typeof b.type !== "string") return { ok: false, message: "Type can't be blank" };
    if (typeof b.name !== "string" || b.name.includes(domain)) {
      // DigitalOcean stores relative names; a FQDN here would create "www.example.com.example.com".
      return { ok: false, message: "Name is invalid" };
    }
    if (typeof b.data !== "string") return { ok: false, message: "Data can't be blank" };
    if (b.type === "A" && !isIPv4(b.data)) return { ok: false, message: "Data needs to be a valid IPv4 address" };
    if (b.type === "AAAA" && !isIPv6(b.data)) return { ok: false, message: "Data needs to be a valid IPv6 address" };
    if (b.type === "CNAME" && !(b.data === "@" || b.data.endsWith("."))) {
      return { ok: false, message: "Data needs to end with a dot (.)" };
    }
    const ttl = typeof b.ttl === "number" ? b.ttl : 1800;
    if (ttl < 30) return { ok: false, message: "TTL needs to be at least 30" };
    return { ok: true, type: b.type, name: b.name, data: b.data, ttl };
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? "/", "http://fake");
    const send = (status: number, body?: unknown, headers: Record<string, string> = {}) => {
      requests.push({ method: req.method ?? "", path: req.url ?? "", status });
      if (body === undefined) {
        res.writeHead(status, headers);
        res.end();
        return;
      }
      res.writeHead(status, { "content-type": "application/json", ...headers });
      res.end(JSON.stringify(body));
    };
    const retryAfter = rateLimit.take();
    if (retryAfter !== undefined) {
      return send(429, err("too_many_requests", "API Rate limit exceeded."), { "retry-after": retryAfter });
    }
    if (writeFault.take(req.method)) return send(500, err("server_error", "Server was unable to give you a response."));
    const access = bearerAccess(req, options);
    if (access === "none") return send(401, err("Unauthorized", "Unable to authenticate you."));
    const readOnly = access === "read";
    const m = /^\/v2\/domains\/([^/]+)\/records(?:\/(\d+))?$/.exec(url.pathname);
    if (!m || decodeURIComponent(m[1] ?? "").toLowerCase() !== domain) {
      return send(404, err("not_found", "The resource you were accessing could not be found."));
    }
    const method = req.method ?? "GET";
    if (method !== "GET" && readOnly) {
      return send(403, err("Forbidden", "You are not authorized to perform this operation"));
    }
    const id = m[2] === undefined ? undefined : Number(m[2]);
    if (id === undefined && method === "GET") {
      const type = url.searchParams.get("type");
      const fqdn = url.searchParams.get("name")?.toLowerCase();
      const perPage = Math.min(Number(url.searchParams.get("per_page") ?? 20) || 20, maxPerPage);
      const page = Math.max(1, Number(url.searchParams.get("page") ?? 1) || 1);
      const all = records.filter((r) => {
        const full = r.name === "@" ? domain : `${r.name}.${domain}`;
        return (!type || r.type === type) && (!fqdn || full === fqdn);
      });
      const last = Math.max(1, Math.ceil(all.length / perPage));
      const link = (p: number) => {
        const u = new URL(`${base}${url.pathname}`);
        for (const [k, v] of url.searchParams) u.searchParams.set(k, v);
        u.searchParams.set("page", String(p));
        return u.toString();
      };
      const pages: Record<string, string> = {};
      if (page > 1) Object.assign(pages, { first: link(1), prev: link(page - 1) });
      if (page < last) Object.assign(pages, { next: link(page + 1), last: link(last) });
      return send(200, {
        domain_records: all.slice((page - 1) * perPage, page * perPage),
        links: { pages },
        meta: { total: all.length },
      });
    }
    if (id === undefined && method === "POST") {
      const v = validate(await readBody(req));
      if (!v.ok) return send(422, err("unprocessable_entity", v.message));
      return send(201, { domain_record: addRecord(v.type, v.name, v.data, v.ttl) });
    }
    const index = records.findIndex((r) => r.id === id);
    const existing = records[index];
    if (!existing) return send(404, err("not_found", "The resource you were accessing could not be found."));
    if (method === "PUT") {
      const v = validate(await readBody(req));
      if (!v.ok) return send(422, err("unprocessable_entity", v.message));
      Object.assign(existing, { type: v.type, name: v.name, data: v.data, ttl: v.ttl });
      return send(200, { domain_record: existing });
    }
    if (method === "DELETE") {
      records.splice(index, 1);
      return send(204);
    }
    return send(405, err("method_not_allowed", "Method not allowed"));
  };

  const server = await listenLocal(handle, (e) => err("server_error", String(e)));
  base = server.origin;
  return {
    baseUrl: base,
    records,
    requests,
    addRecord,
    valuesOf: (type, name) =>
      records
        .filter((r) => r.type === type && r.name === name)
        .map((r) => r.data)
        .sort(),
    rateLimitNext: rateLimit.arm,
    failNthWrite: writeFault.arm,
    stallNext: server.stallNext,
    stop: server.stop,
  };
}
