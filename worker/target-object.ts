/**
 * One Durable Object per target (design §5): a thin shell around the pure decision engine. It
 * persists the target's signals, the machine state and the append-only audit log in SQLite, feeds
 * every input (signals, alarm, commands, agent reports, dispatch results) to
 * `decide(state, input, now)`, writes the new state and the transition's audit events in one
 * transaction, and only then performs the effects: the single alarm, dispatches and notifications.
 */
import { DurableObject } from "cloudflare:workers";
import { z } from "zod";
import { PolicySchema, type Side, SideSchema, type WorkerTarget } from "../shared/config.ts";
import type { ActionReport } from "../shared/protocol.ts";
import { loadConfig } from "./config.ts";
import { type Dispatcher, transportDispatcher } from "./dispatcher.ts";
import { drillSummary } from "./drill-summary.ts";
import type { Env } from "./env.ts";
import { decide, type Effect, initialState, type MachineInput, MachineStateSchema, machineView } from "./machine.ts";
import {
  type IncidentThread,
  type Notification,
  type Notifier,
  notificationContext,
  settles,
  slackNotifier,
} from "./notifier.ts";
import {
  type IngestBatch,
  IngestBatchSchema,
  type IngestResult,
  isHeld,
  type Json,
  mergeSignal,
  NoticeStateSchema,
  type Observation,
  observe,
  SignalSourceSchema,
  SignalStatusSchema,
  type StoredSignal,
  StoredSignalSchema,
  sameVersion,
} from "./signals.ts";
import {
  BREAK_GLASS_DDL,
  type BreakGlassClick,
  BreakGlassClickSchema,
  type BreakGlassOutcome,
  type BreakGlassRequestInput,
  BreakGlassRequestInputSchema,
  breakGlassReason,
  insertBreakGlass,
  judgeBreakGlassClick,
  readBreakGlass,
  resolveBreakGlassRow,
} from "./slack/break-glass.ts";
import type { AuditEvent, CommandResult, EventPage, SignalView, TargetCommand, TargetView } from "./target-view.ts";

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

/**
 * The persisted state row: the decision engine's state (whose `seq` is the audit counter shared
 * by the shell's own events) and the latest per-side observation of stored signals.
 */
export const TargetStateSchema = z.object({
  target: z.string(),
  observation: z.object({ primary: SideObservationSchema, secondary: SideObservationSchema }),
  machine: MachineStateSchema,
});
export type TargetState = z.infer<typeof TargetStateSchema>;

export type {
  AuditEvent,
  CommandResult,
  EventPage,
  SignalView,
  TargetCommand,
  TargetView,
} from "./target-view.ts";

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
    side: s.side,
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

type LoadedState = TargetState & { configEffects: Effect[] };

/** Used only when a stored target has vanished from the config: §5 defaults, primary active. */
const DEFAULT_TARGET: Pick<WorkerTarget, "policy" | "initialActiveSide"> = {
  policy: PolicySchema.parse(undefined),
  initialActiveSide: "primary",
};

/**
 * Test seams, set only by tests running in the same isolate (the Workers Vitest integration runs
 * Durable Objects beside the tests): a clock, a recording dispatcher and notifier. A static, so it
 * survives evictions, which is exactly what the eviction tests need.
 */
export interface TargetObjectTesting {
  now?: () => number;
  dispatcher?: Dispatcher;
  notifier?: Notifier;
}

export class TargetObject extends DurableObject<Env> {
  static testing: TargetObjectTesting | undefined;
  private readonly sql: SqlStorage;
  /** Effects still being performed (dispatches), so tests and alarm() can wait for them. */
  private readonly inflight = new Set<Promise<void>>();
  /** The tail of the notification queue (see enqueueNotice). */
  private notices: Promise<void> = Promise.resolve();

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.migrate();
  }

  private migrate(): void {
    for (const ddl of DDL) this.sql.exec(ddl);
    // Pending Slack break-glass requests (two-person rule); additive table, see slack/break-glass.ts.
    this.sql.exec(BREAK_GLASS_DDL);
    // The open incident's Slack thread (bot-token notifications); additive table.
    this.sql.exec(
      "CREATE TABLE IF NOT EXISTS incident_thread (id INTEGER PRIMARY KEY CHECK (id = 1), ts TEXT NOT NULL, opened_at INTEGER NOT NULL)",
    );
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

  private now(): number {
    return TargetObject.testing?.now?.() ?? Date.now();
  }

  /** Liveness probe used by tests and /healthz diagnostics. */
  async ping(): Promise<string> {
    return "pong";
  }

  /**
   * Records one webhook's deliveries for this target in one transaction: signals (dedupe and
   * ordering per design §4), an audit event per change and per warning, then the decision engine's
   * reaction to the new observation. Effects (dispatch, notify) run after the transaction.
   */
  async ingest(input: IngestBatch): Promise<IngestResult> {
    const batch = IngestBatchSchema.parse(input);
    const now = this.now();
    const { result, effects } = this.ctx.storage.transactionSync(() => {
      const state = this.loadState(batch.target, now);
      const result: IngestResult = { accepted: 0, duplicates: 0, ignored: 0 };
      const effects: Effect[] = [...state.configEffects];
      let causeSeq: number | null = null;
      let changed = state.configEffects.length > 0;
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
        const type = stored && sameVersion(stored, next) ? "signal.notice" : `signal.${next.status}`;
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
      if (causeSeq !== null) {
        // Rule 8: signals are recorded in every phase; the machine decides what they mean now.
        state.observation = this.observeStored();
        const { firingSources: pf, heldSources: ph } = state.observation.primary;
        const { firingSources: sf, heldSources: sh } = state.observation.secondary;
        const input: MachineInput = {
          type: "observed",
          sides: { primary: { firingSources: pf, heldSources: ph }, secondary: { firingSources: sf, heldSources: sh } },
          cause: causeSeq,
        };
        effects.push(...this.step(state, input, now).effects);
      }
      if (changed) this.saveState(state);
      return { result, effects };
    });
    this.perform(effects);
    return result;
  }

  /** Applies an operator or Slack command (design §3); a command that does not apply is `rejected`. */
  async command(name: string, command: TargetCommand): Promise<CommandResult> {
    const now = this.now();
    const { rejected, effects } = this.transition(name, now, { type: "command", ...command });
    this.perform(effects);
    const view = await this.view(name);
    return rejected === undefined ? { applied: true, view } : { applied: false, rejected, view };
  }

  /**
   * Feeds an agent report (design §5 rule 5). Returns whether it concerned the current action;
   * reports for other ids or old epochs are audited (`report.ignored`) and otherwise ignored.
   */
  async report(name: string, report: ActionReport): Promise<{ accepted: boolean }> {
    const { effects } = this.transition(name, this.now(), { type: "report", report });
    this.perform(effects);
    const ignored = effects.some((e) => e.type === "audit" && e.event.type === "report.ignored");
    return { accepted: !ignored };
  }

  /**
   * QStash gave up delivering an action (its failure callback): its own retries are spent, and a
   * re-publish under the same id would be deduplicated away, so the action fails now; `retry`
   * starts it again under a new id.
   */
  async deliveryFailed(name: string, actionId: string, error: string): Promise<void> {
    const input: MachineInput = { type: "dispatch-result", actionId, ok: false, error, final: true };
    const { effects } = this.transition(name, this.now(), input);
    this.perform(effects);
  }

  /** The single alarm (design §5): every deadline is checked by the machine's `timer` input. */
  override async alarm(): Promise<void> {
    const state = this.readState();
    if (!state) return;
    const { effects } = this.transition(state.target, this.now(), { type: "timer" });
    this.perform(effects);
    await this.settle();
  }

  /** Waits until every dispatch started so far has been delivered and its result fed back. */
  async settle(): Promise<void> {
    while (this.inflight.size > 0) await Promise.allSettled([...this.inflight]);
  }

  /** The target's view for `GET /v1/targets/:name`; `lastEvents` (newest 20, oldest first) unless omitted. */
  async view(name: string, options: { events?: boolean } = {}): Promise<TargetView> {
    const now = this.now();
    const stored = this.readState();
    const target = this.targetConfig(name);
    // A target never seen (or not configured) reads as the state it would start in.
    const m = machineView(stored?.machine ?? initialState(name, target ?? DEFAULT_TARGET), now);
    const signals = this.allSignals();
    const side = (s: Side) => ({
      // Rule 1: up when nothing fires (also before any signal), down at quorum, unknown between.
      health: m.sides[s].health,
      upSince: m.sides[s].upSince,
      firing: signals.filter((x) => x.side === s && x.status === "firing").map(signalView),
    });
    const view: TargetView = {
      name,
      ...m,
      lastDrill: drillSummary(m.lastDrill),
      sides: { primary: side("primary"), secondary: side("secondary") },
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

  // --- Slack break-glass: the two-person rule (design §5b); storage and judgement in slack/break-glass.ts ---

  /** Records a forced failover/failback awaiting a second person; answers the epoch and phase it was made at. */
  async requestBreakGlass(
    name: string,
    input: BreakGlassRequestInput,
  ): Promise<{ epoch: number; phase: string; activeSide: Side }> {
    const req = BreakGlassRequestInputSchema.parse(input);
    const now = this.now();
    const { at, effects } = this.ctx.storage.transactionSync(() => {
      const state = this.loadState(name, now);
      const m = state.machine;
      insertBreakGlass(this.sql, req, { epoch: m.epoch, phase: m.phase, now });
      const detail = { command: req.command, requester: req.requester, reason: req.reason, nonce: req.nonce };
      this.appendEvent(state, now, "breakglass.requested", { ...detail, epoch: m.epoch, phase: m.phase }, null);
      this.saveState(state);
      return { at: { epoch: m.epoch, phase: m.phase, activeSide: m.activeSide }, effects: state.configEffects };
    });
    this.perform(effects);
    return at;
  }

  /**
   * One Approve / Cancel click on a break-glass request. The checks (pending, not the requester,
   * epoch unchanged) and the forced command run in ONE transaction, so at most one click executes.
   */
  async resolveBreakGlass(name: string, input: BreakGlassClick): Promise<BreakGlassOutcome & { view: TargetView }> {
    const click = BreakGlassClickSchema.parse(input);
    const now = this.now();
    const { outcome, effects } = this.ctx.storage.transactionSync(() => {
      const state = this.loadState(name, now);
      const verdict = judgeBreakGlassClick(readBreakGlass(this.sql, click.nonce), click, state.machine.epoch, now);
      const effects: Effect[] = [...state.configEffects];
      let outcome: BreakGlassOutcome;
      if (verdict.act === "refuse") {
        // Refusals change nothing, not even the audit log: the click did not act. (The state is
        // saved only for a config input loadState may have applied.)
        outcome = { outcome: verdict.outcome, detail: verdict.detail };
      } else if (verdict.act === "cancel") {
        const { row } = verdict;
        const who = { command: row.command, requester: row.requester, nonce: row.nonce };
        this.appendEvent(state, now, "breakglass.cancelled", { ...who, by: click.actor }, null);
        resolveBreakGlassRow(this.sql, row.nonce, "cancelled", click.actor, now, null);
        outcome = { outcome: "cancelled", command: row.command, requester: row.requester };
      } else {
        const { row } = verdict;
        const who = { command: row.command, requester: row.requester, nonce: row.nonce };
        this.appendEvent(state, now, "breakglass.approved", { ...who, approver: click.actor }, null);
        const reason = breakGlassReason(row, click.actor);
        const d = this.step(
          state,
          { type: "command", command: row.command, force: true, actor: click.actor, reason },
          now,
        );
        effects.push(...d.effects);
        const status = d.rejected === undefined ? "executed" : "rejected";
        resolveBreakGlassRow(this.sql, row.nonce, status, click.actor, now, d.rejected ?? null);
        outcome =
          d.rejected === undefined
            ? { outcome: "executed", command: row.command, requester: row.requester }
            : { outcome: "rejected", command: row.command, requester: row.requester, reason: d.rejected };
      }
      this.saveState(state);
      return { outcome, effects };
    });
    this.perform(effects);
    return { ...outcome, view: await this.view(name, { events: false }) };
  }

  // -------------------------------------------------------------------------------------------

  /** Loads, decides and persists one input in one transaction; returns the effects to perform. */
  private transition(name: string, now: number, input: MachineInput): { effects: Effect[]; rejected?: string } {
    return this.ctx.storage.transactionSync(() => {
      const state = this.loadState(name, now);
      const d = this.step(state, input, now);
      this.saveState(state);
      return {
        effects: [...state.configEffects, ...d.effects],
        ...(d.rejected !== undefined ? { rejected: d.rejected } : {}),
      };
    });
  }

  /** One `decide` call: the new machine state replaces the old, its audit events are written. */
  private step(state: LoadedState, input: MachineInput, now: number): { effects: Effect[]; rejected?: string } {
    const d = decide(state.machine, input, now);
    state.machine = d.state;
    for (const e of d.effects) {
      if (e.type === "audit")
        this.insertEvent(e.event.seq, e.event.at, e.event.type, e.event.detail, e.event.cause ?? null);
    }
    return d.rejected !== undefined ? { effects: d.effects, rejected: d.rejected } : { effects: d.effects };
  }

  /**
   * Performs effects after their transaction committed. Exactly one `setTimer` comes last in each
   * decision, so arming in order leaves the alarm at the newest decision's earliest deadline.
   */
  private perform(effects: readonly Effect[]): void {
    // Notifications carry the committed state's context; read it once per batch, and only if needed.
    let stored: TargetState | null | undefined;
    const lastNotice = effects.findLastIndex((e) => e.type === "notify");
    for (const [i, effect] of effects.entries()) {
      switch (effect.type) {
        case "setTimer":
          if (effect.at === null) void this.ctx.storage.deleteAlarm();
          else void this.ctx.storage.setAlarm(effect.at);
          break;
        case "notify": {
          if (stored === undefined) stored = this.readState();
          const target = stored?.target ?? "target";
          const context = stored ? notificationContext(stored.machine) : undefined;
          this.enqueueNotice({
            target,
            text: effect.text,
            kind: effect.kind,
            ...(context ? { context, closesIncident: i === lastNotice && settles(context) } : {}),
          });
          break;
        }
        case "dispatch":
          this.track(this.deliver(effect.request));
          break;
        case "audit":
          break;
      }
    }
  }

  /** Delivers a dispatch and feeds the outcome (and any report the agent already has) back. */
  private async deliver(request: Extract<Effect, { type: "dispatch" }>["request"]): Promise<void> {
    let attempt: Awaited<ReturnType<Dispatcher["dispatch"]>>;
    try {
      const dispatcher = TargetObject.testing?.dispatcher ?? this.defaultDispatcher();
      attempt = dispatcher
        ? await dispatcher.dispatch(request)
        : { ok: false, error: "agent transport not configured: the worker configuration is invalid" };
    } catch (err) {
      attempt = { ok: false, error: `dispatch threw: ${String(err)}` };
    }
    const now = this.now();
    const result: MachineInput = attempt.ok
      ? { type: "dispatch-result", actionId: request.id, ok: true, detail: attempt.detail }
      : {
          type: "dispatch-result",
          actionId: request.id,
          ok: false,
          error: attempt.error,
          ...(attempt.final ? { final: true } : {}),
          ...(attempt.retryAfterSeconds === undefined ? {} : { retryAfterMs: attempt.retryAfterSeconds * 1000 }),
        };
    const { effects } = this.transition(request.target, now, result);
    this.perform(effects);
    if (attempt.ok && attempt.report && attempt.report.status !== "running") {
      const fed = this.transition(request.target, now, { type: "report", report: attempt.report });
      this.perform(fed.effects);
    }
  }

  /**
   * Posts notifications one after another, in the order the machine emitted them: a channel
   * reads as the incident happened, and a thread's root is posted before its replies.
   */
  private enqueueNotice(n: Notification): void {
    const notifier = this.notifierFor();
    const next = this.notices.then(() => notifier.notify(n, this.thread));
    this.notices = next.catch(() => {});
    this.track(next);
  }

  /** The open incident's Slack thread (root message ts), one row per target. */
  private readonly thread: IncidentThread = {
    current: () => {
      const row = this.sql.exec("SELECT ts FROM incident_thread WHERE id = 1").toArray()[0];
      return row ? String(row.ts) : undefined;
    },
    open: (ts) => {
      this.sql.exec(
        "INSERT INTO incident_thread (id, ts, opened_at) VALUES (1, ?, ?) ON CONFLICT (id) DO UPDATE SET ts = excluded.ts, opened_at = excluded.opened_at",
        ts,
        this.now(),
      );
    },
    close: () => {
      this.sql.exec("DELETE FROM incident_thread WHERE id = 1");
    },
  };

  private track(p: Promise<void>): void {
    const tracked = p.catch((err: unknown) => {
      console.error(JSON.stringify({ level: "error", msg: "effect failed", error: String(err) }));
    });
    this.inflight.add(tracked);
    void tracked.finally(() => this.inflight.delete(tracked));
    this.ctx.waitUntil(tracked);
  }

  private defaultDispatcher(): Dispatcher | undefined {
    const loaded = loadConfig(this.env);
    return loaded.ok ? transportDispatcher(this.env, loaded.value) : undefined;
  }

  private notifierFor(): Notifier {
    const testing = TargetObject.testing?.notifier;
    if (testing) return testing;
    const loaded = loadConfig(this.env);
    if (!loaded.ok) return slackNotifier(this.env);
    return slackNotifier(this.env, {
      statusUrl: loaded.value.statusUrl,
      channel: loaded.value.chatops?.slack?.notifyChannel,
    });
  }

  private targetConfig(name: string): WorkerTarget | undefined {
    const loaded = loadConfig(this.env);
    return loaded.ok ? loaded.value.targets[name] : undefined;
  }

  private readState(): TargetState | null {
    const row = this.sql.exec("SELECT json FROM state WHERE id = 1").toArray()[0];
    return row ? TargetStateSchema.parse(JSON.parse(String(row.json))) : null;
  }

  /**
   * The state to decide on: the stored row, or a fresh one for a first-seen target. When the
   * configured policy differs from the one the machine holds, a `config` input is applied first
   * (its effects are returned in `configEffects`), so a config change is an audited input.
   */
  private loadState(name: string, now: number): LoadedState {
    const existing = this.readState();
    const target = this.targetConfig(name);
    const empty = { firingSources: [], heldSources: [], seen: false };
    const state: LoadedState = existing
      ? { ...existing, configEffects: [] }
      : {
          target: name,
          observation: { primary: { ...empty }, secondary: { ...empty } },
          machine: initialState(name, target ?? DEFAULT_TARGET),
          configEffects: [],
        };
    if (existing && target) {
      const m = state.machine;
      const differs =
        JSON.stringify(m.policy) !== JSON.stringify(target.policy) ||
        m.homeSide !== target.initialActiveSide ||
        JSON.stringify(m.drillConfig) !== JSON.stringify(target.drill ?? null);
      if (differs) {
        const input: MachineInput = {
          type: "config",
          policy: target.policy,
          initialActiveSide: target.initialActiveSide,
          ...(target.drill ? { drill: target.drill } : {}),
        };
        state.configEffects = this.step(state, input, now).effects;
      }
    }
    return state;
  }

  private saveState(state: LoadedState): void {
    const { configEffects: _, ...row } = state;
    this.sql.exec(
      "INSERT INTO state (id, json) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET json = excluded.json",
      JSON.stringify(row),
    );
  }

  /** Appends a shell event (signals, warnings) with the next seq of the machine's counter. */
  private appendEvent(state: LoadedState, at: number, type: string, detail: Json, cause: number | null): number {
    state.machine.seq += 1;
    this.insertEvent(state.machine.seq, at, type, detail, cause);
    return state.machine.seq;
  }

  private insertEvent(seq: number, at: number, type: string, detail: unknown, cause: number | null): void {
    this.sql.exec(
      "INSERT INTO events (seq, at, type, detail, cause) VALUES (?, ?, ?, ?, ?)",
      seq,
      at,
      type,
      JSON.stringify(detail),
      cause,
    );
  }

  private readSignal(key: string): StoredSignal | undefined {
    const row = this.sql.exec("SELECT * FROM signals WHERE key = ?", key).toArray()[0];
    return row ? signalFromRow(row) : undefined;
  }

  /**
   * The per-side observation straight from the columns it needs: runs on every ingest that changed
   * something, so it does not read labels and annotations or re-validate every stored signal.
   */
  private observeStored(): Observation {
    const rows = this.sql.exec("SELECT side, source, status, soft, notices FROM signals").toArray();
    return observe(
      rows.map((r) => {
        const firing = r.status === "firing" && r.soft === 0;
        return {
          side: SideSchema.parse(r.side),
          source: SignalSourceSchema.parse(r.source),
          status: SignalStatusSchema.parse(r.status),
          soft: r.soft === 1,
          // Only firing HARD signals can be held; the others' notices never matter here.
          notices: firing ? NoticeStateSchema.parse(JSON.parse(String(r.notices))) : {},
        };
      }),
    );
  }

  private allSignals(): StoredSignal[] {
    return this.sql.exec("SELECT * FROM signals ORDER BY key").toArray().map(signalFromRow);
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
