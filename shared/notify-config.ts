/**
 * Paging and outgoing events (design §11.4, §11.6): the `notify` key of the worker config and of
 * each target. Secrets are never in the config: each sink names the environment variable (a
 * Worker secret) that holds its key.
 */
import { z } from "zod";

/** What a page is about; each kind has its own severity (design §11.6). */
export const PAGE_KINDS = [
  "approval",
  "action-failed",
  "break-glass",
  "blocked",
  "agent-silent",
  "readiness",
  "drift",
  "owed-step",
] as const;
export const PageKindSchema = z.enum(PAGE_KINDS);
export type PageKind = z.infer<typeof PageKindSchema>;

/** PagerDuty Events API v2 `payload.severity`. */
export const SeveritySchema = z.enum(["critical", "error", "warning", "info"]);
export type Severity = z.infer<typeof SeveritySchema>;

/** Severity per kind when the config does not say (design §11.6). */
export const DEFAULT_SEVERITY: Record<PageKind, Severity> = {
  "action-failed": "critical",
  blocked: "critical",
  "agent-silent": "critical",
  "owed-step": "critical",
  approval: "error",
  "break-glass": "error",
  readiness: "warning",
  drift: "warning",
};

const EnvName = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "the name of an environment variable (a Worker secret), not its value");

export const PagerDutySinkSchema = z
  .object({
    /** The Worker secret holding the Events API v2 integration (routing) key. */
    routingKeyEnv: EnvName,
    /** One severity for every kind, or some kinds' own (the others keep design §11.6's). */
    severity: z.union([SeveritySchema, z.partialRecord(PageKindSchema, SeveritySchema)]).optional(),
    /** The enqueue endpoint (e.g. a proxy). */
    url: z.url({ protocol: /^https?$/ }).default("https://events.pagerduty.com/v2/enqueue"),
  })
  .strict();
export type PagerDutySink = z.infer<typeof PagerDutySinkSchema>;

export const OpsgenieSinkSchema = z
  .object({
    /** The Worker secret holding the API integration's key (sent as `Authorization: GenieKey …`). */
    apiKeyEnv: EnvName,
    /** The API's base URL; the EU instance is https://api.eu.opsgenie.com. */
    url: z.url({ protocol: /^https?$/ }).default("https://api.opsgenie.com"),
  })
  .strict();
export type OpsgenieSink = z.infer<typeof OpsgenieSinkSchema>;

export const WebhookSinkSchema = z
  .object({
    url: z.url({ protocol: /^https?$/ }),
    /** The Worker secret holding the Standard Webhooks signing secret (`whsec_…`, base64). */
    secretEnv: EnvName,
  })
  .strict();
export type WebhookSink = z.infer<typeof WebhookSinkSchema>;

export const NotifySchema = z
  .object({
    pagerduty: PagerDutySinkSchema.optional(),
    opsgenie: OpsgenieSinkSchema.optional(),
    webhooks: z
      .array(WebhookSinkSchema)
      .refine((hooks) => new Set(hooks.map((h) => h.url)).size === hooks.length, "each webhook url once")
      .optional(),
  })
  .strict();
export type Notify = z.infer<typeof NotifySchema>;

/** The sinks in force for one target: its own `notify` keys win, sink by sink, over the global ones. */
export function notifyFor(global: Notify | undefined, target: Notify | undefined): Notify {
  return { ...global, ...target };
}

/** The severity a PagerDuty sink gives `kind`. */
export function severityOf(sink: PagerDutySink, kind: PageKind): Severity {
  const s = sink.severity;
  if (typeof s === "string") return s;
  return s?.[kind] ?? DEFAULT_SEVERITY[kind];
}
