/**
 * A faithful local fake of Cloudflare's DNS records API (v4) over real HTTP on 127.0.0.1:
 * list with `type`/`name` filters and pagination (`page`, `per_page`, `result_info`), create,
 * update (PUT), delete; bearer auth with 401/403 bodies shaped like Cloudflare's
 * (`{success:false, errors:[{code,message}], messages:[], result:null}`); 404 for unknown zones or
 * records; on demand 429 with Retry-After, 500 on a chosen write, or no answer at all.
 * Reference: https://developers.cloudflare.com/api/resources/dns/subresources/records/
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

export interface FakeCfRecord {
  id: string;
  zone_id: string;
  type: string;
  name: string;
  content: string;
  ttl: number;
  proxied: boolean;
}

/** `maxPerPage` defaults to 5000 (Cloudflare caps per_page). */
export interface FakeCloudflareOptions extends FakeDnsOptions {
  zoneId: string;
}

/** The fake; its `baseUrl` ends in /client/v4 and `addRecord`'s value is the record's content. */
export type FakeCloudflare = FakeDnsApi<FakeCfRecord>;

function errorBody(code: number, message: string) {
  return { success: false, errors: [{ code, message }], messages: [], result: null };
}

/** Starts the fake on a random port. */
export async function startFakeCloudflare(options: FakeCloudflareOptions): Promise<FakeCloudflare> {
  const records: FakeCfRecord[] = [];
  const requests: FakeCloudflare["requests"] = [];
  const rateLimit = rateLimiter();
  const writeFault = writeFailer();
  let nextId = 1;
  const maxPerPage = options.maxPerPage ?? 5000;

  const addRecord = (type: string, name: string, content: string, ttl = 60): FakeCfRecord => {
    const rec = {
      id: (nextId++).toString(16).padStart(32, "0"),
      zone_id: options.zoneId,
      type,
      name,
      content,
      ttl,
      proxied: false,
    };
    records.push(rec);
    return rec;
  };

  const validate = (
    body: unknown,
  ): { ok: true; rec: Omit<FakeCfRecord, "id" | "zone_id"> } | { ok: false; error: object } => {
    if (typeof body !== "object" || body === null)
      return { ok: false, error: errorBody(9207, "Request body is invalid.") };
    const b = body as Record<string, unknown>;
    if (typeof b.type !== "string" || typeof b.name !== "string" || typeof b.content !== "string") {
      return { ok: false, error: errorBody(9005, "DNS record type, name and content are required.") };
    }
    if (b.type === "A" && !isIPv4(b.content)) {
      return { ok: false, error: errorBody(9005, "Content for A record must be a valid IPv4 address.") };
    }
    if (b.type === "AAAA" && !isIPv6(b.content)) {
      return { ok: false, error: errorBody(9005, "Content for AAAA record must be a valid IPv6 address.") };
    }
    const ttl = typeof b.ttl === "number" ? b.ttl : 1;
    if (ttl !== 1 && (ttl < 30 || ttl > 86400))
      return {
        ok: false,
        error: errorBody(9021, "Invalid TTL. Must be between 30 and 86400 seconds, or 1 for Automatic."),
      };
    return { ok: true, rec: { type: b.type, name: b.name, content: b.content, ttl, proxied: b.proxied === true } };
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<number> => {
    const url = new URL(req.url ?? "/", "http://fake");
    const send = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      requests.push({ method: req.method ?? "", path: req.url ?? "", status });
      res.writeHead(status, { "content-type": "application/json", ...headers });
      res.end(JSON.stringify(body));
      return status;
    };
    const retryAfter = rateLimit.take();
    if (retryAfter !== undefined) {
      return send(429, errorBody(971, "Please wait and consider throttling your request speed"), {
        "retry-after": retryAfter,
      });
    }
    if (writeFault.take(req.method)) return send(500, errorBody(10001, "Internal Server Error"));
    const access = bearerAccess(req, options);
    if (access === "none") return send(401, errorBody(10000, "Authentication error"));
    const readOnly = access === "read";
    const m = /^\/client\/v4\/zones\/([^/]+)\/dns_records(?:\/([^/]+))?$/.exec(url.pathname);
    if (!m) return send(404, errorBody(7000, "No route for that URI"));
    if (m[1] !== options.zoneId) {
      return send(
        404,
        errorBody(7003, `Could not route to ${url.pathname}, perhaps your object identifier is invalid?`),
      );
    }
    const id = m[2];
    const method = req.method ?? "GET";
    if (method !== "GET" && readOnly) return send(403, errorBody(9109, "Unauthorized to access requested resource"));

    if (!id && method === "GET") {
      const type = url.searchParams.get("type");
      const name = url.searchParams.get("name") ?? url.searchParams.get("name.exact");
      const perPage = Math.min(Number(url.searchParams.get("per_page") ?? 100) || 100, maxPerPage);
      const page = Math.max(1, Number(url.searchParams.get("page") ?? 1) || 1);
      const all = records.filter(
        (r) => (!type || r.type === type) && (!name || r.name.toLowerCase() === name.toLowerCase()),
      );
      const slice = all.slice((page - 1) * perPage, page * perPage);
      return send(200, {
        success: true,
        errors: [],
        messages: [],
        result: slice,
        result_info: {
          page,
          per_page: perPage,
          count: slice.length,
          total_count: all.length,
          total_pages: Math.max(1, Math.ceil(all.length / perPage)),
        },
      });
    }
    if (!id && method === "POST") {
      const v = validate(JSON.parse((await readText(req)) || "null"));
      if (!v.ok) return send(400, v.error);
      const rec = addRecord(v.rec.type, v.rec.name, v.rec.content, v.rec.ttl);
      rec.proxied = v.rec.proxied;
      return send(200, { success: true, errors: [], messages: [], result: rec });
    }
    const index = records.findIndex((r) => r.id === id);
    if (id && index < 0) return send(404, errorBody(81044, "Record does not exist."));
    const existing = records[index];
    if (id && existing && method === "PUT") {
      const v = validate(JSON.parse((await readText(req)) || "null"));
      if (!v.ok) return send(400, v.error);
      Object.assign(existing, v.rec);
      return send(200, { success: true, errors: [], messages: [], result: existing });
    }
    if (id && existing && method === "DELETE") {
      records.splice(index, 1);
      return send(200, { success: true, errors: [], messages: [], result: { id } });
    }
    return send(405, errorBody(10405, "Method not allowed for this endpoint"));
  };

  const server = await listenLocal(handle, (err) => errorBody(10001, String(err)));
  return {
    baseUrl: `${server.origin}/client/v4`,
    records,
    requests,
    addRecord,
    valuesOf: (type, name) =>
      records
        .filter((r) => r.type === type && r.name === name)
        .map((r) => r.content)
        .sort(),
    rateLimitNext: rateLimit.arm,
    failNthWrite: writeFault.arm,
    stallNext: server.stallNext,
    stop: server.stop,
  };
}
