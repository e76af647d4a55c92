/**
 * A fake QStash over real HTTP (design §9; no local QStash server is installable, see
 * real-components.md §4). It speaks the publish API the `@upstash/qstash` Client uses and
 * delivers like QStash does (wire-formats.md §d):
 *
 * - `POST /v2/publish/<destination url>` with `Authorization: Bearer <token>` → 201
 *   `{messageId, url}`; a repeated `Upstash-Deduplication-Id` within the window → 202
 *   `{messageId, url, deduplicated: true}` and no second delivery.
 * - Headers honoured: `Upstash-Method`, `Upstash-Retries` (default 3), `Upstash-Deduplication-Id`,
 *   `Upstash-Content-Based-Deduplication`, `Upstash-Flow-Control-Key`/`-Value` (parallelism per
 *   key), `Upstash-Callback`, `Upstash-Failure-Callback`, `Upstash-Forward-*` (delivered without
 *   the prefix), `Content-Type`. `Upstash-Delay` is recorded, not waited for.
 * - Deliveries carry `Upstash-Signature` (HS256 JWT, claims iss "Upstash", sub = URL, iat, nbf,
 *   exp = +5 min, jti, body = base64url(SHA-256(body))) signed with the current signing key,
 *   `Upstash-Message-Id` (same across retries), `Upstash-Retried` (from 0),
 *   `User-Agent: Upstash-QStash`.
 * - Non-2xx is retried after `backoff(retried, retryAfterSeconds)` ms (default 0; QStash's own
 *   is min(86400, e^(2.5n)) s, or the response's Retry-After); `489` with `Upstash-NonRetryable-Error: true` fails at once. After the
 *   last attempt the failure callback is posted (signed) with the documented body fields.
 */
import { createHash, randomBytes, randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { readText } from "./request-text.ts";
import { upstashJwt } from "./upstash-jwt.ts";

export interface FakeQstashOptions {
  token: string;
  currentSigningKey?: string;
  nextSigningKey?: string;
  /**
   * Delay before retry number `retried` (1-based), in ms; `retryAfterSeconds` is the destination's
   * `Retry-After`, which QStash honours. Default 0 (tests never wait QStash's real minutes).
   */
  backoff?: (retried: number, retryAfterSeconds: number | undefined) => number;
  /** Deduplication window; QStash documents 10 minutes. */
  dedupWindowMs?: number;
  /** Clock in ms (JWT times, dedupe window). */
  now?: () => number;
}

export interface DeliveryAttempt {
  messageId: string;
  url: string;
  retried: number;
  status: number | "network-error";
  kind: "message" | "callback" | "failure-callback";
  headers: Record<string, string>;
  body: string;
}

export interface PublishedMessage {
  messageId: string;
  url: string;
  method: string;
  body: string;
  /** Publish request headers (lower-case names). */
  publishHeaders: Record<string, string>;
  retries: number;
  flowControl?: { key: string; parallelism: number };
  state: "pending" | "delivering" | "delivered" | "failed";
  createdAt: number;
}

export interface FakeQstash {
  /** The `baseUrl` to give the Client. */
  baseUrl: string;
  messages: PublishedMessage[];
  attempts: DeliveryAttempt[];
  /** Publishes answered as duplicates. */
  deduplicated: number;
  /** Retry delays asked of `backoff`: [retried, Retry-After seconds]. */
  backoffs: [number, number | undefined][];
  /** The most deliveries in flight at once per flow-control key. */
  maxInFlight: Map<string, number>;
  keys(): { current: string; next: string };
  /** QStash's roll: current = next, next = a new key. */
  rotate(): void;
  /** Resolves when no delivery is pending or in flight. */
  idle(): Promise<void>;
  close(): Promise<void>;
}

function randomKey(): string {
  return `sig_${randomBytes(18).toString("base64url")}`;
}

function lowerHeaders(req: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.headers)) if (v !== undefined) out[k] = Array.isArray(v) ? v.join(", ") : v;
  return out;
}

/** Starts the fake on 127.0.0.1 with a random port. */
export async function startFakeQstash(options: FakeQstashOptions): Promise<FakeQstash> {
  let current = options.currentSigningKey ?? randomKey();
  let next = options.nextSigningKey ?? randomKey();
  const now = options.now ?? Date.now;
  const backoffs: [number, number | undefined][] = [];
  const userBackoff = options.backoff ?? (() => 0);
  const backoff = (retried: number, after: number | undefined) => {
    backoffs.push([retried, after]);
    return userBackoff(retried, after);
  };
  const windowMs = options.dedupWindowMs ?? 10 * 60_000;
  const messages: PublishedMessage[] = [];
  const attempts: DeliveryAttempt[] = [];
  const dedup = new Map<string, { messageId: string; at: number }>();
  const queues = new Map<string, { inFlight: number; waiting: (() => void)[] }>();
  const maxInFlight = new Map<string, number>();
  const running = new Set<Promise<void>>();
  let deduplicated = 0;
  let closed = false;

  const signature = (url: string, body: string) => upstashJwt(current, body, url, now());

  async function post(
    kind: DeliveryAttempt["kind"],
    messageId: string,
    url: string,
    method: string,
    body: string,
    headers: Record<string, string>,
    retried: number,
  ): Promise<{ status: number | "network-error"; headers: Record<string, string[]>; body: string }> {
    const sent: Record<string, string> = {
      ...headers,
      "user-agent": "Upstash-QStash",
      "upstash-signature": await signature(url, body),
      "upstash-message-id": messageId,
      "upstash-retried": String(retried),
      "upstash-caller-ip": "127.0.0.1",
    };
    try {
      const res = await fetch(url, { method, headers: sent, body: method === "GET" ? undefined : body });
      const text = await res.text();
      const resHeaders: Record<string, string[]> = {};
      res.headers.forEach((v, k) => {
        resHeaders[k] = [v];
      });
      attempts.push({ messageId, url, retried, status: res.status, kind, headers: sent, body });
      return { status: res.status, headers: resHeaders, body: text };
    } catch {
      attempts.push({ messageId, url, retried, status: "network-error", kind, headers: sent, body });
      return { status: "network-error", headers: {}, body: "" };
    }
  }

  async function acquire(key: string, parallelism: number): Promise<void> {
    let q = queues.get(key);
    if (!q) {
      q = { inFlight: 0, waiting: [] };
      queues.set(key, q);
    }
    const queue = q;
    while (queue.inFlight >= parallelism) await new Promise<void>((r) => queue.waiting.push(r));
    queue.inFlight += 1;
    maxInFlight.set(key, Math.max(maxInFlight.get(key) ?? 0, queue.inFlight));
  }

  function release(key: string): void {
    const q = queues.get(key);
    if (!q) return;
    q.inFlight -= 1;
    q.waiting.shift()?.();
  }

  async function deliver(m: PublishedMessage): Promise<void> {
    if (m.flowControl) await acquire(m.flowControl.key, m.flowControl.parallelism);
    m.state = "delivering";
    try {
      const forward: Record<string, string> = {};
      for (const [k, v] of Object.entries(m.publishHeaders)) {
        if (k.startsWith("upstash-forward-")) forward[k.slice("upstash-forward-".length)] = v;
      }
      const contentType = m.publishHeaders["content-type"];
      if (contentType) forward["content-type"] = contentType;
      let last: Awaited<ReturnType<typeof post>> | undefined;
      for (let retried = 0; retried <= m.retries && !closed; retried++) {
        if (retried > 0) {
          const after = Number(last?.headers["retry-after"]?.[0]);
          const ms = backoff(retried, Number.isFinite(after) ? after : undefined);
          if (ms > 0) await new Promise((r) => setTimeout(r, ms));
        }
        last = await post("message", m.messageId, m.url, m.method, m.body, forward, retried);
        if (typeof last.status === "number" && last.status >= 200 && last.status < 300) {
          m.state = "delivered";
          const cb = m.publishHeaders["upstash-callback"];
          if (cb) await callback("callback", cb, m, last, retried, forward);
          return;
        }
        const nonRetryable = last.status === 489 && last.headers["upstash-nonretryable-error"]?.[0] === "true";
        if (nonRetryable) break;
      }
      m.state = "failed";
      const failureCallback = m.publishHeaders["upstash-failure-callback"];
      if (failureCallback && last && !closed) {
        const retried = attempts.filter((a) => a.messageId === m.messageId && a.kind === "message").length - 1;
        await callback("failure-callback", failureCallback, m, last, retried, forward);
      }
    } finally {
      if (m.flowControl) release(m.flowControl.key);
    }
  }

  async function callback(
    kind: "callback" | "failure-callback",
    url: string,
    m: PublishedMessage,
    result: Awaited<ReturnType<typeof post>>,
    retried: number,
    forwarded: Record<string, string>,
  ): Promise<void> {
    // Body fields per features/callbacks.mdx (wire-formats.md §d).
    const payload: Record<string, unknown> = {
      status: result.status === "network-error" ? 0 : result.status,
      header: result.headers,
      body: Buffer.from(result.body).toString("base64"),
      retried,
      maxRetries: m.retries,
      sourceMessageId: m.messageId,
      topicName: "",
      endpointName: "",
      url: m.url,
      method: m.method,
      sourceHeader: Object.fromEntries(Object.entries(forwarded).map(([k, v]) => [k, [v]])),
      sourceBody: Buffer.from(m.body).toString("base64"),
      notBefore: String(m.createdAt),
      createdAt: String(m.createdAt),
      scheduleId: "",
      callerIP: "127.0.0.1",
    };
    if (kind === "failure-callback") payload.dlqId = `dlq_${randomUUID()}`;
    const body = JSON.stringify(payload);
    await post(kind, `msg_${randomUUID()}`, url, "POST", body, { "content-type": "application/json" }, 0);
  }

  function track(p: Promise<void>): void {
    running.add(p);
    p.finally(() => running.delete(p));
  }

  const server: Server = createServer(async (req, res) => {
    const body = await readText(req);
    const headers = lowerHeaders(req);
    const send = (status: number, json: unknown) =>
      res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(json));
    const path = req.url ?? "";
    if (req.method !== "POST" || !path.startsWith("/v2/publish/")) {
      send(404, { error: `not found: ${req.method} ${path}` });
      return;
    }
    if (headers.authorization !== `Bearer ${options.token}`) {
      send(401, { error: "Unauthorized: invalid token" });
      return;
    }
    const url = decodeURIComponent(path.slice("/v2/publish/".length));
    if (!/^https?:\/\//.test(url)) {
      send(400, { error: `invalid destination url: ${url}` });
      return;
    }
    const retriesText = headers["upstash-retries"];
    const retries = retriesText === undefined ? 3 : Number(retriesText);
    if (!Number.isInteger(retries) || retries < 0) {
      send(400, { error: "invalid Upstash-Retries" });
      return;
    }
    let flowControl: PublishedMessage["flowControl"];
    const fcKey = headers["upstash-flow-control-key"];
    if (fcKey) {
      const value = headers["upstash-flow-control-value"] ?? "";
      const match = /parallelism=(\d+)/.exec(value);
      flowControl = { key: fcKey, parallelism: match ? Number(match[1]) : Number.POSITIVE_INFINITY };
    }
    const dedupId =
      headers["upstash-deduplication-id"] ??
      (headers["upstash-content-based-deduplication"] === "true"
        ? createHash("sha256").update(`${url}\n${body}`).digest("hex")
        : undefined);
    const t = now();
    if (dedupId) {
      const seen = dedup.get(dedupId);
      if (seen && t - seen.at < windowMs) {
        deduplicated += 1;
        send(202, { messageId: seen.messageId, url, deduplicated: true });
        return;
      }
    }
    const messageId = `msg_${randomUUID()}`;
    if (dedupId) dedup.set(dedupId, { messageId, at: t });
    const m: PublishedMessage = {
      messageId,
      url,
      method: headers["upstash-method"] ?? "POST",
      body,
      publishHeaders: headers,
      retries,
      ...(flowControl ? { flowControl } : {}),
      state: "pending",
      createdAt: t,
    };
    messages.push(m);
    send(201, { messageId, url });
    track(deliver(m));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;

  return {
    baseUrl: `http://127.0.0.1:${port}`,
    messages,
    attempts,
    get deduplicated() {
      return deduplicated;
    },
    maxInFlight,
    backoffs,
    keys: () => ({ current, next }),
    rotate: () => {
      current = next;
      next = randomKey();
    },
    idle: async () => {
      while (running.size > 0) await Promise.allSettled([...running]);
    },
    close: async () => {
      closed = true;
      await Promise.allSettled([...running]);
      await new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      });
    },
  };
}
