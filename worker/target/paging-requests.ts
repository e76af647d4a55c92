/**
 * The requests the outbox sends (design §11.4), built when an event is queued and stored without
 * secrets; the key or signature is added at send time from the named Worker secret.
 *
 * - PagerDuty Events API v2 `POST /v2/enqueue`. A typed `fetch`, not `@pagerduty/pdjs`: pdjs
 *   always builds `https://<server>/v2/enqueue`, so `notify.pagerduty.url` (a proxy, a local
 *   receiver over HTTP) cannot be honoured; it retries HTTP 429 itself with a 20 s timer, which
 *   would hold a delivery far past its time budget and duplicate the outbox's own durable backoff;
 *   and it sends through the cross-fetch polyfill with its own abort timer, the kind that keeps a
 *   Durable Object busy for the whole timeout (see worker/agents/fetch-within.ts).
 * - Opsgenie Alert API: `POST /v2/alerts` (create, `alias` = the page's key) and
 *   `POST /v2/alerts/:alias/close?identifierType=alias`, `Authorization: GenieKey <key>`.
 * - Webhooks: every audit event as a CloudEvents 1.0 structured JSON event built by the
 *   `cloudevents` SDK, signed per Standard Webhooks by the `standardwebhooks` library.
 */
// The class alone: the package's index types reference @types/node, which would leak Node's
// globals into the worker's type program (and break its RPC stub types). The runtime is the same.
import { CloudEvent } from "cloudevents/dist/event/cloudevent.js";
import { Webhook } from "standardwebhooks";
import { z } from "zod";
import {
  type OpsgenieSink,
  type PageKind,
  type PagerDutySink,
  type Severity,
  severityOf,
} from "../../shared/notify-config.ts";
import type { AuditEvent } from "../engine/machine-types.ts";
import type { Json } from "../engine/signals.ts";
import type { PageIntent } from "./paging.ts";

/** The Events API v2 body without `routing_key` (added at send time). */
export interface PagerDutyEvent {
  event_action: "trigger" | "resolve";
  dedup_key: string;
  payload?: {
    summary: string;
    source: string;
    severity: Severity;
    timestamp: string;
    component: string;
    group: string;
    class: PageKind;
    custom_details: Record<string, Json>;
  };
  links?: { href: string; text: string }[];
  client: string;
  client_url?: string;
}

/** PagerDuty's limit on `summary` (Events API v2). */
const PD_SUMMARY_MAX = 1024;
/** Opsgenie's limits on `message` and `description` (Alert API). */
const OG_MESSAGE_MAX = 130;
const OG_DESCRIPTION_MAX = 15_000;

const cut = (text: string, max: number) => (text.length <= max ? text : `${text.slice(0, max - 1)}…`);

/** The PagerDuty event of one page. */
export function pagerDutyEvent(
  page: PageIntent,
  sink: PagerDutySink,
  target: string,
  statusUrl: string | undefined,
): PagerDutyEvent {
  const base = { event_action: page.action, dedup_key: page.key, client: "turnout" };
  const client_url = statusUrl ? { client_url: statusUrl } : {};
  if (page.action === "resolve") return { ...base, ...client_url };
  return {
    ...base,
    payload: {
      summary: cut(page.summary, PD_SUMMARY_MAX),
      source: `turnout/${target}`,
      severity: severityOf(sink, page.kind),
      timestamp: new Date(page.at).toISOString(),
      component: target,
      group: "turnout",
      class: page.kind,
      custom_details: { ...(page.todo ? { what_to_do: page.todo } : {}), ...page.details },
    },
    ...(statusUrl ? { links: [{ href: statusUrl, text: "turnout status page" }] } : {}),
    ...client_url,
  };
}

/** An Opsgenie request: create an alert, or close one by its alias. */
export type OpsgenieRequest =
  | {
      op: "create";
      body: {
        message: string;
        alias: string;
        description: string;
        source: string;
        entity: string;
        tags: string[];
        details: Record<string, string>;
        priority: "P1" | "P2" | "P3" | "P4" | "P5";
      };
    }
  | { op: "close"; alias: string; body: { source: string; note: string } };

const PRIORITY: Record<Severity, "P1" | "P2" | "P3" | "P4"> = {
  critical: "P1",
  error: "P2",
  warning: "P3",
  info: "P4",
};

/** The Opsgenie request of one page; its priority follows the PagerDuty severity table of §11.6. */
export function opsgenieRequest(
  page: PageIntent,
  severity: Severity,
  target: string,
  statusUrl: string | undefined,
): OpsgenieRequest {
  if (page.action === "resolve") {
    return { op: "close", alias: page.key, body: { source: "turnout", note: cut(page.summary, 25_000) } };
  }
  const description = [page.summary, page.todo, statusUrl ? `Status page: ${statusUrl}` : ""]
    .filter(Boolean)
    .join("\n\n");
  // Opsgenie's `details` is a map of strings.
  const details: Record<string, string> = { kind: page.kind, target };
  for (const [k, v] of Object.entries(page.details)) details[k] = typeof v === "string" ? v : JSON.stringify(v);
  if (statusUrl) details.statusPage = statusUrl;
  return {
    op: "create",
    body: {
      message: cut(page.summary, OG_MESSAGE_MAX),
      alias: page.key,
      description: cut(description, OG_DESCRIPTION_MAX),
      source: "turnout",
      entity: target,
      tags: ["turnout", page.kind],
      details,
      priority: PRIORITY[severity],
    },
  };
}

/** The CloudEvent of one audit event, as the structured-mode JSON body (design §11.4). */
export function cloudEventBody(target: string, event: AuditEvent): string {
  const ce = new CloudEvent({
    specversion: "1.0",
    id: `${target}:${event.seq}`,
    source: `turnout/${target}`,
    type: `dev.turnout.${event.type}`,
    subject: target,
    time: new Date(event.at).toISOString(),
    datacontenttype: "application/json",
    data: {
      target,
      seq: event.seq,
      at: new Date(event.at).toISOString(),
      type: event.type,
      detail: event.detail,
      cause: event.cause ?? null,
    },
  });
  // Structured content mode (CloudEvents HTTP binding §3.2): the event itself as the JSON body.
  // The constructor validated it against the 1.0 spec (it throws on a bad id, source or type).
  return JSON.stringify(ce.toJSON());
}

/** The Standard Webhooks headers of `body` (message id = the CloudEvent's id, kept on every retry). */
export function signWebhook(secret: string, id: string, body: string, now: number): Record<string, string> {
  const sent = new Date(Math.floor(now / 1000) * 1000);
  return {
    "content-type": "application/cloudevents+json; charset=utf-8",
    "webhook-id": id,
    "webhook-timestamp": String(Math.floor(sent.getTime() / 1000)),
    "webhook-signature": new Webhook(secret).sign(id, sent, body),
  };
}

/** A queued request as stored in the outbox (`body` column), one shape per sink kind. */
export const QueuedRequestSchema = z.discriminatedUnion("sink", [
  z.object({ sink: z.literal("pagerduty"), event: z.custom<PagerDutyEvent>((v) => typeof v === "object") }),
  z.object({ sink: z.literal("opsgenie"), request: z.custom<OpsgenieRequest>((v) => typeof v === "object") }),
  z.object({ sink: z.literal("webhook"), id: z.string(), body: z.string() }),
]);
export type QueuedRequest = z.infer<typeof QueuedRequestSchema>;

/** The URL and init of a queued request, with the secret from the env; a missing secret throws its name. */
export function httpRequest(
  queued: QueuedRequest,
  sink: { pagerduty?: PagerDutySink; opsgenie?: OpsgenieSink; webhookSecretEnv?: string; url?: string },
  secret: (name: string) => string | undefined,
  now: number,
): { url: string; init: RequestInit } {
  const need = (name: string) => {
    const value = secret(name);
    if (!value) throw new MissingSecretError(name);
    return value;
  };
  switch (queued.sink) {
    case "pagerduty": {
      const pd = sink.pagerduty;
      if (!pd) throw new SinkGoneError("pagerduty");
      const body = { routing_key: need(pd.routingKeyEnv), ...queued.event };
      return {
        url: pd.url,
        init: { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) },
      };
    }
    case "opsgenie": {
      const og = sink.opsgenie;
      if (!og) throw new SinkGoneError("opsgenie");
      const base = og.url.replace(/\/$/, "");
      const r = queued.request;
      const url =
        r.op === "create"
          ? `${base}/v2/alerts`
          : `${base}/v2/alerts/${encodeURIComponent(r.alias)}/close?identifierType=alias`;
      return {
        url,
        init: {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `GenieKey ${need(og.apiKeyEnv)}` },
          body: JSON.stringify(r.body),
        },
      };
    }
    case "webhook": {
      if (!sink.url || !sink.webhookSecretEnv) throw new SinkGoneError("webhook");
      return {
        url: sink.url,
        init: {
          method: "POST",
          headers: signWebhook(need(sink.webhookSecretEnv), queued.id, queued.body, now),
          body: queued.body,
        },
      };
    }
  }
}

/** The sink's secret is not set: named, never its value. */
export class MissingSecretError extends Error {
  readonly code = "missing-secret";
  constructor(name: string) {
    super(`the secret ${name} is not set`);
  }
}

/** The sink left the configuration while its events were queued. */
export class SinkGoneError extends Error {
  readonly code = "sink-gone";
  constructor(sink: string) {
    super(`${sink} is no longer configured for this target`);
  }
}
