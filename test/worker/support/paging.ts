/**
 * What the paging tests share (design §11.4): a config whose `notify` points at the Node-side
 * receivers (test/support/paging-receivers.ts, started by the worker project's global setup) under
 * a name of the test's own, signals fed straight to a target's object, and reading back what the
 * receivers got, over real HTTP both ways.
 */
import { env } from "cloudflare:workers";
import { inject } from "vitest";
import { type WorkerConfig, WorkerConfigSchema } from "../../../shared/config.ts";
import type { Notify } from "../../../shared/notify-config.ts";
import type { Received } from "../../support/paging-received.ts";
import type { RecordingObject } from "./recording-object.ts";

declare module "vitest" {
  export interface ProvidedContext {
    pagingReceivers: string;
  }
}

/** One namespaced receiver (PagerDuty, Opsgenie and a webhook at once). */
export interface Receiver {
  name: string;
  pagerduty: string;
  opsgenie: string;
  hook: string;
  mode(mode: "up" | "down" | "hang"): Promise<void>;
  log(): Promise<Received[]>;
}

let counter = 0;

/** A fresh receiver namespace, unique to this run. */
export function receiver(label: string): Receiver {
  const base = inject("pagingReceivers");
  counter += 1;
  const name = `${label}-${counter}-${Math.random().toString(36).slice(2, 8)}`;
  return {
    name,
    pagerduty: `${base}/r/${name}/v2/enqueue`,
    opsgenie: `${base}/r/${name}`,
    hook: `${base}/r/${name}/hook`,
    async mode(mode) {
      const res = await fetch(`${base}/control/${name}/mode`, { method: "POST", body: JSON.stringify({ mode }) });
      await res.body?.cancel();
    },
    async log() {
      return (await (await fetch(`${base}/control/${name}/log`)).json()) as Received[];
    },
  };
}

/** Asks the Node side to verify and parse one webhook delivery as a consumer would. */
export async function verifyDelivery(
  secret: string,
  headers: Record<string, string>,
  body: string,
): Promise<{ verified: boolean; error?: string; event?: Record<string, unknown> }> {
  const res = await fetch(`${inject("pagingReceivers")}/verify`, {
    method: "POST",
    body: JSON.stringify({ secret, headers, body }),
  });
  return (await res.json()) as { verified: boolean; error?: string; event?: Record<string, unknown> };
}

/** The sinks of one receiver: any of PagerDuty, Opsgenie and the webhook. */
export function sinksOf(r: Receiver, which: { pagerduty?: boolean; opsgenie?: boolean; webhook?: boolean }): Notify {
  return {
    ...(which.pagerduty ? { pagerduty: { routingKeyEnv: "TEST_PAGERDUTY_ROUTING_KEY", url: r.pagerduty } } : {}),
    ...(which.opsgenie ? { opsgenie: { apiKeyEnv: "TEST_OPSGENIE_API_KEY", url: r.opsgenie } } : {}),
    ...(which.webhook ? { webhooks: [{ url: r.hook, secretEnv: "TEST_WEBHOOK_SECRET" }] } : {}),
  };
}

export const STATUS_URL = "https://turnout.example.com/";

/** A worker config of `targets`, each with `policy`, and `notify` as given. */
export function pagingConfig(
  targets: readonly string[],
  notify: Notify,
  policy: Record<string, unknown> = {},
): WorkerConfig {
  const target = {
    sides: { primary: { matchers: ['side="primary"'] }, secondary: { matchers: ['side="secondary"'] } },
    policy: { holdSeconds: 30, ...policy },
  };
  return WorkerConfigSchema.parse({
    agent: { url: "http://127.0.0.1:8788" },
    targets: Object.fromEntries(targets.map((name) => [name, target])),
    statusUrl: STATUS_URL,
    notify,
  });
}

/** Feeds `count` firing (or resolved) Alertmanager signals on `side` to `target`'s object. */
export async function signals(
  rec: RecordingObject,
  target: string,
  side: "primary" | "secondary",
  status: "firing" | "resolved",
  keys: readonly string[] = ["am:gw-down"],
): Promise<void> {
  const at = rec.clock;
  await env.TARGETS.getByName(target).ingest({
    target,
    receivedAt: at,
    deliveries: keys.map((key) => ({
      side,
      signal: {
        source: "alertmanager",
        key: `${key}:${side}`,
        incident: `${key}:${side}@start`,
        status,
        soft: false,
        labels: { alertname: "GatewayDown", side },
        annotations: {},
        at,
        receivedAt: at,
      },
    })),
  });
}

/** Waits until the target's outbox loops are idle (every due row tried once). */
export async function drained(target: string): Promise<void> {
  const stub = env.TARGETS.getByName(target);
  await stub.settle();
  await stub.drainOutbox();
}

/** The PagerDuty events a receiver got, as `[event_action, dedup_key]`. */
export function pdActions(log: readonly Received[]): [string, string][] {
  return log
    .filter((r) => r.api === "pagerduty")
    .map((r) => {
      const j = r.json as { event_action: string; dedup_key: string };
      return [j.event_action, j.dedup_key];
    });
}

/** The Opsgenie requests a receiver got, as `[create|close, alias]`. */
export function ogActions(log: readonly Received[]): [string, string][] {
  return log
    .filter((r) => r.api === "opsgenie-create" || r.api === "opsgenie-close")
    .map((r) =>
      r.api === "opsgenie-create" ? ["create", (r.json as { alias: string }).alias] : ["close", r.alias ?? ""],
    );
}
