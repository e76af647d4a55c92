/**
 * One Durable Object per target (design §5): a thin shell around the pure decision engine. It
 * persists the target's signals, the machine state and the append-only audit log in SQLite, feeds
 * every input (signals, alarm, commands, agent reports, dispatch results) to
 * `decide(state, input, now)`, writes the new state and the transition's audit events in one
 * transaction, and only then performs the effects: the single alarm, dispatches and notifications.
 */
import { DurableObject } from "cloudflare:workers";
import { z } from "zod";
import { agentsOf, PolicySchema, SIDES, type Side, type WorkerConfig, type WorkerTarget } from "../../shared/config.ts";
import type { ActionReport } from "../../shared/protocol.ts";
import { agentFor } from "../agents/agent-for.ts";
import { agentKeys } from "../agents/agent-keys.ts";
import { probeAgent } from "../agents/agent-probe.ts";
import { forwardApproval } from "../agents/approvals.ts";
import { type Dispatcher, transportDispatcher } from "../agents/dispatcher.ts";
import { type LoadedConfig, loadConfig } from "../config.ts";
import { drillSummary } from "../engine/drill-summary.ts";
import { type Effect, initialState, type MachineInput, machineView, upgradeMachineState } from "../engine/machine.ts";
import { stepApprovalRefusal } from "../engine/machine-commands.ts";
import type { AuditEvent as MachineAuditEvent } from "../engine/machine-types.ts";
import {
  goingStale,
  type IngestBatch,
  type IngestResult,
  isHeld,
  isStale,
  type Json,
  type Observation,
  observe,
  type SideObservation,
  type StoredSignal,
} from "../engine/signals.ts";
import type { Env } from "../env.ts";
import {
  BREAK_GLASS_DDL,
  BREAK_GLASS_TTL_MS,
  type BreakGlassClick,
  BreakGlassClickSchema,
  type BreakGlassOutcome,
  type BreakGlassRequestInput,
  BreakGlassRequestInputSchema,
  breakGlassReason,
  insertBreakGlass,
  judgeBreakGlassClick,
  openBreakGlassRows,
  readBreakGlass,
  resolveBreakGlassRow,
} from "./break-glass.ts";
import type { BreakGlassRequest } from "./incidents.ts";
import {
  type IncidentThread,
  type Notification,
  type Notifier,
  notificationContext,
  settles,
  slackNotifier,
} from "./notifier.ts";
import { Outbox } from "./outbox.ts";
import { type PageIntent, type PageRequest, PageRequestSchema } from "./paging.ts";
import { readinessPages } from "./readiness-pages.ts";
import {
  type AgentReadiness,
  AgentReadinessSchema,
  deriveSide,
  readinessInputOf,
  readinessView,
  type SideAgent,
} from "./readiness-view.ts";
import {
  alarm as alarmCore,
  applyConfig,
  type CoreOutcome,
  type CoreState,
  clear as clearCore,
  ingest as ingestCore,
  input as inputCore,
  newCoreState,
  type ShellInput,
  type TargetConfig,
  type TargetStore,
} from "./target-core.ts";
import type {
  AuditEvent,
  CommandResult,
  EventPage,
  RecordingLine,
  SignalView,
  StepApprovalInput,
  StepApprovalResult,
  TargetCommand,
  TargetView,
} from "./target-view.ts";

/** Bumped when a migration is added below; a newer stored version than the code knows is refused. */
export const SCHEMA_VERSION = 3;

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
     last_seen INTEGER NOT NULL,
     stale_since INTEGER,
     held INTEGER NOT NULL DEFAULT 0
   )`,
  // The view's firing signals per side.
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
  // Verified ingest bodies of a `record: true` target (design §10), for `npm run simulate`.
  `CREATE TABLE IF NOT EXISTS recordings (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     at INTEGER NOT NULL,
     source TEXT NOT NULL,
     body TEXT NOT NULL
   )`,
];

// Indexes that reads use instead of every row (design §4), created after the migration that adds
// `held`. Both are partial, so that the update of a firing signal seen again (its `last_seen`, its
// incident) writes no index at all: the firing rows by key (what the store loads into memory and
// observes; design §4: no request reads every stored row), and the resolved rows by last seen
// (what retention deletes). The covering indexes observing once read from, and the index of every
// row by status and last seen, are dropped: each was a B-tree written on every signal update.
const SIGNAL_INDEXES = [
  "DROP INDEX IF EXISTS signals_firing_sources",
  "DROP INDEX IF EXISTS signals_firing_seen",
  "DROP INDEX IF EXISTS signals_by_status",
  "CREATE INDEX IF NOT EXISTS signals_firing ON signals (key) WHERE status = 'firing'",
  "CREATE INDEX IF NOT EXISTS signals_resolved_seen ON signals (last_seen) WHERE status = 'resolved'",
];

/** How often retention runs at most (it is a bounded pair of deletes). */
const PRUNE_EVERY_MS = 3600_000;
/** Most rows one retention pass deletes, so that no single request does unbounded work. */
const PRUNE_BATCH = 2000;
/** Firing signals listed per side in the view (design §4: capped, with `firingCount`). */
export const VIEW_FIRING_LIMIT = 100;

const ObservationSideSchema = z.object({
  firingSources: z.array(z.string()),
  heldSources: z.array(z.string()),
  staleSources: z.array(z.string()).default([]),
  incidents: z.array(z.string()).default([]),
});

/**
 * The persisted state row: the decision engine's state (whose `seq` is the audit counter shared
 * by the shell's own events), the latest per-side observation, and the shell's bookkeeping.
 */
export const TargetStateSchema = z.object({
  target: z.string(),
  observation: z.object({ primary: ObservationSideSchema, secondary: ObservationSideSchema }),
  machine: z.unknown().transform((m) => upgradeMachineState(m)),
  routedWith: z.string().nullable().default(null),
  lastPrunedAt: z.number().default(0),
  decidedAt: z.number().optional(),
  staleBound: z.object({ at: z.number().nullable(), staleAfterMs: z.number() }).optional(),
});
export type TargetState = CoreState & { lastPrunedAt: number };

export type {
  AuditEvent,
  CommandResult,
  EventPage,
  SignalView,
  TargetCommand,
  TargetView,
} from "./target-view.ts";

const iso = (ms: number) => new Date(ms).toISOString();

/** A signal row as written by {@link TargetObject}; our own rows, so read without re-validating. */
function signalFromRow(r: Record<string, SqlStorageValue>): StoredSignal {
  return {
    key: String(r.key),
    source: r.source as StoredSignal["source"],
    side: r.side as Side,
    status: r.status as StoredSignal["status"],
    soft: r.soft === 1,
    at: Number(r.at),
    incident: String(r.incident),
    labels: JSON.parse(String(r.labels)),
    annotations: JSON.parse(String(r.annotations)),
    notices: JSON.parse(String(r.notices)),
    receivedAt: Number(r.received_at),
    firstSeen: Number(r.first_seen),
    lastSeen: Number(r.last_seen),
    staleSince: r.stale_since === null || r.stale_since === undefined ? null : Number(r.stale_since),
  };
}

function eventFromRow(r: Record<string, SqlStorageValue>): AuditEvent {
  return {
    seq: Number(r.seq),
    at: iso(Number(r.at)),
    type: String(r.type),
    detail: JSON.parse(String(r.detail)) as Json,
    cause: r.cause === null ? null : Number(r.cause),
  };
}

function signalView(s: StoredSignal, now: number, staleAfterMs: number): SignalView {
  return {
    key: s.key,
    source: s.source,
    side: s.side,
    status: s.status,
    soft: s.soft,
    held: isHeld(s.notices),
    stale: s.status === "firing" && isStale(s, now, staleAfterMs),
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

/** Used only when a stored target has vanished from the config: §5 defaults, primary active. */
const DEFAULT_TARGET: TargetConfig = {
  policy: PolicySchema.parse(undefined),
  initialActiveSide: "primary",
  sides: { primary: { matchers: ['turnout="unconfigured"'] }, secondary: { matchers: ['turnout="unconfigured"'] } },
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
  /** The configuration in force, in place of TURNOUT_CONFIG (config edits and removal, rule 15). */
  config?: () => WorkerConfig;
  /** Answers the probe of a silent agent (rule 17) in place of a signed GET /healthz. */
  prober?: (agent: string) => Promise<boolean>;
  /** How many firing signals the store keeps in memory before it observes through SQLite instead. */
  firingInMemoryMax?: number;
}

export class TargetObject extends DurableObject<Env> {
  static testing: TargetObjectTesting | undefined;
  private readonly sql: SqlStorage;
  /** Effects still being performed (dispatches), so tests and alarm() can wait for them. */
  private readonly inflight = new Set<Promise<void>>();
  /** The tail of the notification queue (see enqueueNotice). */
  private notices: Promise<void> = Promise.resolve();
  /** Rows SQLite read for the last public call (tests assert that requests read bounded rows). */
  rowsRead = 0;
  /** The store the core reads and writes: this object's SQLite tables. */
  private readonly store: SqlTargetStore;
  /**
   * The parsed state row as last read or written. An object runs as one instance and only
   * {@link saveState} writes the row, so once read it is answered from here with no statement; a
   * failed transaction forgets it (storage rolled back, memory may not have).
   */
  private cached: { state: TargetState; configKey: object | undefined } | null = null;
  /** The alarm time this instance last set (undefined: unknown, as after a wake or an alarm). */
  private alarmAt: number | null | undefined;
  /** Pages and outgoing events, queued in the deciding transaction and sent after it (outbox.ts). */
  private readonly outbox: Outbox;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.store = new SqlTargetStore(this.sql, (q, ...args) => this.rows(q, ...args));
    this.migrate();
    this.outbox = new Outbox({
      sql: this.sql,
      now: () => this.now(),
      config: (target) => {
        const loaded = this.config();
        return loaded.ok
          ? {
              global: loaded.value.notify,
              target: this.targetConfig(target, loaded)?.notify,
              statusUrl: loaded.value.statusUrl,
            }
          : {};
      },
      secret: (name) => {
        const value = (this.env as unknown as Record<string, unknown>)[name];
        return typeof value === "string" ? value : undefined;
      },
      audit: (target, type, detail) => this.auditShell(target, type, detail),
      slack: (target, text) => this.enqueueNotice({ target, text, kind: "alert" }),
      arm: (at) => void this.armAtMost(at),
      waitUntil: (p) => this.ctx.waitUntil(p),
    });
  }

  private migrate(): void {
    for (const ddl of DDL) this.sql.exec(ddl);
    // Pending break-glass requests (two-person rule, design §3a); additive table, see slack/break-glass.ts.
    this.sql.exec(BREAK_GLASS_DDL);
    // The open incident's Slack thread (bot-token notifications); additive table.
    this.sql.exec(
      "CREATE TABLE IF NOT EXISTS incident_thread (id INTEGER PRIMARY KEY CHECK (id = 1), ts TEXT NOT NULL, opened_at INTEGER NOT NULL)",
    );
    // What each agent last said of this target's readiness (design §11.3); additive table.
    this.sql.exec("CREATE TABLE IF NOT EXISTS readiness (agent TEXT PRIMARY KEY, json TEXT NOT NULL)");
    const row = this.sql.exec("SELECT value FROM meta WHERE key = 'schema_version'").toArray()[0];
    const stored = row ? Number(row.value) : 0;
    if (stored > SCHEMA_VERSION) {
      // Rolled-back code must not write into a newer layout it does not understand.
      throw new Error(`storage schema ${stored} is newer than this code's ${SCHEMA_VERSION}`);
    }
    if (stored < SCHEMA_VERSION) {
      // 1 → 2: signals gained `stale_since` (design §4 staleness). A fresh object already has it.
      const columns = this.sql
        .exec("PRAGMA table_info(signals)")
        .toArray()
        .map((c) => String(c.name));
      if (!columns.includes("stale_since")) this.sql.exec("ALTER TABLE signals ADD COLUMN stale_since INTEGER");
      // 2 → 3: signals gained `held` (a flapping or downtime notice is active), so that observing
      // reads per-side aggregates from an index instead of every firing row's notices (issue 19).
      if (!columns.includes("held")) {
        this.sql.exec("ALTER TABLE signals ADD COLUMN held INTEGER NOT NULL DEFAULT 0");
        this.sql.exec(
          `UPDATE signals SET held = 1 WHERE json_extract(notices, '$.flapping.active') = 1
             OR json_extract(notices, '$.downtime.active') = 1`,
        );
      }
      this.sql.exec(
        "INSERT INTO meta (key, value) VALUES ('schema_version', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        String(SCHEMA_VERSION),
      );
    }
    for (const ddl of SIGNAL_INDEXES) this.sql.exec(ddl);
  }

  private now(): number {
    return TargetObject.testing?.now?.() ?? Date.now();
  }

  /** Runs one statement, counting the rows SQLite read for it. */
  private rows(query: string, ...args: SqlStorageValue[]): Record<string, SqlStorageValue>[] {
    const cursor = this.sql.exec(query, ...args);
    const out = cursor.toArray();
    this.rowsRead += cursor.rowsRead;
    return out;
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
    // The HTTP route validated the body and our own front worker built this batch: a shape check,
    // not a full parse (issue 19: validate at the trust boundary).
    const batch = checkBatch(input);
    const now = this.now();
    this.rowsRead = 0;
    const { result, effects } = this.transact(() => {
      const state = this.loadState(batch.target, now);
      if (batch.recording && this.targetConfig(batch.target)?.record) {
        this.sql.exec(
          "INSERT INTO recordings (at, source, body) VALUES (?, ?, ?)",
          batch.receivedAt,
          batch.recording.source,
          JSON.stringify(batch.recording.body),
        );
      }
      const out = ingestCore(this.store, state, batch.deliveries, batch.warnings, batch.receivedAt, now);
      if (out.changed || state.configChanged) this.saveState(state);
      return { result: out.result, effects: [...state.configEffects, ...out.effects] };
    });
    this.perform(effects);
    return result;
  }

  /**
   * Applies an operator or Slack command (design §3); a command that does not apply is `rejected`.
   * `clear` acts on the stored signals; every other command is the machine's.
   */
  async command(name: string, command: TargetCommand): Promise<CommandResult> {
    const now = this.now();
    this.rowsRead = 0;
    const { rejected, warnings, effects } = this.run(name, now, (state) => {
      if (command.command === "clear") {
        return clearCore(
          this.store,
          state,
          command.key ?? "",
          { actor: command.actor, onBehalfOf: command.onBehalfOf, reason: command.reason },
          now,
        );
      }
      // A plan step's approval is forwarded to the agent first: only approveStep() records one.
      const { key: _key, step: _step, ...rest } = command as TargetCommand & { step?: unknown };
      return inputCore(this.store, state, { type: "command", ...rest, command: command.command }, now);
    });
    this.perform(effects);
    const view = await this.view(name);
    if (rejected !== undefined) return { applied: false, rejected, view };
    return warnings ? { applied: true, warnings, view } : { applied: true, view };
  }

  /**
   * Approves a plan step waiting for a person (design §11.2, §11.6). Refused unless the current
   * action's step is `waiting` and was not approved before (and, from a Slack button, the action
   * is still the one the button was posted for); else forwarded, signed, to the agent that runs
   * the action, and recorded only once it reached the agent (its 409 counts as reached), so an
   * approval the agent never got is never shown as given.
   */
  async approveStep(name: string, input: StepApprovalInput): Promise<StepApprovalResult> {
    const machine = this.readState()?.machine;
    const action = machine?.action ?? null;
    const command: ShellInput = { type: "command", command: "approve", step: input.step, actor: input.actor };
    if (input.reason !== undefined) command.reason = input.reason;
    if (input.actionId !== undefined && action?.id !== input.actionId) {
      const now = action ? `the current action is ${action.id}` : "no action is running";
      return {
        applied: false,
        rejected: `approve: the button is for ${input.actionId}, but ${now}; nothing changed`,
        view: await this.view(name),
      };
    }
    if (!machine || !action || stepApprovalRefusal(machine, input.step) !== undefined) {
      // The machine refuses it again and audits the refusal like any refused command.
      return this.machineCommand(name, command);
    }
    const loaded = this.config();
    if (!loaded.ok)
      return { applied: false, unavailable: "the worker configuration is invalid", view: await this.view(name) };
    // The agent recorded on the action when it was committed, signed with that agent's own key.
    const agent = agentFor(loaded.value, action);
    if (!agent) {
      return {
        applied: false,
        unavailable: `the agent ${action.agent ?? "default"} that runs ${action.id} is no longer in the configuration`,
        view: await this.view(name),
      };
    }
    const forwarded = await forwardApproval(
      agent,
      { actionId: action.id, step: input.step, by: input.actor },
      { secrets: agentKeys(this.env).byAgent.get(agent.name) ?? [], now: this.now() },
    );
    if (forwarded.kind === "failed") {
      const now = this.now();
      this.transact(() => {
        const state = this.loadState(name, now);
        this.appendEvent(state, now, "approval.forward-failed", {
          id: action.id,
          step: input.step,
          by: input.actor,
          agent: agent.name,
          error: forwarded.detail,
        });
        this.saveState(state);
      });
      return { applied: false, unavailable: forwarded.detail, view: await this.view(name) };
    }
    // Recorded now; a concurrent approval recorded meanwhile makes this one the refused second.
    const result = await this.machineCommand(name, command);
    return { ...result, forwarded: forwarded.kind };
  }

  /** Runs one machine command as given (no shell commands, no approval forwarding). */
  private async machineCommand(
    name: string,
    command: Extract<MachineInput, { type: "command" }>,
  ): Promise<CommandResult> {
    const { rejected, effects } = this.run(name, this.now(), (state, now) =>
      inputCore(this.store, state, command, now),
    );
    this.perform(effects);
    const view = await this.view(name);
    return rejected === undefined ? { applied: true, view } : { applied: false, rejected, view };
  }

  /**
   * Feeds an agent report (design §5 rules 5, 13). Returns whether it concerned the latest action;
   * reports for other ids or old epochs are audited (`report.ignored`) and otherwise ignored.
   */
  async report(name: string, report: ActionReport, agent?: string): Promise<{ accepted: boolean; refused?: boolean }> {
    const input: ShellInput = { type: "report", report, ...(agent === undefined ? {} : { agent }) };
    const { effects } = this.run(name, this.now(), (state, now) => inputCore(this.store, state, input, now));
    this.perform(effects);
    // Design §11.1: a report signed by another agent than the action's is refused (403), audited.
    if (effects.some((e) => e.type === "audit" && e.event.type === "report.refused")) {
      return { accepted: false, refused: true };
    }
    const ignored = effects.some((e) => e.type === "audit" && e.event.type === "report.ignored");
    return { accepted: !ignored };
  }

  /**
   * An agent's liveness changed (rule 17), told by its {@link AgentObject}: an input of the
   * machine with its time. `announce`: this target carries the transition's one notification.
   */
  async agentLiveness(
    name: string,
    liveness: { agent: string; silent: boolean; at: number; lastHeardAt: number | null; announce: boolean },
  ): Promise<void> {
    const input: ShellInput = { type: "agent", ...liveness };
    const { effects } = this.run(name, this.now(), (state, now) => inputCore(this.store, state, input, now));
    this.perform(effects);
  }

  /**
   * What an agent said of this target's readiness (design §11.3), from its {@link AgentObject}:
   * kept per agent, and each side that agent speaks for is an input of the machine with the
   * evaluation's own time. A side another agent serves is never read from this one.
   */
  async readiness(name: string, report: AgentReadiness): Promise<void> {
    const parsed = AgentReadinessSchema.parse(report);
    const loaded = this.config();
    const intervalMs = readinessIntervalMs(loaded);
    const { effects } = this.run(name, this.now(), (state, now) => {
      this.sql.exec(
        "INSERT INTO readiness (agent, json) VALUES (?, ?) ON CONFLICT (agent) DO UPDATE SET json = excluded.json",
        parsed.agent,
        JSON.stringify(parsed),
      );
      const agents = sideAgentsOf(state.machine.sideAgents, loaded);
      const out: CoreOutcome = { effects: [], changed: true };
      for (const side of SIDES) {
        const derived = deriveSide(parsed, side, agents[side]);
        if (derived === null) continue;
        out.effects.push(...inputCore(this.store, state, readinessInputOf(side, derived, intervalMs), now).effects);
      }
      return out;
    });
    this.perform(effects);
  }

  /**
   * Readiness for a side the sender does not serve (design §11.1): refused (403) by the route,
   * audited here as `report.refused`, since a key that speaks for another side is a stolen or
   * misplaced one.
   */
  async readinessRefused(name: string, detail: { agent: string; sides: Side[]; servedBy: Record<string, string> }) {
    const now = this.now();
    const effects = this.transact(() => {
      const state = this.loadState(name, now);
      this.appendEvent(state, now, "report.refused", { kind: "readiness", ...detail });
      this.saveState(state);
      return state.configEffects;
    });
    if (effects.length > 0) this.perform(effects);
  }

  /** The agents this target's sides name, so their objects watch them from now (silence counts from then). */
  async sideAgents(): Promise<{ primary: string; secondary: string } | null> {
    return this.readState()?.machine.sideAgents ?? null;
  }

  /**
   * QStash gave up delivering an action (its failure callback): its own retries are spent, and a
   * re-publish under the same id would be deduplicated away, so the action fails now; `retry`
   * starts it again under a new id. A callback for any other id than the latest action is ignored.
   */
  async deliveryFailed(name: string, actionId: string, error: string, code?: "wrong-agent"): Promise<void> {
    const input: ShellInput = {
      type: "dispatch-result",
      actionId,
      ok: false,
      error,
      final: true,
      ...(code ? { code } : {}),
    };
    const { effects } = this.run(name, this.now(), (state, now) => inputCore(this.store, state, input, now));
    this.perform(effects);
  }

  /**
   * The single alarm (design §5): staleness and every deadline are checked. A target that left
   * the config does nothing but audit `target.unconfigured` once (rule 15).
   */
  override async alarm(): Promise<void> {
    // A fired alarm is no longer set; whatever this run arms is set anew.
    this.alarmAt = undefined;
    const stored = this.readState();
    if (!stored) {
      this.outbox.kick(true);
      return;
    }
    const { effects } = this.run(stored.target, this.now(), (state, now) => {
      const out = alarmCore(this.store, state, now);
      this.prune(state, now);
      return out;
    });
    this.perform(effects);
    // Pages and events due now go out in the background: a sink that hangs holds nothing here.
    this.outbox.kick(true);
    await this.settle();
  }

  /**
   * Opens (`trigger`) or closes (`resolve`) a page that a person must answer, for what is not the
   * machine's own (agent silent and heard again, readiness lost and back): paged once per key,
   * queued durably, sent after the commit (design §11.4, §11.6; keys in paging.ts `pageKeys`).
   */
  async page(name: string, input: PageRequest): Promise<void> {
    const intent = PageRequestSchema.parse(input);
    const now = this.now();
    this.transact(() =>
      this.outbox.page(name, {
        action: intent.action,
        key: intent.key,
        kind: intent.kind,
        summary: intent.summary,
        ...(intent.todo === undefined ? {} : { todo: intent.todo }),
        details: (intent.details ?? {}) as PageIntent["details"],
        at: now,
      }),
    );
    this.outbox.kick();
  }

  /** Waits until every outbox loop started so far has finished (tests). */
  async drainOutbox(): Promise<void> {
    await this.outbox.idle();
  }

  /** Waits until every dispatch started so far has been delivered and its result fed back. */
  async settle(): Promise<void> {
    while (this.inflight.size > 0) await Promise.allSettled([...this.inflight]);
  }

  /** The target's view for `GET /v1/targets/:name`; `lastEvents` (newest 20, oldest first) unless omitted. */
  async view(name: string, options: { events?: boolean } = {}): Promise<TargetView> {
    const now = this.now();
    this.rowsRead = 0;
    const stored = this.readState();
    const target = this.targetConfig(name);
    // A target never seen (or not configured) reads as the state it would start in.
    const machine = stored?.machine ?? initialState(name, target ?? DEFAULT_TARGET);
    const m = machineView(machine, now);
    const staleAfterMs = machine.policy.staleAfterSeconds * 1000;
    const side = (s: Side) => {
      const firing = this.rows(
        "SELECT * FROM signals WHERE side = ? AND status = 'firing' ORDER BY key LIMIT ?",
        s,
        VIEW_FIRING_LIMIT,
      ).map(signalFromRow);
      const count =
        firing.length < VIEW_FIRING_LIMIT
          ? firing.length
          : Number(this.rows("SELECT COUNT(*) AS n FROM signals WHERE side = ? AND status = 'firing'", s)[0]?.n ?? 0);
      return {
        // Rule 1: up when nothing fires (also before any signal), down at quorum, unknown between.
        health: m.sides[s].health,
        upSince: m.sides[s].upSince,
        firing: firing.map((x) => signalView(x, now, staleAfterMs)),
        firingCount: count,
      };
    };
    const loaded = this.config();
    const reports = new Map(
      this.rows("SELECT json FROM readiness").map((r) => {
        const report = AgentReadinessSchema.parse(JSON.parse(String(r.json)));
        return [report.agent, report] as const;
      }),
    );
    const view: TargetView = {
      name,
      ...m,
      lastDrill: drillSummary(m.lastDrill),
      sides: { primary: side("primary"), secondary: side("secondary") },
      readiness: readinessView(
        reports,
        machine.activeSide,
        sideAgentsOf(machine.sideAgents, loaded),
        now,
        readinessIntervalMs(loaded),
      ),
    };
    if (options.events !== false) {
      view.lastEvents = this.rows("SELECT seq, at, type, detail, cause FROM events ORDER BY seq DESC LIMIT 20")
        .map(eventFromRow)
        .reverse();
    }
    return view;
  }

  /** The audit log after `after`, oldest first, at most `limit` events. */
  async events(after: number, limit: number): Promise<EventPage> {
    const rows = this.rows(
      "SELECT seq, at, type, detail, cause FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
      after,
      limit + 1,
    ).map(eventFromRow);
    const events = rows.slice(0, limit);
    const last = events.at(-1);
    return rows.length > limit && last ? { events, next: last.seq } : { events };
  }

  /**
   * The recorded ingest bodies (design §10) after `after`, oldest first: `--webhooks` NDJSON lines
   * for `npm run simulate`.
   */
  async recording(after: number, limit: number): Promise<{ lines: RecordingLine[]; next?: number }> {
    const rows = this.rows(
      "SELECT id, at, source, body FROM recordings WHERE id > ? ORDER BY id LIMIT ?",
      after,
      limit + 1,
    );
    const lines = rows.slice(0, limit).map((r) => ({
      at: iso(Number(r.at)),
      source: String(r.source) as RecordingLine["source"],
      body: JSON.parse(String(r.body)) as Json,
    }));
    const last = rows[Math.min(rows.length, limit) - 1];
    return rows.length > limit && last ? { lines, next: Number(last.id) } : { lines };
  }

  /** Every stored signal, ordered by key (tests and diagnostics). */
  async signals(): Promise<StoredSignal[]> {
    return this.rows("SELECT * FROM signals ORDER BY key").map(signalFromRow);
  }

  /** The persisted state row, or null before the first write (tests and diagnostics). */
  async state(): Promise<TargetState | null> {
    return this.readState();
  }

  // --- Break-glass: the two-person rule (design §3a); storage and judgement in slack/break-glass.ts ---

  /** The break-glass requests a second operator could confirm now (the status page's list). */
  async openBreakGlass(): Promise<BreakGlassRequest[]> {
    const now = this.now();
    const epoch = this.readState()?.machine.epoch ?? 0;
    return openBreakGlassRows(this.sql, epoch, now).map((r) => ({
      id: r.nonce,
      command: r.command,
      requester: r.requester,
      reason: r.reason,
      expiresAt: iso(r.createdAt + BREAK_GLASS_TTL_MS),
    }));
  }

  /**
   * Records a forced command awaiting a second person (from Slack or the API); answers the epoch
   * and phase it was made at, and when it expires.
   */
  async requestBreakGlass(
    name: string,
    input: BreakGlassRequestInput,
  ): Promise<{ epoch: number; phase: string; activeSide: Side; expiresAt: string }> {
    const req = BreakGlassRequestInputSchema.parse(input);
    const now = this.now();
    const { at, effects } = this.transact(() => {
      const state = this.loadState(name, now);
      const m = state.machine;
      insertBreakGlass(this.sql, req, { epoch: m.epoch, phase: m.phase, now });
      const detail = { command: req.command, requester: req.requester, reason: req.reason, nonce: req.nonce };
      const seq = this.appendEvent(state, now, "breakglass.requested", { ...detail, epoch: m.epoch, phase: m.phase });
      this.saveState(state);
      const requested: Effect[] = [
        { type: "audit", event: { seq, at: now, type: "breakglass.requested", detail: { ...detail } } },
      ];
      if (req.via === "api") {
        // Slack requests post their own message with buttons; a request from the API is announced
        // here, so that the second person hears of it.
        requested.push({
          type: "notify",
          kind: "approval",
          text: `${name}: BREAK-GLASS requested by ${req.requester}: forced ${req.command} (${req.reason || "no reason given"}); a different operator confirms it before ${iso(now + BREAK_GLASS_TTL_MS)}`,
        });
      }
      return {
        at: {
          epoch: m.epoch,
          phase: m.phase,
          activeSide: m.activeSide,
          expiresAt: iso(now + BREAK_GLASS_TTL_MS),
        },
        effects: [...state.configEffects, ...requested],
      };
    });
    this.perform(effects);
    return at;
  }

  /**
   * One approval (Slack button or API `confirm`) or cancel of a break-glass request. The checks
   * (pending, not the requester, not expired, epoch unchanged) and the forced command run in ONE
   * transaction, so a double click or two confirmations race to at most one execution.
   */
  async resolveBreakGlass(name: string, input: BreakGlassClick): Promise<BreakGlassOutcome & { view: TargetView }> {
    const click = BreakGlassClickSchema.parse(input);
    const now = this.now();
    const { outcome, effects } = this.transact(() => {
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
        this.appendEvent(state, now, "breakglass.cancelled", { ...who, by: click.actor });
        resolveBreakGlassRow(this.sql, row.nonce, "cancelled", click.actor, now, null);
        outcome = { outcome: "cancelled", command: row.command, requester: row.requester };
      } else {
        const { row } = verdict;
        const who = { command: row.command, requester: row.requester, nonce: row.nonce };
        this.appendEvent(state, now, "breakglass.approved", { ...who, approver: click.actor });
        const reason = breakGlassReason(row, click.actor);
        const d = inputCore(
          this.store,
          state,
          {
            type: "command",
            command: row.command,
            force: true,
            actor: click.actor,
            onBehalfOf: row.requester,
            reason,
          },
          now,
        );
        effects.push(...d.effects);
        const status = d.rejected === undefined ? "executed" : "rejected";
        resolveBreakGlassRow(this.sql, row.nonce, status, click.actor, now, d.rejected ?? null);
        outcome =
          d.rejected === undefined
            ? {
                outcome: "executed",
                command: row.command,
                requester: row.requester,
                ...(d.warnings ? { warnings: d.warnings } : {}),
              }
            : { outcome: "rejected", command: row.command, requester: row.requester, reason: d.rejected };
      }
      this.saveState(state);
      return { outcome, effects };
    });
    this.perform(effects);
    return { ...outcome, view: await this.view(name, { events: false }) };
  }

  // -------------------------------------------------------------------------------------------

  /**
   * Runs `fn` in one storage transaction with the store's write buffer flushed before commit. A
   * failure rolls the transaction back, and this instance forgets what it cached of it.
   */
  private transact<T>(fn: () => T): T {
    this.store.begin();
    try {
      return this.ctx.storage.transactionSync(() => {
        const out = fn();
        this.store.flush();
        // Queued in the same transaction as the events it sends: committed together, or not at all.
        const written = this.store.takeWritten();
        const now = this.now();
        // Also with no event: a page that expires (a break-glass request nobody answered) is due.
        const state = written.length > 0 || this.outbox.due(now) ? this.readState() : null;
        if (state) this.outbox.capture(state.target, written, state.machine, now);
        // Readiness lost and regained, drift and back (design §11.4): the engine's events, paged here.
        if (state) for (const page of readinessPages(state.target, written)) this.outbox.page(state.target, page);
        return out;
      });
    } catch (err) {
      this.store.invalidate();
      this.cached = null;
      this.outbox.forget();
      throw err;
    }
  }

  /** Loads the state, applies one core call and persists it in one transaction; returns the effects. */
  private run(
    name: string,
    now: number,
    call: (state: LoadedState, now: number) => CoreOutcome,
  ): { effects: Effect[]; rejected?: string; warnings?: string[] } {
    return this.transact(() => {
      const state = this.loadState(name, now);
      const out = call(state, now);
      this.saveState(state);
      return {
        effects: [...state.configEffects, ...out.effects],
        ...(out.rejected !== undefined ? { rejected: out.rejected } : {}),
        ...(out.warnings !== undefined ? { warnings: out.warnings } : {}),
      };
    });
  }

  /**
   * Retention (design §4), at most hourly and in bounded batches: resolved signals older
   * than `retention.resolvedSignalDays`, events and recordings beyond `retention.eventsPerTarget`.
   */
  private prune(state: LoadedState, now: number): void {
    if (now - state.lastPrunedAt < PRUNE_EVERY_MS) return;
    state.lastPrunedAt = now;
    const loaded = this.config();
    const retention = loaded.ok ? loaded.value.retention : { resolvedSignalDays: 7, eventsPerTarget: 10_000 };
    const before = now - retention.resolvedSignalDays * 86_400_000;
    this.sql.exec(
      "DELETE FROM signals WHERE key IN (SELECT key FROM signals WHERE status = 'resolved' AND last_seen < ? LIMIT ?)",
      before,
      PRUNE_BATCH,
    );
    // Resolved rows went without the store: it must not answer for them from memory.
    this.store.forgetResolved();
    const keepFrom = state.machine.seq - retention.eventsPerTarget;
    if (keepFrom > 0) this.sql.exec("DELETE FROM events WHERE seq <= ?", keepFrom);
    const lastRecording = Number(this.rows("SELECT MAX(id) AS id FROM recordings")[0]?.id ?? 0);
    if (lastRecording > retention.eventsPerTarget) {
      this.sql.exec("DELETE FROM recordings WHERE id <= ?", lastRecording - retention.eventsPerTarget);
    }
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
        case "setTimer": {
          // One alarm for the machine and the outbox: the earlier of the two.
          const outboxAt = this.outbox.nextAt();
          const at = effect.at === null ? outboxAt : outboxAt === null ? effect.at : Math.min(effect.at, outboxAt);
          // Only a changed alarm time costs a storage call (issue 19: most ingests keep it).
          if (at === this.alarmAt) break;
          this.alarmAt = at;
          if (at === null) void this.ctx.storage.deleteAlarm();
          else void this.ctx.storage.setAlarm(at);
          break;
        }
        case "notify": {
          if (stored === undefined) stored = this.readState();
          const target = stored?.target ?? "target";
          // Every notification is also a log line, so a deployment without Slack still shows it.
          console.log(
            JSON.stringify({ level: "info", msg: "notification", target, kind: effect.kind, text: effect.text }),
          );
          const context = stored ? notificationContext(stored.machine) : undefined;
          this.enqueueNotice({
            target,
            text: effect.text,
            kind: effect.kind,
            ...(effect.step === undefined ? {} : { step: effect.step }),
            ...(effect.key ? { key: effect.key } : {}),
            ...(context ? { context, closesIncident: i === lastNotice && settles(context) } : {}),
          });
          break;
        }
        case "dispatch":
          this.track(this.deliver(effect.request));
          break;
        case "probe":
          if (stored === undefined) stored = this.readState();
          this.track(this.probe(stored?.target ?? "", effect.agent));
          break;
        case "audit":
          break;
      }
    }
    // After the commit, and never awaited by the caller: a pager that is down delays no decision.
    this.outbox.kick();
    // A decision without a timer (a break-glass request) may still have queued a page that expires.
    const outboxAt = this.outbox.nextAt();
    if (outboxAt !== null) void this.armAtMost(outboxAt);
  }

  /** Lowers the alarm to `at` if it is set later (or not at all); never raises it past a machine deadline. */
  private async armAtMost(at: number): Promise<void> {
    const current = this.alarmAt === undefined ? await this.ctx.storage.getAlarm() : this.alarmAt;
    // perform() may have armed it while getAlarm was answered; its value is the newer one.
    const known = this.alarmAt === undefined ? current : this.alarmAt;
    if (known !== null && known <= at) {
      this.alarmAt = known;
      return;
    }
    this.alarmAt = at;
    await this.ctx.storage.setAlarm(at);
  }

  /** Appends one shell event in its own transaction (the outbox's `notify.failed` / `notify.dropped`). */
  private auditShell(target: string, type: string, detail: Json): void {
    const now = this.now();
    const effects = this.transact(() => {
      const state = this.loadState(target, now);
      this.appendEvent(state, now, type, detail);
      this.saveState(state);
      return state.configEffects;
    });
    if (effects.length > 0) this.perform(effects);
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
    const result: ShellInput = attempt.ok
      ? { type: "dispatch-result", actionId: request.id, ok: true, detail: attempt.detail }
      : {
          type: "dispatch-result",
          actionId: request.id,
          ok: false,
          error: attempt.error,
          ...(attempt.final ? { final: true } : {}),
          ...(attempt.code ? { code: attempt.code } : {}),
          ...(attempt.retryAfterSeconds === undefined ? {} : { retryAfterMs: attempt.retryAfterSeconds * 1000 }),
        };
    const { effects } = this.run(request.target, this.now(), (state, now) => inputCore(this.store, state, result, now));
    this.perform(effects);
    if (attempt.ok && attempt.report && attempt.report.status !== "running") {
      const report = attempt.report;
      const fed = this.run(request.target, this.now(), (state, now) =>
        inputCore(this.store, state, { type: "report", report }, now),
      );
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

  /**
   * Rule 17: asks a silent agent once, with a signed `GET <agent>/healthz`, before the failover is
   * blocked on its silence. An answer counts as heard, here and in the agent's own object.
   */
  private async probe(target: string, agent: string): Promise<void> {
    const now = this.now();
    let ok: boolean;
    try {
      const prober = TargetObject.testing?.prober;
      if (prober) ok = await prober(agent);
      else {
        const loaded = this.config();
        ok = loaded.ok ? await probeAgent(this.env, loaded.value, agent, now) : false;
      }
    } catch {
      ok = false;
    }
    const input: ShellInput = { type: "probe-result", agent, ok };
    const { effects } = this.run(target, this.now(), (state, at) => inputCore(this.store, state, input, at));
    this.perform(effects);
    if (ok) await this.env.AGENTS.getByName(agent).heard(agent, now, "probe");
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

  /** The configuration in force (a test's, else TURNOUT_CONFIG or the bundled one). */
  private config(): LoadedConfig {
    const testing = TargetObject.testing?.config;
    return testing ? { ok: true, value: testing(), source: "TURNOUT_CONFIG" } : loadConfig(this.env);
  }

  /** The target's configuration; undefined when it is not in a valid config (rule 15). */
  private targetConfig(name: string, loaded: LoadedConfig = this.config()): WorkerTarget | undefined {
    return loaded.ok && Object.hasOwn(loaded.value.targets, name) ? loaded.value.targets[name] : undefined;
  }

  private readState(): TargetState | null {
    // This instance is the row's only writer (one instance per object, saveState its one write, a
    // failed transaction drops the cache): what it cached is what is stored, with no read.
    if (this.cached) return this.cached.state;
    const row = this.rows("SELECT json FROM state WHERE id = 1")[0];
    if (!row) return null;
    const json = String(row.json);
    const raw = JSON.parse(json) as { machine?: { version?: number } };
    // Our own row at the current version: no re-validation on the hot path (issue: CPU per
    // ingest). Older rows are upgraded and validated once.
    const state =
      raw.machine?.version === 3 && "routedWith" in raw
        ? (raw as unknown as TargetState)
        : TargetStateSchema.parse(raw);
    this.cached = { state, configKey: undefined };
    return state;
  }

  /**
   * The state to decide on: the stored row, or a fresh one for a first-seen target, brought in line
   * with the configuration first (config edits, removal, matcher changes are audited inputs).
   */
  private loadState(name: string, now: number): LoadedState {
    const existing = this.readState();
    const loaded = this.config();
    const target = this.targetConfig(name, loaded);
    const base: TargetState = existing ?? { ...newCoreState(name, target, DEFAULT_TARGET), lastPrunedAt: now };
    // The loaded config is cached per isolate by its text, so its identity is its fingerprint: a
    // cached state already brought in line with it needs no comparison again.
    const configKey = loaded.ok ? loaded.value : undefined;
    const state: LoadedState = { ...base, configEffects: [], configChanged: false, configKey };
    const inLine = existing !== null && configKey !== undefined && this.cached?.configKey === configKey;
    // A loaded config that is invalid is no reason to act as if the target were removed.
    if (existing && !inLine && (target || loaded.ok)) {
      const out = applyConfig(this.store, state, target, now);
      state.configEffects = out.effects.filter((e) => e.type !== "setTimer");
      state.configChanged = out.changed;
    }
    return state;
  }

  private saveState(state: LoadedState): void {
    const { configEffects: _, configChanged: _c, configKey, ...row } = state;
    const json = JSON.stringify(row);
    this.sql.exec(
      "INSERT INTO state (id, json) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET json = excluded.json",
      json,
    );
    this.cached = { state: row, configKey };
    this.watchAgents(row.machine.sideAgents);
  }

  /** The agents last asked to watch (once per wake and per change): their silence counts from then. */
  private watched = "";

  /** Makes each side's agent object watch it, so its alarm notices silence with no request at all. */
  private watchAgents(agents: { primary: string; secondary: string }): void {
    const key = `${agents.primary} ${agents.secondary}`;
    if (key === this.watched || !this.env.AGENTS) return;
    this.watched = key;
    for (const name of new Set([agents.primary, agents.secondary])) {
      this.track(
        this.env.AGENTS.getByName(name)
          .watch(name)
          .then(() => undefined),
      );
    }
  }

  /** Appends a shell event (break-glass) with the next seq of the machine's counter. */
  private appendEvent(state: LoadedState, at: number, type: string, detail: Json): number {
    state.machine.seq += 1;
    this.insertEvent(state.machine.seq, at, type, detail, null);
    return state.machine.seq;
  }

  private insertEvent(seq: number, at: number, type: string, detail: unknown, cause: number | null): void {
    this.store.noteWritten({
      seq,
      at,
      type,
      detail: detail as Record<string, Json>,
      ...(cause === null ? {} : { cause }),
    });
    this.sql.exec(
      "INSERT INTO events (seq, at, type, detail, cause) VALUES (?, ?, ?, ?, ?)",
      seq,
      at,
      type,
      JSON.stringify(detail),
      cause,
    );
  }
}

/** `readiness.intervalSeconds` of the worker config in ms (its default while the config is invalid). */
function readinessIntervalMs(loaded: LoadedConfig): number {
  return (loaded.ok ? loaded.value.readiness.intervalSeconds : 300) * 1000;
}

/** Each side's agent with the mode the config expects of it (`agents.<name>.mode`, design §11.6). */
function sideAgentsOf(names: Record<Side, string>, loaded: LoadedConfig): Record<Side, SideAgent> {
  const agents = loaded.ok ? agentsOf(loaded.value) : {};
  const of = (name: string): SideAgent => ({
    name,
    expectedMode: (Object.hasOwn(agents, name) ? agents[name]?.mode : undefined) ?? "cluster",
  });
  return { primary: of(names.primary), secondary: of(names.secondary) };
}

type LoadedState = TargetState & {
  configEffects: Effect[];
  /** Whether bringing the state in line with the config changed it (it is saved then). */
  configChanged: boolean;
  /** The config it is in line with (see loadState). */
  configKey: object | undefined;
};

/** A cheap shape check of a batch from our own front worker (the HTTP route validated its body). */
function checkBatch(input: IngestBatch): IngestBatch & { warnings: NonNullable<IngestBatch["warnings"]> } {
  const ok =
    typeof input === "object" &&
    input !== null &&
    typeof input.target === "string" &&
    Number.isInteger(input.receivedAt) &&
    Array.isArray(input.deliveries) &&
    input.deliveries.every(
      (d) =>
        (d.side === "primary" || d.side === "secondary") &&
        typeof d.signal?.key === "string" &&
        typeof d.signal.at === "number" &&
        typeof d.signal.labels === "object",
    ) &&
    (input.warnings === undefined || Array.isArray(input.warnings));
  if (!ok) throw new TypeError("TargetObject.ingest: malformed batch");
  return { ...input, warnings: input.warnings ?? [] };
}

type Rows = (query: string, ...args: SqlStorageValue[]) => Record<string, SqlStorageValue>[];

/** Whether `next` differs from `before` only in being seen later (a duplicate: design §4). */
function onlySeenAgain(before: StoredSignal, next: StoredSignal): boolean {
  return (
    next.staleSince === null &&
    before.source === next.source &&
    before.side === next.side &&
    before.status === next.status &&
    before.soft === next.soft &&
    before.at === next.at &&
    before.incident === next.incident &&
    // mergeSignal keeps these objects when they do not change, so identity is the cheap test.
    before.labels === next.labels &&
    before.annotations === next.annotations &&
    before.notices === next.notices &&
    before.receivedAt === next.receivedAt &&
    before.firstSeen === next.firstSeen
  );
}

/**
 * Whether a signal's new version leaves every column an index reads (key, side, status) and the
 * identity columns as they were (source, soft, held): then an UPDATE of the other columns, which
 * touches no index, is the whole write.
 */
function sameIndexedColumns(before: StoredSignal, next: StoredSignal): boolean {
  return (
    before.source === next.source &&
    before.side === next.side &&
    before.status === next.status &&
    before.soft === next.soft &&
    isHeld(before.notices) === isHeld(next.notices)
  );
}

/** Each `signals` column and its value from a signal, in table order. */
const SIGNAL_FIELDS: readonly (readonly [string, (s: StoredSignal) => SqlStorageValue])[] = [
  ["key", (s) => s.key],
  ["source", (s) => s.source],
  ["side", (s) => s.side],
  ["status", (s) => s.status],
  ["soft", (s) => (s.soft ? 1 : 0)],
  ["at", (s) => s.at],
  ["incident", (s) => s.incident],
  ["labels", (s) => JSON.stringify(s.labels)],
  ["annotations", (s) => JSON.stringify(s.annotations)],
  ["notices", (s) => JSON.stringify(s.notices)],
  ["received_at", (s) => s.receivedAt],
  ["first_seen", (s) => s.firstSeen],
  ["last_seen", (s) => s.lastSeen],
  ["stale_since", (s) => s.staleSince],
  ["held", (s) => (isHeld(s.notices) ? 1 : 0)],
];
/** The columns no index reads and {@link sameIndexedColumns} leaves free to change. */
const SIGNAL_REFRESH_FIELDS = SIGNAL_FIELDS.filter(
  ([c]) => !["key", "source", "side", "status", "soft", "held"].includes(c),
);

/** One signal as the values of a `signals` row, in {@link SIGNAL_COLUMNS} order. */
function signalValues(s: StoredSignal): SqlStorageValue[] {
  return SIGNAL_FIELDS.map(([, value]) => value(s));
}

/** The columns {@link SIGNAL_REFRESH_ONE} writes, then the key. */
function refreshValues(s: StoredSignal): SqlStorageValue[] {
  return [...SIGNAL_REFRESH_FIELDS.map(([, value]) => value(s)), s.key];
}

const SIGNAL_REFRESH_ONE = `UPDATE signals SET ${SIGNAL_REFRESH_FIELDS.map(([c]) => `${c} = ?`).join(", ")} WHERE key = ?`;
const SIGNAL_REFRESH_BATCH = `UPDATE signals SET ${SIGNAL_REFRESH_FIELDS.map(([c], i) => `${c} = j.value->>${i}`).join(", ")}
  FROM json_each(?) AS j WHERE signals.key = j.value->>${SIGNAL_REFRESH_FIELDS.length}`;

const SIGNAL_COLUMNS = SIGNAL_FIELDS.map(([c]) => c).join(", ");
const SIGNAL_UPSERT = `ON CONFLICT (key) DO UPDATE SET ${SIGNAL_FIELDS.filter(([c]) => c !== "key")
  .map(([c]) => `${c} = excluded.${c}`)
  .join(", ")}`;
/** `value->>0, value->>1, …`: the columns of one JSON array element of `json_each`. */
const jsonColumns = (n: number) => Array.from({ length: n }, (_, i) => `value->>${i}`).join(", ");
const SIGNAL_COLUMN_COUNT = SIGNAL_FIELDS.length;
// Built once, not per write: the single-row upsert and the batch upsert from a JSON array of rows
// (`WHERE true` tells SQLite's parser the upsert is not a join).
const SIGNAL_INSERT_ONE = `INSERT INTO signals (${SIGNAL_COLUMNS}) VALUES (${Array(SIGNAL_COLUMN_COUNT).fill("?").join(", ")}) ${SIGNAL_UPSERT}`;
const SIGNAL_INSERT_BATCH = `INSERT INTO signals (${SIGNAL_COLUMNS}) SELECT ${jsonColumns(SIGNAL_COLUMN_COUNT)} FROM json_each(?) WHERE true ${SIGNAL_UPSERT}`;

/**
 * What observing reads past the store's memory bound: the per-side, per-source aggregate of firing
 * HARD signals (its rows carry a NULL `incident`), then the distinct fresh incidents per side, both from the
 * firing rows of `signals_by_status`. Parameters: the fresh bound, twice.
 */
const OBSERVATION = `SELECT side, source, held, MAX(last_seen) AS newest, MIN(last_seen) AS oldest,
       MIN(CASE WHEN last_seen > ? THEN last_seen END) AS fresh_oldest, NULL AS incident
  FROM signals WHERE status = 'firing' AND soft = 0 GROUP BY side, source, held
UNION ALL
SELECT DISTINCT side, NULL, NULL, NULL, NULL, NULL, incident
  FROM signals WHERE status = 'firing' AND soft = 0 AND last_seen > ?`;

/**
 * Past this many firing signals the store stops keeping them in memory and observes through
 * SQLite's aggregates instead (a storm of node alerts must not grow an object's memory unbounded).
 */
const FIRING_IN_MEMORY_MAX = 5000;
const firingInMemoryMax = () => TargetObject.testing?.firingInMemoryMax ?? FIRING_IN_MEMORY_MAX;
/** Stored versions of keys kept between transactions; past it the memory starts over. */
const KNOWN_MAX = 10_000;

/**
 * The core's {@link TargetStore} over the object's SQLite tables, for ONE transaction at a time.
 * Writes are buffered and flushed in as few statements as the batch needs (one upsert of the
 * changed signals, one update of the duplicates' `last_seen`, one insert of the events), always
 * before a read that depends on them and before the transaction commits ({@link flush}).
 *
 * What it read or wrote stays in memory between transactions, since this object is its tables'
 * only writer: the stored version of each key, and every firing signal, from which it observes the
 * sides with the engine's own {@link observe} and no statement (design §4: observing never reads
 * every stored row per input; here it reads none). A failed transaction drops all of it
 * ({@link invalidate}); rows that change outside the store are forgotten by whoever changes them
 * ({@link forgetResolved}). Past {@link FIRING_IN_MEMORY_MAX} firing signals it observes from
 * SQLite's per-side aggregates and indexes instead, as it did before.
 */
class SqlTargetStore implements TargetStore {
  private readonly sql: SqlStorage;
  private readonly rows: Rows;
  /** The stored version of each key read or written (null: no row), committed or in this transaction. */
  private readonly known = new Map<string, StoredSignal | null>();
  private readonly pending = new Map<string, StoredSignal>();
  /** Every firing signal by key, as stored; null until read (or while over the bound). */
  private firing: Map<string, StoredSignal> | null = null;
  /** The firing signals outgrew memory: observe through SQLite until the next {@link invalidate}. */
  private firingOverflow = false;
  private events: MachineAuditEvent[] = [];
  /** Every event written in this transaction, for the outbox (webhooks get every audit event). */
  private written: MachineAuditEvent[] = [];

  constructor(sql: SqlStorage, rows: Rows) {
    this.sql = sql;
    this.rows = rows;
  }

  /** Starts a transaction: forgets its buffers, keeps what is known of the committed rows. */
  begin(): void {
    this.pending.clear();
    this.events = [];
    this.written = [];
    if (this.known.size > KNOWN_MAX) this.known.clear();
  }

  /** After a failed transaction: nothing in memory can be trusted to match the tables. */
  invalidate(): void {
    this.begin();
    this.known.clear();
    this.firing = null;
    this.firingOverflow = false;
  }

  /** Retention deleted resolved rows behind the store's back: forget the resolved versions it knows. */
  forgetResolved(): void {
    for (const [key, s] of this.known) if (s?.status === "resolved") this.known.delete(key);
  }

  /** The firing signals in memory, read once; undefined while they are too many to hold. */
  private firingInMemory(): Map<string, StoredSignal> | undefined {
    if (this.firing) return this.firing;
    if (this.firingOverflow) return undefined;
    const rows = this.rows("SELECT * FROM signals WHERE status = 'firing'");
    if (rows.length > firingInMemoryMax()) {
      this.firingOverflow = true;
      return undefined;
    }
    this.firing = new Map(rows.map((r) => [String(r.key), signalFromRow(r)]));
    return this.firing;
  }

  /** Keeps the firing signals in memory in step with a write. */
  private noteFiring(s: StoredSignal): void {
    const firing = this.firing;
    if (!firing) return;
    if (s.status === "firing") firing.set(s.key, s);
    else firing.delete(s.key);
    if (firing.size > firingInMemoryMax()) {
      this.firing = null;
      this.firingOverflow = true;
    }
  }

  /** Records an event the shell wrote itself. */
  noteWritten(event: MachineAuditEvent): void {
    this.written.push(event);
  }

  /** The events written in this transaction, in seq order; forgets them. */
  takeWritten(): MachineAuditEvent[] {
    const out = this.written.sort((a, b) => a.seq - b.seq);
    this.written = [];
    return out;
  }

  signal(key: string): StoredSignal | undefined {
    const pending = this.pending.get(key);
    if (pending) return pending;
    const known = this.known.get(key);
    if (known !== undefined) return known ?? undefined;
    const row = this.rows("SELECT * FROM signals WHERE key = ?", key)[0];
    const stored = row ? signalFromRow(row) : null;
    this.known.set(key, stored);
    return stored ?? undefined;
  }

  preload(keys: readonly string[]): void {
    const missing = [...new Set(keys)].filter((k) => !this.known.has(k) && !this.pending.has(k));
    if (missing.length < 2) return;
    for (const k of missing) this.known.set(k, null);
    for (const row of this.rows(
      "SELECT * FROM signals WHERE key IN (SELECT value FROM json_each(?))",
      JSON.stringify(missing),
    )) {
      const s = signalFromRow(row);
      this.known.set(s.key, s);
    }
  }

  putSignal(signal: StoredSignal): void {
    this.pending.set(signal.key, signal);
  }

  appendEvent(event: MachineAuditEvent): void {
    this.events.push(event);
  }

  /** Writes the buffered signals and events. */
  flush(): void {
    if (this.pending.size > 0) {
      const full: StoredSignal[] = [];
      const refreshed: StoredSignal[] = [];
      const seen: [string, number][] = [];
      for (const s of this.pending.values()) {
        const before = this.known.get(s.key);
        if (before && onlySeenAgain(before, s)) seen.push([s.key, s.lastSeen]);
        else if (before && sameIndexedColumns(before, s)) refreshed.push(s);
        else full.push(s);
        this.known.set(s.key, s);
        this.noteFiring(s);
      }
      this.pending.clear();
      this.writeSignals(full);
      this.refreshSignals(refreshed);
      this.touchSignals(seen);
    }
    if (this.events.length > 0) {
      const events = this.events;
      this.events = [];
      this.writeEvents(events);
    }
  }

  firingSignals(): StoredSignal[] {
    this.flush();
    const firing = this.firingInMemory();
    if (firing) return [...firing.values()];
    return this.rows("SELECT * FROM signals WHERE status = 'firing'").map(signalFromRow);
  }

  observation(now: number, staleAfterMs: number): Observation & { staleAt: number | null } {
    this.flush();
    const firing = this.firingInMemory();
    if (firing) return observe(firing.values(), now, staleAfterMs);
    return this.aggregateObservation(now, staleAfterMs);
  }

  /** {@link observation} from SQLite's per-side aggregates (more firing signals than memory holds). */
  private aggregateObservation(now: number, staleAfterMs: number): Observation & { staleAt: number | null } {
    // Fresh means last_seen > fresh (design §4: `staleAfterMs` 0 never goes stale).
    const fresh = staleAfterMs > 0 ? now - staleAfterMs : Number.MIN_SAFE_INTEGER;
    // One statement for both: a statement's fixed cost is a large part of a small batch's.
    const groups: Record<string, SqlStorageValue>[] = [];
    const incidents: Record<string, SqlStorageValue>[] = [];
    for (const row of this.rows(OBSERVATION, fresh, fresh)) (row.incident === null ? groups : incidents).push(row);
    let staleAt: number | null = null;
    const side = (name: Side): SideObservation => {
      const firing = new Set<string>();
      const held = new Set<string>();
      const stale = new Set<string>();
      for (const g of groups) {
        if (g.side !== name) continue;
        const source = String(g.source);
        if (Number(g.newest) > fresh) (g.held === 1 ? held : firing).add(source);
        if (Number(g.oldest) <= fresh) stale.add(source);
        if (staleAfterMs > 0 && g.fresh_oldest !== null) {
          staleAt = Math.min(staleAt ?? Number.POSITIVE_INFINITY, Number(g.fresh_oldest) + staleAfterMs);
        }
      }
      return {
        firingSources: [...firing].sort(),
        heldSources: [...held].sort(),
        staleSources: [...stale].filter((x) => !firing.has(x) && !held.has(x)).sort(),
        incidents: incidents
          .filter((r) => r.side === name)
          .map((r) => String(r.incident))
          .sort(),
      };
    };
    const primary = side("primary");
    const secondary = side("secondary");
    return { primary, secondary, staleAt };
  }

  goingStale(now: number, staleAfterMs: number): StoredSignal[] {
    this.flush();
    const firing = this.firingInMemory();
    if (firing) return goingStale(firing.values(), now, staleAfterMs);
    return this.rows(
      `SELECT * FROM signals WHERE status = 'firing' AND soft = 0 AND last_seen <= ? AND stale_since IS NULL
        ORDER BY last_seen, key`,
      now - staleAfterMs,
    ).map(signalFromRow);
  }

  nextStaleAt(now: number, staleAfterMs: number): number | null {
    this.flush();
    const firing = this.firingInMemory();
    if (firing) return observe(firing.values(), now, staleAfterMs).staleAt;
    const row = this.rows(
      "SELECT MIN(last_seen) AS t FROM signals WHERE status = 'firing' AND soft = 0 AND last_seen > ?",
      now - staleAfterMs,
    )[0];
    return row?.t === null || row?.t === undefined ? null : Number(row.t) + staleAfterMs;
  }

  private writeSignals(signals: readonly StoredSignal[]): void {
    if (signals.length === 0) return;
    const [one] = signals;
    if (signals.length === 1 && one) {
      this.sql.exec(SIGNAL_INSERT_ONE, ...signalValues(one));
      return;
    }
    // One statement for the batch.
    this.sql.exec(SIGNAL_INSERT_BATCH, JSON.stringify(signals.map(signalValues)));
  }

  /** Rewrites every column but those the indexes read, which are unchanged (see {@link sameIndexedColumns}). */
  private refreshSignals(signals: readonly StoredSignal[]): void {
    if (signals.length === 0) return;
    const [one] = signals;
    if (signals.length === 1 && one) {
      this.sql.exec(SIGNAL_REFRESH_ONE, ...refreshValues(one));
      return;
    }
    this.sql.exec(SIGNAL_REFRESH_BATCH, JSON.stringify(signals.map(refreshValues)));
  }

  private touchSignals(seen: readonly [string, number][]): void {
    if (seen.length === 0) return;
    const [one] = seen;
    if (seen.length === 1 && one) {
      this.sql.exec("UPDATE signals SET last_seen = ?, stale_since = NULL WHERE key = ?", one[1], one[0]);
      return;
    }
    this.sql.exec(
      `UPDATE signals SET last_seen = j.value->>1, stale_since = NULL
         FROM json_each(?) AS j WHERE signals.key = j.value->>0`,
      JSON.stringify(seen),
    );
  }

  private writeEvents(events: readonly MachineAuditEvent[]): void {
    this.written.push(...events);
    const values = (e: MachineAuditEvent): SqlStorageValue[] => [
      e.seq,
      e.at,
      e.type,
      JSON.stringify(e.detail),
      e.cause ?? null,
    ];
    // A batch's few events as bound rows (no JSON array to build and for SQLite to parse again);
    // a long run of them, from one JSON array.
    if (events.length <= EVENT_ROWS_MAX) {
      this.sql.exec(eventInsert(events.length), ...events.flatMap(values));
      return;
    }
    this.sql.exec(
      `INSERT INTO events (seq, at, type, detail, cause) SELECT ${jsonColumns(5)} FROM json_each(?)`,
      JSON.stringify(events.map(values)),
    );
  }
}

/** Up to this many events are inserted as bound rows, one statement text per count. */
const EVENT_ROWS_MAX = 8;
const EVENT_INSERTS = Array.from(
  { length: EVENT_ROWS_MAX + 1 },
  (_, n) => `INSERT INTO events (seq, at, type, detail, cause) VALUES ${Array(n).fill("(?, ?, ?, ?, ?)").join(", ")}`,
);
const eventInsert = (n: number): string => EVENT_INSERTS[n] ?? "";
