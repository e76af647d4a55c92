/**
 * Signals (design §2, §4): one normalized observation from a monitoring source, the rules that
 * order two observations of the same key, and the per-side observation the decision engine reads.
 */
import { z } from "zod";
import { SideSchema } from "../../shared/config.ts";

/** Where a signal came from; quorum counts distinct sources (design §5 rule 1). */
export const SignalSourceSchema = z.enum(["alertmanager", "nagios"]);
export type SignalSource = z.infer<typeof SignalSourceSchema>;

export const SignalStatusSchema = z.enum(["firing", "resolved"]);
export type SignalStatus = z.infer<typeof SignalStatusSchema>;

const StringMap = z.record(z.string(), z.string());

/**
 * A Nagios/Icinga notice that is not a state change: acknowledgement, flapping or downtime
 * (design §4). Flapping and downtime hold automatic action for the key while `active`.
 */
export const NoticeSchema = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("acknowledgement"), author: z.string(), comment: z.string() }).strict(),
  z.object({ kind: z.literal("flapping"), active: z.boolean() }).strict(),
  z.object({ kind: z.literal("downtime"), active: z.boolean() }).strict(),
]);
export type Notice = z.infer<typeof NoticeSchema>;

/** One normalized observation (design §2). Times are Unix milliseconds. */
export const SignalSchema = z
  .object({
    source: SignalSourceSchema,
    /** What is observed: `am:<fingerprint>` (Alertmanager and Grafana-managed), `nagios:<host>!<service>`. */
    key: z.string().min(1),
    /** `key` plus the start of this incident of it. */
    incident: z.string().min(1),
    status: SignalStatusSchema,
    /** A Nagios SOFT state: recorded, never counts as down. */
    soft: z.boolean(),
    labels: StringMap,
    annotations: StringMap,
    at: z.number().int(),
    receivedAt: z.number().int(),
    notice: NoticeSchema.optional(),
  })
  .strict();
export type Signal = z.infer<typeof SignalSchema>;

/** A signal routed to one side of one target. */
export const DeliverySchema = z.object({ side: SideSchema, signal: SignalSchema }).strict();
export type Delivery = z.infer<typeof DeliverySchema>;

/** A warning about the webhook itself (e.g. `truncatedAlerts`), recorded in the audit log. */
export const IngestWarningSchema = z
  .object({ type: z.string().min(1), detail: z.record(z.string(), z.json()) })
  .strict();
export type IngestWarning = z.infer<typeof IngestWarningSchema>;

/** What the worker hands one TargetObject for one webhook. */
export const IngestBatchSchema = z
  .object({
    target: z.string().min(1),
    receivedAt: z.number().int(),
    deliveries: z.array(DeliverySchema),
    warnings: z.array(IngestWarningSchema).default([]),
    /** The verified body, for a `record: true` target (design §10). */
    recording: z.object({ source: SignalSourceSchema, body: z.json() }).strict().optional(),
  })
  .strict();
export type IngestBatch = z.input<typeof IngestBatchSchema>;

/** Per-target outcome: `ignored` counts stale updates (design §4 ordering). */
export interface IngestResult {
  accepted: number;
  duplicates: number;
  ignored: number;
}

/** One side's inputs to the decision engine (design §5 rule 1). */
export interface SideObservation {
  /** Distinct sources of fresh, firing, non-soft, non-held signals. */
  firingSources: string[];
  /** Sources whose fresh firing signals are held by a Nagios flapping/downtime notice. */
  heldSources: string[];
  /** Sources whose only firing signals are stale (design §4). */
  staleSources: string[];
  /** The fresh firing HARD incidents (rule 10: dismissal is per incident). */
  incidents: string[];
}
export type Observation = Record<z.infer<typeof SideSchema>, SideObservation>;

/** The last-writer-wins register of one notice kind on a stored signal. */
export const NoticeStateSchema = z
  .object({
    acknowledgement: z.object({ author: z.string(), comment: z.string(), at: z.number() }).strict().optional(),
    flapping: z.object({ active: z.boolean(), at: z.number() }).strict().optional(),
    downtime: z.object({ active: z.boolean(), at: z.number() }).strict().optional(),
  })
  .strict();
export type NoticeState = z.infer<typeof NoticeStateSchema>;

/** True while a flapping or downtime notice holds automatic action for the key. */
export function isHeld(notices: NoticeState): boolean {
  return (notices.flapping?.active ?? false) || (notices.downtime?.active ?? false);
}

/** The part of a signal that dedupe compares: same version = a duplicate (design §4). */
export function sameVersion(
  a: Pick<Signal, "status" | "incident" | "soft">,
  b: Pick<Signal, "status" | "incident" | "soft">,
): boolean {
  return a.status === b.status && a.incident === b.incident && a.soft === b.soft;
}

/**
 * Total order of two observations of one key; positive when `a` supersedes `b`.
 * Newer `at` wins (design §4 ordering). Ties are broken by fixed rules (resolved over firing,
 * HARD over SOFT, then incident and content text) so the stored result never depends on arrival
 * order: storing the maximum under a total order is commutative and idempotent.
 */
export function compareObservations(
  a: Pick<Signal, "at" | "status" | "soft" | "incident" | "labels" | "annotations">,
  b: Pick<Signal, "at" | "status" | "soft" | "incident" | "labels" | "annotations">,
): number {
  if (a.at !== b.at) return a.at - b.at;
  // Nagios (design §4): a newer problem id is a newer incident even within the same second,
  // as when a RECOVERY and the next PROBLEM share their TIMET.
  const pa = problemNumber(a);
  const pb = problemNumber(b);
  if (pa !== null && pb !== null && pa !== pb) return pa - pb;
  if (a.status !== b.status) return a.status === "resolved" ? 1 : -1;
  if (a.soft !== b.soft) return a.soft ? -1 : 1;
  if (a.incident !== b.incident) return a.incident > b.incident ? 1 : -1;
  const ca = canonicalJson(a.labels) + canonicalJson(a.annotations);
  const cb = canonicalJson(b.labels) + canonicalJson(b.annotations);
  return ca === cb ? 0 : ca > cb ? 1 : -1;
}

/** A Nagios numeric problem id (`annotations.problem_id`), or null (Naemon's UUIDs do not order). */
function problemNumber(s: Pick<Signal, "annotations">): number | null {
  const id = s.annotations.problem_id;
  return id !== undefined && /^\d{1,15}$/.test(id) ? Number(id) : null;
}

/** JSON of a string map with sorted keys, so equal maps give equal text. */
export function canonicalJson(map: Readonly<Record<string, string>>): string {
  return JSON.stringify(
    Object.keys(map)
      .sort()
      .map((k) => [k, map[k]]),
  );
}

/** Literal unexpanded Nagios macros (`$SERVICEDESC$`) count as empty (wire-formats §b). */
export const LITERAL_MACRO = /^\$[A-Z0-9_]+\$$/;

/** JSON values, as stored in audit details and sent over RPC (interfaces keep RPC types shallow). */
export type Json = string | number | boolean | null | JsonArray | JsonObject;
/** A JSON object. */
export interface JsonObject {
  [key: string]: Json;
}
/** A JSON array. */
export interface JsonArray extends Array<Json> {}

/** A signal as a TargetObject stores it: the winning observation plus notices and bookkeeping. */
export const StoredSignalSchema = z
  .object({
    key: z.string(),
    source: SignalSourceSchema,
    side: SideSchema,
    status: SignalStatusSchema,
    soft: z.boolean(),
    at: z.number(),
    incident: z.string(),
    labels: StringMap,
    annotations: StringMap,
    notices: NoticeStateSchema,
    receivedAt: z.number(),
    firstSeen: z.number(),
    lastSeen: z.number(),
    /** When the signal was announced stale (design §4), until it is seen again; else null. */
    staleSince: z.number().nullable(),
  })
  .strict();
export type StoredSignal = z.infer<typeof StoredSignalSchema>;

/** What one delivery did to the stored signal of its key. */
export type MergeOutcome = "accepted" | "duplicate" | "stale";

function mergeNotices(stored: NoticeState, signal: Signal): NoticeState {
  const n = signal.notice;
  if (!n) return stored;
  const at = signal.at;
  if (n.kind === "acknowledgement") {
    const cur = stored.acknowledgement;
    const incoming = { author: n.author, comment: n.comment, at };
    const wins =
      !cur || at > cur.at || (at === cur.at && `${n.author}\u0000${n.comment}` > `${cur.author}\u0000${cur.comment}`);
    return wins ? { ...stored, acknowledgement: incoming } : stored;
  }
  const cur = stored[n.kind];
  // Last writer wins per notice kind; at equal times the end of a hold wins, whatever the arrival order.
  const wins = !cur || at > cur.at || (at === cur.at && cur.active && !n.active);
  return wins ? { ...stored, [n.kind]: { active: n.active, at } } : stored;
}

/**
 * Folds one delivery into the stored signal of its key (design §4). The stored observation is the
 * maximum under {@link compareObservations}, so any permutation or repetition of deliveries leaves
 * the same result. A delivery of the stored version (same status, incident and SOFT/HARD) is a
 * duplicate: only `lastSeen` moves (and `at`/annotations when it is the later report of that same
 * version, which keeps the result order-independent). An older different version is stale.
 * Nagios notices are last-writer-wins registers of their own; changing one counts as accepted.
 */
export function mergeSignal(
  stored: StoredSignal | undefined,
  delivery: Delivery,
  receivedAt: number,
): { outcome: MergeOutcome; next: StoredSignal } {
  const { signal, side } = delivery;
  // What a delivery that wins replaces in the stored record (everything but identity, notices and times seen).
  const content = {
    source: signal.source,
    side,
    status: signal.status,
    soft: signal.soft,
    at: signal.at,
    incident: signal.incident,
    labels: signal.labels,
    annotations: signal.annotations,
    receivedAt: signal.receivedAt,
  };
  if (!stored) {
    return {
      outcome: "accepted",
      next: {
        key: signal.key,
        ...content,
        notices: mergeNotices({}, signal),
        firstSeen: receivedAt,
        lastSeen: receivedAt,
        staleSince: null,
      },
    };
  }
  const notices = mergeNotices(stored.notices, signal);
  const noticeChanged = notices !== stored.notices;
  const supersedes = compareObservations(signal, stored) > 0;
  const lastSeen = Math.max(stored.lastSeen, receivedAt);
  const replaced = supersedes ? content : {};
  // Seen again: a stale signal is fresh evidence once more.
  const seen = { lastSeen, staleSince: null };
  if (sameVersion(signal, stored)) {
    return { outcome: noticeChanged ? "accepted" : "duplicate", next: { ...stored, ...replaced, notices, ...seen } };
  }
  if (supersedes) return { outcome: "accepted", next: { ...stored, ...content, notices, ...seen } };
  return { outcome: noticeChanged ? "accepted" : "stale", next: noticeChanged ? { ...stored, notices } : stored };
}

/** What {@link observe} reads of a stored signal. */
export type ObservedSignal = Pick<
  StoredSignal,
  "side" | "source" | "status" | "soft" | "notices" | "incident" | "lastSeen"
>;

/** Whether a firing signal is stale at `now` (design §4; `staleAfterMs` 0 never). */
export function isStale(s: Pick<StoredSignal, "lastSeen">, now: number, staleAfterMs: number): boolean {
  return staleAfterMs > 0 && s.lastSeen + staleAfterMs <= now;
}

/**
 * Firing HARD signals stale at `now` and not yet announced stale (`staleSince` null), by last seen
 * then key: what the next observation announces, once each.
 */
export function goingStale<S extends StoredSignal>(signals: Iterable<S>, now: number, staleAfterMs: number): S[] {
  const out: S[] = [];
  for (const s of signals) {
    if (s.status === "firing" && !s.soft && s.staleSince === null && isStale(s, now, staleAfterMs)) out.push(s);
  }
  return out.sort((a, b) => a.lastSeen - b.lastSeen || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

/**
 * Per side at `now`: distinct sources of fresh firing HARD signals (held or not), sources whose
 * only firing signals are stale, and the fresh incidents; plus when the next fresh one goes stale.
 */
export function observe(
  signals: Iterable<ObservedSignal>,
  now = 0,
  staleAfterMs = 0,
): Observation & { staleAt: number | null } {
  // One pass over the signals (the Durable Object observes on every batch that changed one).
  let staleAt: number | null = null;
  const sides = {
    primary: {
      firing: new Set<string>(),
      held: new Set<string>(),
      stale: new Set<string>(),
      incidents: new Set<string>(),
    },
    secondary: {
      firing: new Set<string>(),
      held: new Set<string>(),
      stale: new Set<string>(),
      incidents: new Set<string>(),
    },
  };
  for (const s of signals) {
    if (s.status !== "firing" || s.soft) continue;
    const side = sides[s.side];
    if (isStale(s, now, staleAfterMs)) {
      side.stale.add(s.source);
      continue;
    }
    if (staleAfterMs > 0) staleAt = Math.min(staleAt ?? Number.POSITIVE_INFINITY, s.lastSeen + staleAfterMs);
    (isHeld(s.notices) ? side.held : side.firing).add(s.source);
    side.incidents.add(s.incident);
  }
  const build = (side: (typeof sides)["primary"]): SideObservation => ({
    firingSources: [...side.firing].sort(),
    heldSources: [...side.held].sort(),
    staleSources: [...side.stale].filter((x) => !side.firing.has(x) && !side.held.has(x)).sort(),
    incidents: [...side.incidents].sort(),
  });
  return { primary: build(sides.primary), secondary: build(sides.secondary), staleAt };
}

export const HealthSchema = z.enum(["up", "down", "unknown"]);
export type Health = z.infer<typeof HealthSchema>;
