/**
 * The ONE place the simulator calls the worker's per-target code: worker/target/target-core.ts, the same
 * pure module the Durable Object (worker/target/target-object.ts) runs every input through, here over an
 * in-memory {@link TargetStore} instead of SQLite. Everything else under worker/simulate/ talks to
 * this class only.
 *
 * Mirrors TargetObject:
 * - `ingest` = TargetObject.ingest → target-core `ingest` (dedupe, ordering, clock skew, audit,
 *   observe with staleness, decide);
 * - `timer` = TargetObject.alarm → target-core `alarm`;
 * - `report` / `dispatchResult` = TargetObject.report / the result TargetObject.deliver feeds back
 *   → target-core `input`;
 * - `agentLiveness` / `probeResult` = TargetObject.agentLiveness / the answer TargetObject.probe
 *   feeds back → target-core `input` (rule 17).
 * A fresh target starts from `newCoreState` with its configuration, as TargetObject.loadState
 * does; the simulator never changes the configuration mid-run, so `applyConfig` has nothing to do.
 */
import type { Side, WorkerTarget } from "../../shared/config.ts";
import type { ActionReport } from "../../shared/protocol.ts";
import type { Effect, MachineState } from "../engine/machine.ts";
import type { AuditEvent } from "../engine/machine-types.ts";
import type { IngestBatch, IngestResult, StoredSignal } from "../engine/signals.ts";
import {
  alarm as alarmCore,
  type CoreOutcome,
  type CoreState,
  ingest as ingestCore,
  input as inputCore,
  newCoreState,
  type TargetStore,
} from "../target/target-core.ts";

export type { Effect, MachineState } from "../engine/machine.ts";
export type { AuditEvent } from "../engine/machine-types.ts";

/** What one input did: the audit events written (shell's and machine's, in seq order) and the effects. */
export interface Step {
  events: AuditEvent[];
  effects: Effect[];
}

/** A stored signal before and after one write (for the simulator's statistics). */
export interface SignalChange {
  before: StoredSignal | undefined;
  after: StoredSignal;
}

/** How the simulated agent's deliveries read in `action.delivered` (a live one names its transport). */
export const SIMULATED_DELIVERY = "delivered to the simulated agent";

/** The configuration a replayed target runs with. */
export type ReplayConfig = Pick<WorkerTarget, "policy" | "initialActiveSide" | "drill" | "sides">;

/** SQLite's `signals` table of one object, as a Map; firing keys kept apart for `firingSignals`. */
class MemoryStore implements TargetStore {
  private readonly all = new Map<string, StoredSignal>();
  private readonly firing = new Map<string, StoredSignal>();
  changes: SignalChange[] = [];

  signal(key: string): StoredSignal | undefined {
    return this.all.get(key);
  }

  putSignal(signal: StoredSignal): void {
    this.changes.push({ before: this.all.get(signal.key), after: signal });
    this.all.set(signal.key, signal);
    if (signal.status === "firing") this.firing.set(signal.key, signal);
    else this.firing.delete(signal.key);
  }

  firingSignals(): StoredSignal[] {
    return [...this.firing.values()];
  }

  appendEvent(): void {
    // Audit events come back as `audit` effects of the same call; the simulator reads them there.
  }
}

function stepOf(out: CoreOutcome): Step {
  const events: AuditEvent[] = [];
  for (const e of out.effects) if (e.type === "audit") events.push(e.event);
  return { events, effects: out.effects };
}

/** One target replayed in memory: signal store, core state and audit events. */
export class ReplayTarget {
  readonly name: string;
  private readonly store = new MemoryStore();
  private readonly state: CoreState;

  constructor(name: string, config: ReplayConfig) {
    this.name = name;
    this.state = newCoreState(name, config, config);
  }

  /** The decision engine's current state. */
  get machine(): MachineState {
    return this.state.machine;
  }

  /** Stored-signal writes of the last call (statistics only). */
  get lastChanges(): readonly SignalChange[] {
    return this.store.changes;
  }

  /** One webhook's deliveries for this target (TargetObject.ingest). */
  ingest(batch: IngestBatch, now: number): Step & { result: IngestResult } {
    // No IngestBatchSchema.parse as in TargetObject.ingest: that guards an RPC boundary, and these
    // batches come straight from the worker's own parsers and routing (engine.ts `prepare`).
    this.store.changes = [];
    const out = ingestCore(this.store, this.state, batch.deliveries, batch.warnings ?? [], batch.receivedAt, now);
    return { ...stepOf(out), result: out.result };
  }

  /** The alarm fired (TargetObject.alarm). */
  timer(now: number): Step {
    this.store.changes = [];
    return stepOf(alarmCore(this.store, this.state, now));
  }

  /** An agent report (TargetObject.report). */
  report(report: ActionReport, now: number): Step {
    this.store.changes = [];
    return stepOf(inputCore(this.store, this.state, { type: "report", report }, now));
  }

  /** A readiness evaluation toward `side` (TargetObject.readiness), at `now`, known until `validUntil`. */
  readiness(side: Side, state: "ready" | "not-ready", validUntil: number, now: number): Step {
    this.store.changes = [];
    const failing = state === "ready" ? [] : ["simulated"];
    const input = { type: "readiness" as const, side, state, at: now, validUntil, failing };
    return stepOf(inputCore(this.store, this.state, input, now));
  }

  /** An agent went silent or was heard again (TargetObject.agentLiveness, told by the agent's object). */
  agentLiveness(agent: string, silent: boolean, at: number, lastHeardAt: number | null, now: number): Step {
    this.store.changes = [];
    return stepOf(inputCore(this.store, this.state, { type: "agent", agent, silent, at, lastHeardAt }, now));
  }

  /** The answer to a `probe` effect (TargetObject.probe). */
  probeResult(agent: string, ok: boolean, now: number): Step {
    this.store.changes = [];
    return stepOf(inputCore(this.store, this.state, { type: "probe-result", agent, ok }, now));
  }

  /** The outcome of delivering a dispatch (TargetObject.deliver). */
  dispatchResult(actionId: string, ok: boolean, now: number): Step {
    this.store.changes = [];
    const result = ok ? { ok, detail: SIMULATED_DELIVERY } : { ok };
    return stepOf(inputCore(this.store, this.state, { type: "dispatch-result", actionId, ...result }, now));
  }
}
