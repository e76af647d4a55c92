/**
 * The worker's side of the worker ↔ agent protocol (design §6): dispatching an ActionRequest
 * directly (signed POST to `<agent.url>/v1/actions`) or through QStash, and verifying what comes
 * back (the agent's signed reports, QStash failure callbacks).
 *
 * Runs in workerd and in Node: only fetch, Web Crypto and `@upstash/qstash` (Client, Receiver).
 * Every verification happens on the raw body before any JSON parsing.
 */
import { Client } from "@upstash/qstash";
import { z } from "zod";
import { formatIssues } from "../../shared/config.ts";
import {
  type ActionReport,
  ActionReportSchema,
  type ActionRequest,
  ActionRequestSchema,
} from "../../shared/protocol.ts";
import { UPSTASH_SIGNATURE_HEADER, verifyUpstashSignature } from "../../shared/qstash-signature.ts";
import { retryAfterMs } from "../../shared/retry-after.ts";
import {
  describeSignatureFailure,
  SIGNATURE_HEADER,
  type SignatureFailure,
  sign,
  verify,
} from "../../shared/signature.ts";
import { answerDetail, postSigned } from "./signed-post.ts";

/** How the Turnout-Signature rides through QStash: delivered to the agent as `Turnout-Signature`. */
export const QSTASH_FORWARDED_SIGNATURE_HEADER = `Upstash-Forward-${SIGNATURE_HEADER}`;

/** Where QStash posts a message that exhausted its retries (design §6). */
export const QSTASH_FAILURE_PATH = "/v1/agent/reports/qstash-failure";

/** How a direct dispatch ended, from the Durable Object's point of view. */
export type DispatchOutcome =
  /** 202: the agent started the action. */
  | { kind: "accepted"; status: 202 }
  /** 200: the agent already has this id; `report` is its current report. */
  | { kind: "duplicate"; status: 200; report?: ActionReport }
  /** 409: the target is executing another action on the agent. */
  | { kind: "conflict"; status: 409; detail: string }
  /** 5xx, 408, 429 or a network error: try again later (`retryAfterSeconds` when the agent said). */
  | { kind: "retryable"; status?: number; detail: string; retryAfterSeconds?: number }
  /** 421: the agent is not the one the request is addressed to (design §11.1): final, never retried. */
  | { kind: "wrong-agent"; status: 421; detail: string }
  /** Any other 4xx: retrying the same request cannot help (bad signature, body or target). */
  | { kind: "fatal"; status: number; detail: string };

export interface DirectDispatchOptions {
  /** The agent's base URL (`agents.<name>.url`). */
  agentUrl: string;
  /** The destination agent's key, current first; the first entry signs. */
  secrets: readonly string[];
  fetch?: typeof fetch;
  /** Milliseconds since the epoch. */
  now?: () => number;
  /** Per-attempt timeout. */
  timeoutMs?: number;
}

/** Joins a base URL and an absolute path without doubling or losing slashes. */
function joinUrl(base: string, path: string): string {
  return `${base.replace(/\/+$/, "")}${path}`;
}

/**
 * The failure-callback URL under the worker's public URL: what a publish names as
 * `failureCallback` and what the callback's signature (`sub`) is then checked against.
 */
export function qstashFailureCallbackUrl(workerUrl: string): string {
  return joinUrl(workerUrl, QSTASH_FAILURE_PATH);
}

/** The agent's Retry-After in whole seconds (its 503 while another replica leads). */
function retryAfter(res: Response): number | undefined {
  const ms = retryAfterMs(res.headers.get("retry-after"), Date.now());
  return ms === undefined ? undefined : Math.ceil(ms / 1000);
}

/** POSTs a signed ActionRequest to `<agentUrl>/v1/actions` and classifies the answer. */
export async function dispatchDirect(request: ActionRequest, options: DirectDispatchOptions): Promise<DispatchOutcome> {
  const doFetch = options.fetch ?? fetch;
  const now = options.now ?? Date.now;
  const secret = options.secrets.find((s) => s.length > 0);
  if (!secret) return { kind: "fatal", status: 0, detail: "TURNOUT_AGENT_SECRET is not set; cannot sign" };
  let res: Response;
  try {
    res = await postSigned({
      url: joinUrl(options.agentUrl, "/v1/actions"),
      body: JSON.stringify(ActionRequestSchema.parse(request)),
      secret,
      now: now(),
      timeoutMs: options.timeoutMs ?? 10_000,
      what: "the agent",
      fetch: doFetch,
    });
  } catch (err) {
    return { kind: "retryable", detail: `agent unreachable: ${err instanceof Error ? err.message : String(err)}` };
  }
  if (res.status === 202) {
    await res.body?.cancel();
    return { kind: "accepted", status: 202 };
  }
  if (res.status === 200) {
    const parsed = ActionReportSchema.safeParse(await res.json().catch(() => undefined));
    return parsed.success
      ? { kind: "duplicate", status: 200, report: parsed.data }
      : { kind: "duplicate", status: 200 };
  }
  if (res.status === 409) return { kind: "conflict", status: 409, detail: await answerDetail(res) };
  if (res.status === 421) return { kind: "wrong-agent", status: 421, detail: await answerDetail(res) };
  const after = retryAfter(res);
  if (res.status >= 500 || res.status === 408 || res.status === 429) {
    return {
      kind: "retryable",
      status: res.status,
      detail: await answerDetail(res),
      ...(after !== undefined ? { retryAfterSeconds: after } : {}),
    };
  }
  return { kind: "fatal", status: res.status, detail: await answerDetail(res) };
}

export interface QstashDispatchOptions {
  /** QSTASH_TOKEN. */
  token: string;
  /** `agent.qstash.baseUrl` (https://qstash.upstash.io, or a fake in tests). */
  baseUrl: string;
  agentUrl: string;
  /** The worker's public base URL, for the failure callback. */
  workerUrl: string;
  /** `agent.qstash.retries`: explicit, so QStash's default is never silently in force. */
  retries: number;
  /** TURNOUT_AGENT_SECRET first; signs the forwarded Turnout-Signature. */
  secrets: readonly string[];
  now?: () => number;
}

export type QstashDispatchOutcome =
  | { kind: "published"; messageId: string; deduplicated: boolean }
  | { kind: "retryable"; status?: number; detail: string }
  | { kind: "fatal"; status: number; detail: string };

/**
 * Publishes an ActionRequest to the agent through QStash: `deduplicationId` = action id,
 * `flowControl {key: target, parallelism: 1}`, explicit `retries`, a failure callback to the
 * worker, and the Turnout-Signature forwarded (`Upstash-Forward-Turnout-Signature`, delivered as
 * `Turnout-Signature`). QStash's dedupe window may be only 10 minutes; the agent's idempotency
 * by id is what guarantees one execution.
 */
export async function dispatchQstash(
  request: ActionRequest,
  options: QstashDispatchOptions,
): Promise<QstashDispatchOutcome> {
  const secret = options.secrets.find((s) => s.length > 0);
  if (!secret) return { kind: "fatal", status: 0, detail: "TURNOUT_AGENT_SECRET is not set; cannot sign" };
  const parsed = ActionRequestSchema.parse(request);
  const body = JSON.stringify(parsed);
  const signature = await sign(secret, body, Math.floor((options.now ?? Date.now)() / 1000));
  // The Client's own retry is off: the Durable Object's alarm owns retrying (design §5 rule 5).
  const client = new Client({
    baseUrl: options.baseUrl,
    token: options.token,
    retry: false,
    enableTelemetry: false,
    devMode: false,
  });
  try {
    // `publish` (not publishJSON) so the body QStash delivers is byte-for-byte the signed one.
    const res = await client.publish({
      url: joinUrl(options.agentUrl, "/v1/actions"),
      body,
      // Named with the prefix outright (the Client would add it to an unprefixed name anyway):
      // QStash strips it on delivery, and the agent requires this signature too (design §6).
      headers: { "content-type": "application/json", [QSTASH_FORWARDED_SIGNATURE_HEADER]: signature },
      deduplicationId: parsed.id,
      flowControl: { key: parsed.target, parallelism: 1 },
      retries: options.retries,
      failureCallback: qstashFailureCallbackUrl(options.workerUrl),
    });
    const r = res as { messageId: string; deduplicated?: boolean };
    return { kind: "published", messageId: r.messageId, deduplicated: r.deduplicated === true };
  } catch (err) {
    const status = (err as { status?: unknown }).status;
    const detail = err instanceof Error ? err.message : String(err);
    if (typeof status === "number" && status >= 400 && status < 500 && status !== 408 && status !== 429) {
      return { kind: "fatal", status, detail };
    }
    return { kind: "retryable", ...(typeof status === "number" ? { status } : {}), detail };
  }
}

/** Parses a verified raw body; both verifiers answer a non-JSON body with the same 400. */
function parseJsonBody(
  rawBody: string,
): { ok: true; json: unknown } | { ok: false; status: 400; reason: "invalid-json"; detail: string } {
  try {
    return { ok: true, json: JSON.parse(rawBody) };
  } catch (err) {
    return { ok: false, status: 400, reason: "invalid-json", detail: `body is not JSON: ${(err as Error).message}` };
  }
}

/** Why a report was refused: a signature reason (401) or `invalid-json` / `invalid-report` (400). */
export type ReportRejection =
  | { ok: false; status: 401; reason: SignatureFailure; detail: string }
  | {
      ok: false;
      status: 400;
      reason: "invalid-json" | "invalid-report";
      detail: string;
      errors?: { path: string; message: string }[];
    };

/**
 * Verifies a `POST /v1/agent/reports` body: Turnout-Signature on the raw bytes first (secrets:
 * current, then TURNOUT_AGENT_SECRET_NEXT), then JSON, then the ActionReport schema.
 * `nowMs` is milliseconds since the epoch.
 */
export async function verifyAgentReport(
  rawBody: string,
  headers: Headers,
  secrets: readonly string[],
  nowMs: number,
): Promise<{ ok: true; report: ActionReport } | ReportRejection> {
  const check = await verify(
    secrets.filter((s) => s.length > 0),
    headers.get(SIGNATURE_HEADER),
    rawBody,
    nowMs / 1000,
  );
  if (!check.ok)
    return { ok: false, status: 401, reason: check.reason, detail: describeSignatureFailure(check.reason) };
  const body = parseJsonBody(rawBody);
  if (!body.ok) return body;
  const parsed = ActionReportSchema.safeParse(body.json);
  if (!parsed.success) {
    return {
      ok: false,
      status: 400,
      reason: "invalid-report",
      detail: "invalid ActionReport",
      errors: formatIssues(parsed.error),
    };
  }
  return { ok: true, report: parsed.data };
}

/** The failure-callback body QStash posts (wire-formats.md §d, features/callbacks.mdx). */
export const QstashFailureCallbackSchema = z
  .object({
    status: z.number(),
    header: z.record(z.string(), z.array(z.string())).optional(),
    body: z.string().optional(),
    retried: z.number().optional(),
    maxRetries: z.number().optional(),
    sourceMessageId: z.string(),
    url: z.string().optional(),
    method: z.string().optional(),
    sourceHeader: z.record(z.string(), z.array(z.string())).optional(),
    sourceBody: z.string().optional(),
    dlqId: z.string().optional(),
  })
  .loose();
export type QstashFailureCallback = z.infer<typeof QstashFailureCallbackSchema>;

function decodeBase64(b64: string): string {
  const bin = atob(b64);
  return new TextDecoder().decode(Uint8Array.from(bin, (ch) => ch.charCodeAt(0)));
}

/**
 * Verifies a QStash failure callback (`Upstash-Signature` via Receiver: current, then next key;
 * `url` = the expected `sub`, i.e. this endpoint's public URL, when given), then parses it and
 * recovers the ActionRequest from `sourceBody` so the Durable Object knows which action failed.
 */
export async function verifyQstashFailureCallback(
  rawBody: string,
  headers: Headers,
  keys: { current: string; next?: string },
  url?: string,
): Promise<
  | { ok: true; callback: QstashFailureCallback; request?: ActionRequest; agentStatus: number; agentBody?: string }
  | { ok: false; status: 401 | 400; reason: string; detail: string }
> {
  const checked = await verifyUpstashSignature(keys, headers.get(UPSTASH_SIGNATURE_HEADER), rawBody, url);
  if (!checked.ok) return { ok: false, status: 401, reason: checked.reason, detail: checked.detail };
  const body = parseJsonBody(rawBody);
  if (!body.ok) return body;
  const parsed = QstashFailureCallbackSchema.safeParse(body.json);
  if (!parsed.success) {
    return {
      ok: false,
      status: 400,
      reason: "invalid-callback",
      detail: formatIssues(parsed.error)
        .map((p) => `${p.path}: ${p.message}`)
        .join("; "),
    };
  }
  const cb = parsed.data;
  let request: ActionRequest | undefined;
  if (cb.sourceBody) {
    try {
      const r = ActionRequestSchema.safeParse(JSON.parse(decodeBase64(cb.sourceBody)));
      if (r.success) request = r.data;
    } catch {
      // not an ActionRequest; the caller audits the callback without one
    }
  }
  let agentBody: string | undefined;
  if (cb.body) {
    try {
      agentBody = decodeBase64(cb.body);
    } catch {
      agentBody = undefined;
    }
  }
  return {
    ok: true,
    callback: cb,
    ...(request ? { request } : {}),
    agentStatus: cb.status,
    ...(agentBody !== undefined ? { agentBody } : {}),
  };
}
