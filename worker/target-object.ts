/**
 * One Durable Object per target (design §5): a thin shell that persists the target's signals,
 * its state row and its append-only audit log in SQLite. The decision engine (`decide` in
 * worker/machine.ts) plugs in at {@link TargetObject.onSignalsChanged}.
 */
import { DurableObject } from "cloudflare:workers";
import { z } from "zod";
import { type Side, SideSchema } from "../shared/config.ts";
import { loadConfig } from "./config.ts";
import type { Env } from "./env.ts";
import {
  type Health,
  HealthSchema,
  type IngestBatch,
  IngestBatchSchema,
  type IngestResult,
  isHeld,
  type Json,
  mergeSignal,
  NoticeStateSchema,
  type Observation,
  observe,
  type StoredSignal,
  StoredSignalSchema,
  sideHealth,
} from "./signals.ts";

/** Bumped when a migration is added below; a newer stored version than the code knows is refused. */
export const SCHEMA_VERSION = 1;

// Idempotent DDL, run on every wake (the cloudflare/agents pattern): cheap, and a fresh object
// and an old one converge on the same tables without a separate install step.
const DDL = [
  "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
  // One row (id = 1): the target's state as JSON, including `seq`, the last audit seq used.
  "CREATE TABLE IF NOT EXISTS state (id INTEGER PRIMARY KEY CHECK (id = 1), json TEXT NOT NULL)",
  `CREATE TABLE IF NOT EXISTS signals (
     key TEXT PRIMARY KEY,
     source TEXT NOT NULL,
     side TEXT NOT NULL,
     status TEXT NOT NULL,
     soft INTEGER NOT NULL,
     at INTEGER NOT NULL,
     incident TEXT NOT NULL,
     labels TEXT NOT NULL,
     annotations TEXT NOT NULL,
     notices TEXT NOT NULL,
     received_at INTEGER NOT NULL,
     first_seen INTEGER NOT NULL,
     last_seen INTEGER NOT NULL
   )`,
  "CREATE INDEX IF NOT EXISTS signals_by_side ON signals (side, status)",
  // `seq` is assigned from state.seq, not AUTOINCREMENT: the decision engine allocates from the
  // same counter, so one transaction can write an event and name it as another event's cause.
  `CREATE TABLE IF NOT EXISTS events (
     seq INTEGER PRIMARY KEY,
     at INTEGER NOT NULL,
     type TEXT NOT NULL,
     detail TEXT NOT NULL,
     cause INTEGER
   )`,
];

const SideObservationSchema = z
  .object({ firingSources: z.array(z.string()), heldSources: z.array(z.string()), seen: z.boolean() })
  .strict();

/** The persisted state row. `machine` is reserved for the decision engine's own state. */
export const TargetStateSchema = z.looseObject({
  target: z.string(),
  /** The last audit seq used; the next event gets seq + 1. */
  seq: z.number().int().min(0),
  activeSide: SideSchema,
  observation: z.object({ primary: SideObservationSchema, secondary: SideObservationSchema }),
  health: z.object({ primary: HealthSchema, secondary: HealthSchema }),
  machine: z.json().optional(),
});
export type TargetState = z.infer<typeof TargetStateSchema>;

/** One audit event as the operator API shows it (design §3). */
export interface AuditEvent {
  seq: number;
  /** ISO 8601. */
  at: string;
  type: string;
  detail: Json;
  cause: number | null;
}

/** A stored signal as the operator API shows it (times ISO 8601). */
export interface SignalView {
  key: string;
  source: string;
  status: string;
  soft: boolean;
  held: boolean;
  incident: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  notices: Json;
  at: string;
  receivedAt: string;
  firstSeen: string;
  lastSeen: string;
}

/** `GET /v1/targets/:name` (design §3); phase stays `steady` until the decision engine lands. */
export interface TargetView {
  name: string;
  activeSide: Side;
  phase: "steady" | "pending" | "awaiting_approval" | "executing" | "failed";
  paused: boolean;
  flapping: boolean;
  cooldownUntil: string | null;
  sides: Record<Side, { health: Health; firing: SignalView[] }>;
  pendingSince: string | null;
  action: Json;
  lastEvents?: AuditEvent[];
}

/** One page of the audit log, oldest first; `next` is absent on the last page. */
export interface EventPage {
  events: AuditEvent[];
  next?: number;
}

const SignalRowSchema = z.object({
  key: z.string(),
  source: z.string(),
  side: z.string(),
  status: z.string(),
  soft: z.number(),
  at: z.number(),
  incident: z.string(),
  labels: z.string(),
  annotations: z.string(),
  notices: z.string(),
  received_at: z.number(),
  first_seen: z.number(),
  last_seen: z.number(),
});

const EventRowSchema = z.object({
  seq: z.number(),
  at: z.number(),
  type: z.string(),
  detail: z.string(),
  cause: z.number().nullable(),
});

const iso = (ms: number) => new Date(ms).toISOString();

function signalFromRow(row: unknown): StoredSignal {
  const r = SignalRowSchema.parse(row);
  return StoredSignalSchema.parse({
    key: r.key,
    source: r.source,
    side: r.side,
    status: r.status,
    soft: r.soft === 1,
    at: r.at,
    incident: r.incident,
    labels: JSON.parse(r.labels),
    annotations: JSON.parse(r.annotations),
    notices: NoticeStateSchema.parse(JSON.parse(r.notices)),
    receivedAt: r.received_at,
    firstSeen: r.first_seen,
    lastSeen: r.last_seen,
  });
}

function eventFromRow(row: unknown): AuditEvent {
  const r = EventRowSchema.parse(row);
  return { seq: r.seq, at: iso(r.at), type: r.type, detail: JSON.parse(r.detail) as Json, cause: r.cause };
}

function signalView(s: StoredSignal): SignalView {
  return {
    key: s.key,
    source: s.source,
    status: s.status,
    soft: s.soft,
    held: isHeld(s.notices),
    incident: s.incident,
    labels: s.labels,
    annotations: s.annotations,
    notices: s.notices,
    at: iso(s.at),
    receivedAt: iso(s.receivedAt),
    firstSeen: iso(s.firstSeen),
    lastSeen: iso(s.lastSeen),
  };
}

export class TargetObject extends DurableObject<Env> {
  private readonly sql: SqlStorage;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.migrate();
  }

  private migrate(): void {
    for (const ddl of DDL) this.sql.exec(ddl);
    const row = this.sql.exec("SELECT value FROM meta WHERE key = 'schema_version'").toArray()[0];
    const stored = row ? Number(row.value) : 0;
    if (stored > SCHEMA_VERSION) {
      // Rolled-back code must not write into a newer layout it does not understand.
      throw new Error(`storage schema ${stored} is newer than this code's ${SCHEMA_VERSION}`);
    }
    if (stored < SCHEMA_VERSION) {
      // Future migrations from `stored` go here, in order.
      this.sql.exec(
        "INSERT INTO meta (key, value) VALUES ('schema_version', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        String(SCHEMA_VERSION),
      );
    }
  }

  /** Liveness probe used by tests and /healthz diagnostics. */
  async ping(): Promise<string> {
    return "pong";
  }

  /**
   * Records one webhook's deliveries for this target in one transaction: signals (dedupe and
   * ordering per design §4), an audit event per change and per warning, and the state row.
   */
  async ingest(input: IngestBatch): Promise<IngestResult> {
    const batch = IngestBatchSchema.parse(input);
    return this.ctx.storage.transactionSync(() => {
      const state = this.loadState(batch.target);
      const result: IngestResult = { accepted: 0, duplicates: 0, ignored: 0 };
      let causeSeq: number | null = null;
      let changed = false;
      for (const warning of batch.warnings) {
        this.appendEvent(state, batch.receivedAt, warning.type, warning.detail, null);
        changed = true;
      }
      for (const delivery of batch.deliveries) {
        const stored = this.readSignal(delivery.signal.key);
        const { outcome, next } = mergeSignal(stored, delivery, batch.receivedAt);
        if (outcome === "stale") {
          result.ignored += 1;
          continue;
        }
        this.writeSignal(next);
        if (outcome === "duplicate") {
          result.duplicates += 1;
          continue;
        }
        result.accepted += 1;
        changed = true;
        const s = delivery.signal;
        const type =
          stored && stored.status === next.status && stored.soft === next.soft && stored.incident === next.incident
            ? "signal.notice"
            : `signal.${next.status}`;
        causeSeq = this.appendEvent(
          state,
          batch.receivedAt,
          type,
          {
            key: next.key,
            source: next.source,
            side: next.side,
            status: next.status,
            soft: next.soft,
            held: isHeld(next.notices),
            incident: next.incident,
            at: iso(next.at),
            ...(s.notice ? { notice: s.notice } : {}),
          },
          null,
        );
      }
      if (causeSeq !== null) this.onSignalsChanged(state, this.observe(), causeSeq, batch.receivedAt);
      if (changed) this.saveState(state);
      return result;
    });
  }

  /**
   * Called inside the ingest transaction after signals changed, with the new per-side observation
   * and the seq of the last signal event (the cause of what follows). For now it only keeps the
   * view's health current; the decision engine will call `decide(state, input, now)` from here.
   */
  private onSignalsChanged(state: TargetState, observation: Observation, causeSeq: number, now: number): void {
    const quorum = this.policy(state.target).quorum;
    state.observation = observation;
    for (const side of ["primary", "secondary"] as const) {
      const health = sideHealth(observation[side], quorum);
      if (health !== state.health[side]) {
        this.appendEvent(
          state,
          now,
          "side.health",
          {
            side,
            from: state.health[side],
            to: health,
            firingSources: observation[side].firingSources,
            heldSources: observation[side].heldSources,
          },
          causeSeq,
        );
        state.health[side] = health;
      }
    }
  }

  /** The target's view for `GET /v1/targets/:name`; `lastEvents` (newest 20, oldest first) unless omitted. */
  async view(name: string, options: { events?: boolean } = {}): Promise<TargetView> {
    const state = this.loadState(name);
    const quorum = this.policy(name).quorum;
    const signals = this.allSignals();
    const observation = observe(signals);
    const side = (s: Side) => ({
      health: sideHealth(observation[s], quorum),
      firing: signals.filter((x) => x.side === s && x.status === "firing").map(signalView),
    });
    const view: TargetView = {
      name,
      activeSide: state.activeSide,
      phase: "steady",
      paused: false,
      flapping: false,
      cooldownUntil: null,
      sides: { primary: side("primary"), secondary: side("secondary") },
      pendingSince: null,
      action: null,
    };
    if (options.events !== false) {
      view.lastEvents = this.sql
        .exec("SELECT seq, at, type, detail, cause FROM events ORDER BY seq DESC LIMIT 20")
        .toArray()
        .map(eventFromRow)
        .reverse();
    }
    return view;
  }

  /** The audit log after `after`, oldest first, at most `limit` events. */
  async events(after: number, limit: number): Promise<EventPage> {
    const rows = this.sql
      .exec("SELECT seq, at, type, detail, cause FROM events WHERE seq > ? ORDER BY seq LIMIT ?", after, limit + 1)
      .toArray()
      .map(eventFromRow);
    const events = rows.slice(0, limit);
    const last = events.at(-1);
    return rows.length > limit && last ? { events, next: last.seq } : { events };
  }

  /** Every stored signal, ordered by key (tests and diagnostics). */
  async signals(): Promise<StoredSignal[]> {
    return this.allSignals();
  }

  /** The persisted state row, or null before the first write (tests and diagnostics). */
  async state(): Promise<TargetState | null> {
    return this.readState();
  }

  // -------------------------------------------------------------------------------------------

  private policy(target: string): { quorum: number; initialActiveSide: Side } {
    const loaded = loadConfig(this.env);
    const t = loaded.ok ? loaded.value.targets[target] : undefined;
    return { quorum: t?.policy.quorum ?? 1, initialActiveSide: t?.initialActiveSide ?? "primary" };
  }

  private readState(): TargetState | null {
    const row = this.sql.exec("SELECT json FROM state WHERE id = 1").toArray()[0];
    return row ? TargetStateSchema.parse(JSON.parse(String(row.json))) : null;
  }

  private loadState(target: string): TargetState {
    const existing = this.readState();
    if (existing) return existing;
    const empty = { firingSources: [], heldSources: [], seen: false };
    return {
      target,
      seq: 0,
      activeSide: this.policy(target).initialActiveSide,
      observation: { primary: { ...empty }, secondary: { ...empty } },
      health: { primary: "unknown", secondary: "unknown" },
    };
  }

  private saveState(state: TargetState): void {
    this.sql.exec(
      "INSERT INTO state (id, json) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET json = excluded.json",
      JSON.stringify(state),
    );
  }

  /** Appends an audit event with the next seq from `state.seq`; returns that seq. */
  private appendEvent(state: TargetState, at: number, type: string, detail: Json, cause: number | null): number {
    state.seq += 1;
    this.sql.exec(
      "INSERT INTO events (seq, at, type, detail, cause) VALUES (?, ?, ?, ?, ?)",
      state.seq,
      at,
      type,
      JSON.stringify(detail),
      cause,
    );
    return state.seq;
  }

  private readSignal(key: string): StoredSignal | undefined {
    const row = this.sql.exec("SELECT * FROM signals WHERE key = ?", key).toArray()[0];
    return row ? signalFromRow(row) : undefined;
  }

  private allSignals(): StoredSignal[] {
    return this.sql.exec("SELECT * FROM signals ORDER BY key").toArray().map(signalFromRow);
  }

  private observe(): Observation {
    return observe(this.allSignals());
  }

  private writeSignal(s: StoredSignal): void {
    this.sql.exec(
      `INSERT INTO signals (key, source, side, status, soft, at, incident, labels, annotations, notices,
                            received_at, first_seen, last_seen)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (key) DO UPDATE SET
         source = excluded.source, side = excluded.side, status = excluded.status, soft = excluded.soft,
         at = excluded.at, incident = excluded.incident, labels = excluded.labels,
         annotations = excluded.annotations, notices = excluded.notices, received_at = excluded.received_at,
         first_seen = excluded.first_seen, last_seen = excluded.last_seen`,
      s.key,
      s.source,
      s.side,
      s.status,
      s.soft ? 1 : 0,
      s.at,
      s.incident,
      JSON.stringify(s.labels),
      JSON.stringify(s.annotations),
      JSON.stringify(s.notices),
      s.receivedAt,
      s.firstSeen,
      s.lastSeen,
    );
  }
}
