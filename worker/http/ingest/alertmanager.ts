/**
 * Alertmanager `version "4"` and Grafana-managed `version "1"` webhook bodies to signals
 * (design §4, wire-formats §a). Pure: the receipt time is a parameter.
 */
import { z } from "zod";
import { type ConfigProblem, formatIssues } from "../../../shared/config.ts";
import type { IngestWarning, Signal, SignalSource } from "../../engine/signals.ts";

// RFC 3339 as Go's time.Time marshals it: nanoseconds and the original offset are kept
// (wire-formats §a `startsAt`), so parse by hand instead of trusting Date.parse with >3 digits.
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})$/;

const Timestamp = z.string().regex(RFC3339, "expected an RFC 3339 timestamp such as 2024-03-01T02:09:00Z");

const Labels = z.record(z.string(), z.string({ error: "label values are strings" }));

const AlertSchema = z.looseObject({
  status: z.enum(["firing", "resolved"], { error: 'expected "firing" or "resolved"' }),
  labels: Labels,
  annotations: z.record(z.string(), z.string()).default({}),
  startsAt: Timestamp,
  endsAt: Timestamp.optional(),
  fingerprint: z.string().optional(),
});

const BodySchema = z.looseObject({
  version: z.enum(["4", "1"], {
    error:
      'expected "4" (Alertmanager webhook) or "1" (Grafana-managed alerting); other payload versions are not supported',
  }),
  receiver: z.string().optional(),
  groupKey: z.string().optional(),
  truncatedAlerts: z.number().int().min(0).optional(),
  alerts: z.array(AlertSchema, { error: "expected an array of alerts" }),
});

/** Parsed webhook: its signals (one per alert) and warnings for the audit log. */
export type AlertmanagerParse =
  | { ok: true; source: SignalSource; signals: Signal[]; warnings: IngestWarning[] }
  | { ok: false; errors: ConfigProblem[] };

/** Unix ms of an RFC 3339 timestamp, or null for Go's zero time (`0001-01-01T00:00:00Z`). */
export function parseRfc3339(text: string): number | null {
  const m = RFC3339.exec(text);
  if (!m) return null;
  const [, y = "", mo = "", d = "", h = "", mi = "", s = "", frac = "", zone = "Z"] = m;
  const year = Number(y);
  // Go's zero time (year 1) means "unset" (wire-formats §a: firing alerts carry it).
  if (year <= 1) return null;
  const ms = Number(`${frac}000`.slice(0, 3));
  const date = new Date(0);
  date.setUTCFullYear(year, Number(mo) - 1, Number(d));
  date.setUTCHours(Number(h), Number(mi), Number(s), ms);
  let offsetMinutes = 0;
  if (zone !== "Z" && zone !== "z") {
    const sign = zone.startsWith("-") ? -1 : 1;
    offsetMinutes = sign * (Number(zone.slice(1, 3)) * 60 + Number(zone.slice(4, 6)));
  }
  const value = date.getTime() - offsetMinutes * 60_000;
  return Number.isFinite(value) ? value : null;
}

const FNV_OFFSET = 0xcbf29ce484222325n;
const FNV_PRIME = 0x100000001b3n;
const MASK64 = 0xffffffffffffffffn;

/**
 * Alertmanager's own fingerprint of a label set: FNV-1a 64 over the sorted `name 0xFF value 0xFF`
 * pairs, `%016x` (prometheus/common model/signature.go, wire-formats §a). Used when an old sender
 * gives no fingerprint, so the fallback key equals what a current Alertmanager would send.
 */
export function labelsFingerprint(labels: Readonly<Record<string, string>>): string {
  const encoder = new TextEncoder();
  let hash = FNV_OFFSET;
  const add = (bytes: Uint8Array) => {
    for (const byte of bytes) hash = ((hash ^ BigInt(byte)) * FNV_PRIME) & MASK64;
  };
  const sep = new Uint8Array([0xff]);
  for (const name of Object.keys(labels).sort()) {
    add(encoder.encode(name));
    add(sep);
    add(encoder.encode(labels[name] ?? ""));
    add(sep);
  }
  return hash.toString(16).padStart(16, "0");
}

/** Normalizes one webhook body; `receivedAt` stands in for a resolved alert's zero `endsAt`. */
export function parseAlertmanager(body: unknown, receivedAt: number): AlertmanagerParse {
  const parsed = BodySchema.safeParse(body);
  if (!parsed.success) return { ok: false, errors: formatIssues(parsed.error) };
  const msg = parsed.data;
  // Design §4: every alert on this endpoint is an Alertmanager signal, Grafana-managed ones too.
  const source: SignalSource = "alertmanager";
  const prefix = "am";
  const signals = msg.alerts.map((alert): Signal => {
    const fingerprint =
      alert.fingerprint && alert.fingerprint.trim() !== "" ? alert.fingerprint : labelsFingerprint(alert.labels);
    const key = `${prefix}:${fingerprint}`;
    const startsAt = parseRfc3339(alert.startsAt) ?? receivedAt;
    // Trust the per-alert status, never endsAt nor the group's status (wire-formats §a).
    const at =
      alert.status === "firing" ? startsAt : ((alert.endsAt ? parseRfc3339(alert.endsAt) : null) ?? receivedAt);
    return {
      source,
      key,
      // The raw string keeps Alertmanager's nanoseconds, which Date would drop.
      incident: `${key}@${alert.startsAt}`,
      status: alert.status,
      soft: false,
      labels: { ...alert.labels, source },
      annotations: alert.annotations,
      at,
      receivedAt,
    };
  });
  const warnings: IngestWarning[] = [];
  if ((msg.truncatedAlerts ?? 0) > 0) {
    warnings.push({
      type: "ingest.truncated",
      detail: {
        source,
        version: msg.version,
        truncatedAlerts: msg.truncatedAlerts ?? 0,
        receiver: msg.receiver ?? null,
        groupKey: msg.groupKey ?? null,
        message: "the sender dropped alerts (max_alerts); the group's other alerts were not seen",
      },
    });
  }
  return { ok: true, source, signals, warnings };
}
