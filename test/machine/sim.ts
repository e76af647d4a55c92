/**
 * A tiny deterministic shell around `decide` for tests: it keeps state and a clock, arms the one
 * timer the machine asks for, and fires it when simulated time passes it (no sleeping).
 */

import type { z } from "zod";
import { type DrillSchema, PolicySchema, type Side } from "../../shared/config.ts";
import type { ActionReport, ActionRequest } from "../../shared/protocol.ts";
import { decide, initialState } from "../../worker/engine/machine.ts";
import type { AuditEvent, Decision, Effect, MachineInput, MachineState } from "../../worker/engine/machine-types.ts";

export const T0 = Date.UTC(2026, 10, 22, 10, 0, 0);
export const TARGET = "egress-gw";

export type PolicyInput = z.input<typeof PolicySchema>;

export interface SimOptions {
  policy?: PolicyInput;
  initialActiveSide?: Side;
  /**
   * Feed `dispatch-result ok` after every dispatch, as the Durable Object does once the agent
   * answered (default true). False leaves delivery results to the test (rule 16 tests).
   */
  autoDeliver?: boolean;
  drill?: z.input<typeof DrillSchema>;
}

export function makeState(opts: SimOptions = {}): MachineState {
  return initialState(TARGET, {
    policy: PolicySchema.parse(opts.policy ?? {}),
    initialActiveSide: opts.initialActiveSide ?? "primary",
    ...(opts.drill ? { drill: { mode: "dry-run", holdSeconds: 60, ...opts.drill } } : {}),
  });
}

export type Sources = { primary?: string[]; secondary?: string[]; heldPrimary?: string[]; heldSecondary?: string[] };

export class Sim {
  state: MachineState;
  now = T0;
  timer: number | null = null;
  events: AuditEvent[] = [];
  dispatches: ActionRequest[] = [];
  notes: string[] = [];
  last: Decision | undefined;
  private signalSeq = 0;

  private readonly autoDeliver: boolean;

  constructor(opts: SimOptions = {}) {
    this.state = makeState(opts);
    this.autoDeliver = opts.autoDeliver ?? true;
  }

  /** Feeds one input at the current time and records every effect (and, by default, delivery results). */
  feed(input: MachineInput): Decision {
    const d = decide(this.state, input, this.now);
    this.state = d.state;
    this.last = d;
    for (const e of d.effects) this.record(e);
    if (this.autoDeliver) {
      for (const e of d.effects) {
        if (e.type !== "dispatch") continue;
        const r = decide(this.state, { type: "dispatch-result", actionId: e.request.id, ok: true }, this.now);
        this.state = r.state;
        for (const x of r.effects) this.record(x);
      }
    }
    return d;
  }

  private record(e: Effect): void {
    if (e.type === "audit") this.events.push(e.event);
    if (e.type === "dispatch") this.dispatches.push(e.request);
    if (e.type === "notify") this.notes.push(e.text);
    if (e.type === "setTimer") this.timer = e.at;
  }

  /** Moves the clock forward, firing the armed alarm at each due time on the way. */
  advance(seconds: number): this {
    const until = this.now + seconds * 1000;
    while (this.timer !== null && this.timer <= until) {
      this.now = Math.max(this.now, this.timer);
      this.feed({ type: "timer" });
    }
    this.now = until;
    return this;
  }

  /** The shell's part of a signal: an audit event of its own, then `observed` with it as cause. */
  observe(src: Sources): Decision {
    this.state = { ...this.state, seq: this.state.seq + 1 };
    this.signalSeq = this.state.seq;
    this.events.push({ seq: this.signalSeq, at: this.now, type: "signal.received", detail: { ...src } });
    return this.feed({
      type: "observed",
      sides: {
        primary: { firingSources: src.primary ?? [], heldSources: src.heldPrimary ?? [] },
        secondary: { firingSources: src.secondary ?? [], heldSources: src.heldSecondary ?? [] },
      },
      cause: this.signalSeq,
    });
  }

  command(
    command: Extract<MachineInput, { type: "command" }>["command"],
    extra: Partial<Extract<MachineInput, { type: "command" }>> = {},
  ): Decision {
    return this.feed({ type: "command", command, ...extra });
  }

  report(status: ActionReport["status"], over: Partial<ActionReport> = {}): Decision {
    const a = this.state.action;
    return this.feed({
      type: "report",
      report: {
        actionId: a?.id ?? `${TARGET}:99`,
        target: TARGET,
        status,
        dryRun: a?.dryRun ?? false,
        steps: [],
        at: new Date(this.now).toISOString(),
        ...over,
      },
    });
  }

  delivered(ok = true, error?: string, more: { final?: boolean; retryAfterMs?: number } = {}): Decision {
    return this.feed({
      type: "dispatch-result",
      actionId: this.state.action?.id,
      ok,
      ...(error ? { error } : {}),
      ...more,
    });
  }

  /** Distinct action ids dispatched so far (re-dispatches of one id count once). */
  ids(): string[] {
    return [...new Set(this.dispatches.map((d) => d.id))];
  }

  types(): string[] {
    return this.events.map((e) => e.type);
  }
}
