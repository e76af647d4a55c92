/**
 * The ONE place the simulator calls the worker's decision code: one target's signals, machine
 * state and audit log kept in memory, fed the same inputs in the same way as the Durable Object
 * (worker/target-object.ts). Everything else under worker/simulate/ talks to this class only, so
 * the DO's per-input logic moving into a shared pure module is a change to this file alone.
 *
 * Mirrors TargetObject today:
 * - `ingest` = TargetObject.ingest: warnings become events, each delivery is merged with
 *   `mergeSignal` (stale ones ignored, duplicates only move `lastSeen`), each accepted one is
 *   audited as `signal.<status>` / `signal.notice`, then `observe` + `decide(observed)` with the
 *   last signal event as cause;
 * - `timer` = TargetObject.alarm; `report` = TargetObject.report; `dispatchResult` = the result
 *   TargetObject.deliver feeds back after a delivery.
 */
import type { WorkerTarget } from "../../shared/config.ts";
import type { ActionReport } from "../../shared/protocol.ts";
import { decide, type Effect, initialState, type MachineInput, type MachineState } from "../machine.ts";
import type { AuditEvent } from "../machine-types.ts";
import {
  type IngestBatch,
  IngestBatchSchema,
  type IngestResult,
  isHeld,
  type Json,
  mergeSignal,
  observe,
  type StoredSignal,
  sameVersion,
} from "../signals.ts";

export type { Effect, MachineState } from "../machine.ts";
export type { AuditEvent } from "../machine-types.ts";

/** What one input did: the audit events written (shell's and machine's, in seq order) and the effects. */
export interface Step {
  events: AuditEvent[];
  effects: Effect[];
}

/** What a stored signal looked like before a delivery replaced it (for the simulator's statistics). */
export interface SignalChange {
  before: StoredSignal | undefined;
  after: StoredSignal;
}

const iso = (ms: number) => new Date(ms).toISOString();

/** One target replayed in memory: signal store, machine state and audit log. */
export class ReplayTarget {
  readonly name: string;
  machine: MachineState;
  private readonly signals = new Map<string, StoredSignal>();
  /** Signal changes of the last `ingest` (accepted ones only). */
  lastChanges: SignalChange[] = [];

  constructor(name: string, target: Pick<WorkerTarget, "policy" | "initialActiveSide" | "drill">) {
    this.name = name;
    this.machine = initialState(name, target);
  }

  /** One webhook's deliveries for this target (TargetObject.ingest). */
  ingest(input: IngestBatch, now: number): Step & { result: IngestResult } {
    const batch = IngestBatchSchema.parse(input);
    const events: AuditEvent[] = [];
    const result: IngestResult = { accepted: 0, duplicates: 0, ignored: 0 };
    this.lastChanges = [];
    let causeSeq: number | null = null;
    for (const warning of batch.warnings) {
      this.appendEvent(events, batch.receivedAt, warning.type, warning.detail as Record<string, Json>, null);
    }
    for (const delivery of batch.deliveries) {
      const stored = this.signals.get(delivery.signal.key);
      const { outcome, next } = mergeSignal(stored, delivery, batch.receivedAt);
      if (outcome === "stale") {
        result.ignored += 1;
        continue;
      }
      this.signals.set(next.key, next);
      if (outcome === "duplicate") {
        result.duplicates += 1;
        continue;
      }
      result.accepted += 1;
      this.lastChanges.push({ before: stored, after: next });
      const s = delivery.signal;
      const type = stored && sameVersion(stored, next) ? "signal.notice" : `signal.${next.status}`;
      causeSeq = this.appendEvent(
        events,
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
          ...(s.notice ? { notice: s.notice as unknown as Json } : {}),
        },
        null,
      );
    }
    const effects: Effect[] = [];
    if (causeSeq !== null) {
      const o = observe([...this.signals.values()]);
      const input: MachineInput = {
        type: "observed",
        sides: {
          primary: { firingSources: o.primary.firingSources, heldSources: o.primary.heldSources },
          secondary: { firingSources: o.secondary.firingSources, heldSources: o.secondary.heldSources },
        },
        cause: causeSeq,
      };
      const step = this.step(input, now);
      events.push(...step.events);
      effects.push(...step.effects);
    }
    return { events, effects, result };
  }

  /** The alarm fired (TargetObject.alarm). */
  timer(now: number): Step {
    return this.step({ type: "timer" }, now);
  }

  /** An agent report (TargetObject.report). */
  report(report: ActionReport, now: number): Step {
    return this.step({ type: "report", report }, now);
  }

  /** The outcome of delivering a dispatch (TargetObject.deliver). */
  dispatchResult(actionId: string, ok: boolean, now: number): Step {
    return this.step({ type: "dispatch-result", actionId, ok }, now);
  }

  /** The stored signal of a key, if any (statistics only). */
  signal(key: string): StoredSignal | undefined {
    return this.signals.get(key);
  }

  private step(input: MachineInput, now: number): Step {
    const d = decide(this.machine, input, now);
    this.machine = d.state;
    const events: AuditEvent[] = [];
    for (const e of d.effects) if (e.type === "audit") events.push(e.event);
    return { events, effects: d.effects };
  }

  /** A shell event with the next seq of the machine's counter (TargetObject.appendEvent). */
  private appendEvent(
    events: AuditEvent[],
    at: number,
    type: string,
    detail: Record<string, Json>,
    cause: number | null,
  ): number {
    this.machine = { ...this.machine, seq: this.machine.seq + 1 };
    const seq = this.machine.seq;
    events.push({ seq, at, type, detail, ...(cause === null ? {} : { cause }) });
    return seq;
  }
}
