/**
 * What the simulator replays (design §10 "Simulate"): webhook deliveries as received (NDJSON
 * lines, or bodies built from Prometheus firing intervals) and signals read back from a worker's
 * audit log. Every problem is an {@link InputProblem} naming where it came from (file and line);
 * a bad line is reported and skipped, the others are still replayed.
 */
import { z } from "zod";
import { formatIssues, SideSchema } from "../../shared/config.ts";
import { type Delivery, NoticeSchema, SignalSourceSchema, SignalStatusSchema } from "../engine/signals.ts";
import { labelsFingerprint, parseRfc3339 } from "../http/ingest/alertmanager.ts";
import { formFields } from "../http/ingest/nagios.ts";

/** A webhook body as the worker would have received it at `at`. */
export interface WebhookInput {
  kind: "webhook";
  at: number;
  source: "alertmanager" | "nagios";
  /** The parsed JSON body, or for Nagios the form fields of a form-encoded body. */
  body: unknown;
  /** Where it came from, for errors: `file.ndjson:12`, `prometheus --expr …`. */
  origin: string;
}

/** A signal already routed to one side of one target (read back from an audit log). */
export interface DeliveryInput {
  kind: "delivery";
  at: number;
  target: string;
  delivery: Delivery;
  origin: string;
}

/**
 * `--not-ready <target>@<from>/<to>`: the target's readiness (design §11.3), as its agents would
 * have reported it: not ready toward either side from `at` until `until`, ready after.
 */
export interface ReadinessInput {
  kind: "readiness";
  at: number;
  target: string;
  state: "ready" | "not-ready";
  /** When this readiness stops being known (the next change, or never). */
  validUntil: number;
  origin: string;
}

export type SimInput = WebhookInput | DeliveryInput | ReadinessInput;

/** The time syntax of `--not-ready`'s ends: ISO 8601 with a zone. */
const ISO_WITH_ZONE = /^\d{4}-\d{2}-\d{2}T[\d:.]+(Z|[+-]\d{2}:\d{2})$/;

/**
 * `--not-ready <target>@<from>/<to>`: two readiness inputs, not ready at `from` (until `to`) and
 * ready at `to`; a value that cannot be read is a problem naming it, and gives none.
 */
export function parseNotReady(text: string): { inputs: ReadinessInput[]; problem?: string } {
  const origin = `--not-ready ${text}`;
  const m = /^([a-z0-9][a-z0-9-]*)@([^/]+)\/(.+)$/.exec(text);
  const from = m?.[2] !== undefined && ISO_WITH_ZONE.test(m[2]) ? Date.parse(m[2]) : Number.NaN;
  const to = m?.[3] !== undefined && ISO_WITH_ZONE.test(m[3]) ? Date.parse(m[3]) : Number.NaN;
  if (!m?.[1] || Number.isNaN(from) || Number.isNaN(to) || from >= to) {
    return { inputs: [], problem: `${origin}: expected <target>@<ISO from>/<ISO to>, from before to` };
  }
  return {
    inputs: [
      { kind: "readiness", at: from, target: m[1], state: "not-ready", validUntil: to, origin },
      { kind: "readiness", at: to, target: m[1], state: "ready", validUntil: Number.MAX_SAFE_INTEGER, origin },
    ],
  };
}

/** One problem with the input; `warning`s (e.g. an empty range) do not make the run fail. */
export interface InputProblem {
  severity: "error" | "warning";
  /** `file:line`, `prometheus`, `worker`, … */
  origin: string;
  message: string;
}

/** JSON text with object keys sorted, so equal values always give equal text. */
export function stableJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const o = value as Record<string, unknown>;
    return `{${Object.keys(o)
      .sort()
      .filter((k) => o[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${stableJson(o[k])}`)
      .join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}

/**
 * The replay order: by time, then by content. Equal-time inputs are ordered by what they say,
 * never by where they came from, so shuffling equal-time lines changes nothing.
 */
export function sortInputs(inputs: readonly SimInput[]): SimInput[] {
  const byTime = [...inputs].sort((a, b) => a.at - b.at);
  // Content keys are costly; compute them only where two inputs share a time.
  const out: SimInput[] = [];
  for (let i = 0; i < byTime.length; ) {
    let j = i + 1;
    while (j < byTime.length && byTime[j]?.at === byTime[i]?.at) j++;
    if (j - i === 1) {
      const only = byTime[i];
      if (only) out.push(only);
    } else {
      const keyed = byTime.slice(i, j).map((input) => ({ input, key: contentKey(input) }));
      keyed.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
      for (const k of keyed) out.push(k.input);
    }
    i = j;
  }
  return out;
}

function contentKey(input: SimInput): string {
  if (input.kind === "readiness") return `r${input.target}\u0000${input.state}\u0000${input.validUntil}`;
  return input.kind === "webhook"
    ? `w${stableJson({ source: input.source, body: input.body })}`
    : `d${input.target}\u0000${stableJson(input.delivery)}`;
}

const WebhookLineSchema = z
  .object({
    at: z
      .string()
      .refine(
        (t) => parseRfc3339(t) !== null,
        "expected an ISO 8601 receipt time with a zone, e.g. 2026-11-01T10:00:00Z",
      ),
    source: z.string(),
    body: z.union([z.record(z.string(), z.unknown()), z.string()], {
      error: "expected the body as received: a JSON object, or the form string for Nagios",
    }),
  })
  .loose();

/**
 * `--webhooks FILE`: one delivery a line, `{"at", "source", "body"}` (design §10). Blank lines are
 * skipped; a line that cannot be read is reported with its number and skipped.
 */
export function parseWebhookLines(text: string, name: string): { inputs: WebhookInput[]; problems: InputProblem[] } {
  const inputs: WebhookInput[] = [];
  const problems: InputProblem[] = [];
  const lines = text.split("\n");
  lines.forEach((raw, i) => {
    const line = raw.trim();
    if (line === "") return;
    const origin = `${name}:${i + 1}`;
    const fail = (message: string) => problems.push({ severity: "error", origin, message });
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (err) {
      fail(`not JSON: ${err instanceof Error ? err.message : String(err)}`);
      return;
    }
    const parsed = WebhookLineSchema.safeParse(value);
    if (!parsed.success) {
      fail(
        formatIssues(parsed.error)
          .map((p) => `${p.path}: ${p.message}`)
          .join("; "),
      );
      return;
    }
    const { at, source, body } = parsed.data;
    if (source !== "alertmanager" && source !== "nagios") {
      fail(`unknown source ${JSON.stringify(source)}: expected "alertmanager" or "nagios"`);
      return;
    }
    if (typeof body === "string" && source !== "nagios") {
      fail("an Alertmanager body is a JSON object, not a string");
      return;
    }
    inputs.push({
      kind: "webhook",
      at: parseRfc3339(at) ?? 0,
      source,
      body: typeof body === "string" ? formFields(body) : body,
      origin,
    });
  });
  return { inputs, problems };
}

/** A firing interval of one alert series; `end` null while still firing at the range's end. */
export interface FiringInterval {
  labels: Record<string, string>;
  start: number;
  end: number | null;
}

/**
 * Firing intervals as the Alertmanager webhooks that would have carried them: a firing alert at
 * the start, repeated every `repeatMs` while it fires (Alertmanager's `repeat_interval`, which
 * keeps the signal from going stale), and a resolved one at the end.
 */
export function intervalsToWebhooks(
  intervals: readonly FiringInterval[],
  origin: string,
  repeatMs: number,
  rangeEnd: number,
): WebhookInput[] {
  const out: WebhookInput[] = [];
  const body = (status: "firing" | "resolved", i: FiringInterval, fingerprint: string) => ({
    version: "4",
    status,
    receiver: "turnout-simulate",
    alerts: [
      {
        status,
        labels: i.labels,
        annotations: {},
        // Alertmanager's own fingerprint of the labels, as it sends it.
        fingerprint,
        startsAt: new Date(i.start).toISOString(),
        // Go's zero time while firing, as Alertmanager sends it (wire-formats §a).
        endsAt: status === "firing" || i.end === null ? "0001-01-01T00:00:00Z" : new Date(i.end).toISOString(),
      },
    ],
  });
  for (const i of intervals) {
    const fp = labelsFingerprint(i.labels);
    out.push({ kind: "webhook", at: i.start, source: "alertmanager", body: body("firing", i, fp), origin });
    const until = i.end ?? rangeEnd;
    if (repeatMs > 0) {
      for (let t = i.start + repeatMs; t < until; t += repeatMs) {
        out.push({ kind: "webhook", at: t, source: "alertmanager", body: body("firing", i, fp), origin });
      }
    }
    if (i.end !== null) {
      out.push({ kind: "webhook", at: i.end, source: "alertmanager", body: body("resolved", i, fp), origin });
    }
  }
  return out;
}

const AuditSignalDetailSchema = z
  .object({
    key: z.string().min(1),
    source: SignalSourceSchema,
    side: SideSchema,
    status: SignalStatusSchema,
    soft: z.boolean(),
    incident: z.string().min(1),
    at: z.string(),
    notice: NoticeSchema.optional(),
  })
  .loose();

/** One event of `GET /v1/targets/:name/events` (design §3). */
export interface ApiEvent {
  seq: number;
  at: string;
  type: string;
  detail: unknown;
}

/**
 * `--worker URL --target NAME`: the signals a worker recorded (`signal.firing`, `signal.resolved`,
 * `signal.notice`) as deliveries to the side the worker routed them to. The audit log keeps no
 * labels and no duplicates, so these are replayed as routed, not routed again.
 */
export function auditToDeliveries(
  events: readonly ApiEvent[],
  target: string,
  origin: string,
): { inputs: DeliveryInput[]; problems: InputProblem[] } {
  const inputs: DeliveryInput[] = [];
  const problems: InputProblem[] = [];
  for (const e of events) {
    if (e.type !== "signal.firing" && e.type !== "signal.resolved" && e.type !== "signal.notice") continue;
    const where = `${origin} event ${e.seq}`;
    const d = AuditSignalDetailSchema.safeParse(e.detail);
    const receivedAt = parseRfc3339(e.at);
    const at = d.success ? parseRfc3339(d.data.at) : null;
    if (!d.success || receivedAt === null || at === null) {
      const why = d.success
        ? "unreadable time"
        : formatIssues(d.error)
            .map((p) => `${p.path}: ${p.message}`)
            .join("; ");
      problems.push({
        severity: "error",
        origin: where,
        message: `not a signal event this simulator can read: ${why}`,
      });
      continue;
    }
    const s = d.data;
    inputs.push({
      kind: "delivery",
      at: receivedAt,
      target,
      origin: where,
      delivery: {
        side: s.side,
        signal: {
          source: s.source,
          key: s.key,
          incident: s.incident,
          status: s.status,
          soft: s.soft,
          labels: {},
          annotations: {},
          at,
          receivedAt,
          ...(s.notice ? { notice: s.notice } : {}),
        },
      },
    });
  }
  return { inputs, problems };
}
