/**
 * The transition context every part of {@link decide} writes into: a private copy of the state,
 * the time, and the effects so far. Audit events, notifications and phase changes go through the
 * helpers here so that each is written one way.
 */
import type { Effect, MachineState, NotifyKind, Phase } from "./machine-types.ts";

export type Json = string | number | boolean | null | Json[] | { [key: string]: Json };
export type Detail = Record<string, Json>;

/** Seconds to milliseconds. */
export const sec = (s: number): number => s * 1000;

/** One transition in progress: a private copy of the state plus the effects so far. */
export interface Ctx {
  s: MachineState;
  now: number;
  effects: Effect[];
  /** The default cause: the input's cause, else the first event of this transition. */
  root: number | undefined;
  /** What a command that went must tell the person (rule 17, design §11.6). */
  warnings: string[];
}

/** Appends an audit event with the next seq; the first event of a transition becomes its root cause. */
export function audit(ctx: Ctx, type: string, detail: Detail, cause?: number | null): number {
  ctx.s.seq += 1;
  const seq = ctx.s.seq;
  const c = cause ?? ctx.root;
  ctx.effects.push({
    type: "audit",
    event: { seq, at: ctx.now, type, detail, ...(c === undefined ? {} : { cause: c }) },
  });
  if (ctx.root === undefined) ctx.root = seq;
  return seq;
}

/** One short message for people, prefixed with the target's name. */
export function notify(ctx: Ctx, kind: NotifyKind, text: string, step?: string): void {
  ctx.effects.push({
    type: "notify",
    kind,
    text: `${ctx.s.target}: ${text}`,
    ...(step === undefined ? {} : { step }),
  });
}

/** Moves to `phase`, clearing what belongs to the phase left; audited and notified. */
export function setPhase(ctx: Ctx, phase: Phase, reason: string, cause?: number | null): number {
  const from = ctx.s.phase;
  ctx.s.phase = phase;
  if (phase !== "pending") {
    ctx.s.pendingSince = null;
    ctx.s.pendingCause = null;
    ctx.s.blocked = null;
    ctx.s.probe = null;
  }
  if (phase !== "awaiting_approval") ctx.s.approval = null;
  const seq = audit(ctx, "phase.changed", { from, to: phase, reason }, cause);
  notify(ctx, "phase", `${from} → ${phase}: ${reason}`);
  return seq;
}

/** " by <actor>" when an actor is known, for sentences. */
export function byActor(actor: string | undefined): string {
  return actor ? ` by ${actor}` : "";
}
