/**
 * Local stand-ins for PagerDuty, Opsgenie and a webhook receiver, over real HTTP, for the paging
 * tests (the worker's outbox sends to them from workerd). Every request is recorded and checked
 * against the documented schema (pagerduty-events-schema.ts, opsgenie-alert-schema.ts); an
 * invalid one is answered as the real API answers it (400 / 422). Receivers are namespaced by a
 * name in the path (`/r/<name>/…`), so tests running side by side never read each other's.
 *
 * Control (from the tests, also over HTTP):
 *   POST /control/<name>/mode {"mode": "up" | "down" | "hang"}: down resets every connection,
 *        hang accepts and never answers (a pager that is slow to death);
 *   GET  /control/<name>/log: every request received so far, oldest first;
 *   POST /verify {secret, headers, body}: what a webhook consumer does with one delivery: verify
 *        it with `standardwebhooks`, then parse it with the `cloudevents` SDK.
 */
import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { HTTP } from "cloudevents";
import { Webhook } from "standardwebhooks";
import { OpsgenieCloseAlertSchema, OpsgenieCreateAlertSchema } from "./opsgenie-alert-schema.ts";
import { PagerDutyEnqueueSchema } from "./pagerduty-events-schema.ts";
import type { Received } from "./paging-received.ts";
import { readText } from "./request-text.ts";

type Mode = "up" | "down" | "hang";

export interface PagingReceivers {
  url: string;
  close(): Promise<void>;
}

/** Starts the receivers on a free port of 127.0.0.1. */
export async function startPagingReceivers(): Promise<PagingReceivers> {
  const modes = new Map<string, Mode>();
  const logs = new Map<string, Received[]>();
  const hanging = new Set<ServerResponse>();

  const json = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { "content-type": "application/json" });
    res.end(JSON.stringify(body));
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? "/", "http://receivers");
    const parts = url.pathname.split("/").filter(Boolean);
    if (parts[0] === "verify" && req.method === "POST") {
      const { secret, headers, body } = JSON.parse(await readText(req)) as {
        secret: string;
        headers: Record<string, string>;
        body: string;
      };
      return json(res, 200, verifyDelivery(secret, headers, body));
    }
    if (parts[0] === "control" && parts[1]) {
      const name = parts[1];
      if (parts[2] === "mode" && req.method === "POST") {
        const { mode } = JSON.parse(await readText(req)) as { mode: Mode };
        modes.set(name, mode);
        if (mode !== "hang") for (const r of hanging) r.destroy();
        return json(res, 200, { mode });
      }
      if (parts[2] === "log") return json(res, 200, logs.get(name) ?? []);
      return json(res, 404, {});
    }
    if (parts[0] !== "r" || !parts[1]) return json(res, 404, {});
    const name = parts[1];
    const mode = modes.get(name) ?? "up";
    if (mode === "down") {
      req.socket.destroy();
      return;
    }
    const body = await readText(req);
    if (mode === "hang") {
      hanging.add(res);
      res.on("close", () => hanging.delete(res));
      return;
    }
    const rest = `/${parts.slice(2).map(decodeURIComponent).join("/")}`;
    const headers = Object.fromEntries(
      Object.entries(req.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(", ") : (v ?? "")]),
    );
    let parsed: unknown = null;
    try {
      parsed = JSON.parse(body);
    } catch {}
    const rec: Received = {
      api: "unknown",
      path: rest,
      query: Object.fromEntries(url.searchParams),
      headers,
      body,
      json: parsed,
      valid: false,
      errors: [],
    };
    (logs.get(name) ?? logs.set(name, []).get(name))?.push(rec);
    const issues = (r: { success: boolean; error?: { issues: { path: PropertyKey[]; message: string }[] } }) =>
      r.success ? [] : (r.error?.issues ?? []).map((i) => `${i.path.join(".")}: ${i.message}`);

    if (req.method === "POST" && rest === "/v2/enqueue") {
      rec.api = "pagerduty";
      rec.errors = issues(PagerDutyEnqueueSchema.safeParse(parsed));
      if (headers["content-type"]?.split(";")[0] !== "application/json") rec.errors.push("content-type: not JSON");
      rec.valid = rec.errors.length === 0;
      if (!rec.valid)
        return json(res, 400, { status: "invalid event", message: "Event object is invalid", errors: rec.errors });
      return json(res, 202, {
        status: "success",
        message: "Event processed",
        dedup_key: (parsed as { dedup_key?: string }).dedup_key ?? randomUUID(),
      });
    }
    if (req.method === "POST" && (rest === "/v2/alerts" || /^\/v2\/alerts\/.+\/close$/.test(rest))) {
      const close = rest !== "/v2/alerts";
      rec.api = close ? "opsgenie-close" : "opsgenie-create";
      if (!/^GenieKey \S+$/.test(headers.authorization ?? "")) {
        rec.errors.push("authorization: expected GenieKey <key>");
        return json(res, 401, { message: "Could not authenticate", took: 0, requestId: randomUUID() });
      }
      if (close) {
        // The path's identifier is one segment: an alias with slashes arrives percent-encoded.
        const raw = url.pathname.split("/")[5] ?? "";
        rec.alias = decodeURIComponent(raw);
        if (url.searchParams.get("identifierType") !== "alias") rec.errors.push("identifierType: expected alias");
        rec.errors.push(...issues(OpsgenieCloseAlertSchema.safeParse(parsed)));
      } else {
        rec.errors.push(...issues(OpsgenieCreateAlertSchema.safeParse(parsed)));
      }
      rec.valid = rec.errors.length === 0;
      if (!rec.valid) return json(res, 422, { message: rec.errors.join("; "), took: 0, requestId: randomUUID() });
      return json(res, 202, { result: "Request will be processed", took: 0.01, requestId: randomUUID() });
    }
    if (req.method === "POST" && rest === "/hook") {
      rec.api = "webhook";
      rec.valid = true;
      res.writeHead(204);
      res.end();
      return;
    }
    json(res, 404, { message: "no such API" });
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) json(res, 500, { message: String(err) });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: async () => {
      for (const r of hanging) r.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A webhook consumer's check: Standard Webhooks signature first, then the CloudEvent. */
export function verifyDelivery(
  secret: string,
  headers: Record<string, string>,
  body: string,
): { verified: boolean; error?: string; event?: Record<string, unknown> } {
  try {
    new Webhook(secret).verify(body, headers);
  } catch (err) {
    return { verified: false, error: String(err) };
  }
  try {
    const parsed = HTTP.toEvent({ headers, body });
    const one = Array.isArray(parsed) ? parsed[0] : parsed;
    return { verified: true, event: one ? { ...one } : {} };
  } catch (err) {
    return { verified: true, error: `not a CloudEvent: ${String(err)}` };
  }
}
