/**
 * Readiness as an input of the decision engine (design §11.3): each evaluation toward a side, with
 * its time, like a signal. Two evaluations in a row must agree before the target says anything,
 * so one flaky probe never pages; the target then says "not ready" once and "ready again" once.
 * With `policy.requireReady`, the destination's readiness at the start of a hold can block the
 * automatic failover (`not-ready`); readiness older than its `validUntil` is unknown and never
 * blocks. Drift of the active side is said the same way, and never acted on.
 */
import { otherSide, type Side } from "../../shared/config.ts";
import { audit, type Ctx } from "./machine-ctx.ts";
import type { HoldReadiness, MachineState, ParsedMachineInput, SideReadinessFact } from "./machine-types.ts";

type ReadinessInput = Extract<ParsedMachineInput, { type: "readiness" }>;

/** The notification and paging key of a target's readiness (design §11.6). */
export const readinessNoticeKey = (target: string): string => `turnout/${target}/readiness`;
/** The key of the active side's drift: its own page, so readiness coming back never closes it. */
export const driftNoticeKey = (target: string): string => `turnout/${target}/drift`;

/** The fact of `side`, if any agent reported one. */
export function readinessFact(state: MachineState, side: Side): SideReadinessFact | null {
  return state.readiness?.[side] ?? null;
}

/** The readiness of `side` at `now`: its latest evaluation, or `unknown` when none or too old. */
export function readinessAt(state: MachineState, side: Side, now: number): HoldReadiness {
  const fact = readinessFact(state, side);
  if (fact === null || now >= fact.validUntil) return { to: side, state: "unknown", failing: [] };
  return { to: side, state: fact.state, failing: fact.failing };
}

/** One evaluation: kept when newer than the stored one; what two in a row agree on is recorded. */
export function readinessInput(ctx: Ctx, input: ReadinessInput): void {
  const s = ctx.s;
  const prev = readinessFact(s, input.side);
  // A replayed or late evaluation (older than the stored one) tells nothing new.
  if (prev !== null && input.at <= prev.at) return;
  const drifted = input.drift === undefined ? null : !input.drift.ok;
  const agreed = { ...(prev?.agreed ?? { state: null, drifted: null }) };
  if (prev !== null && prev.state === input.state) agreed.state = input.state;
  if (prev !== null && drifted !== null && prev.drifted === drifted) agreed.drifted = drifted;
  const fact: SideReadinessFact = {
    state: input.state,
    at: input.at,
    validUntil: input.validUntil,
    failing: [...input.failing],
    drifted,
    driftDetail: input.drift?.detail ?? "",
    previous: prev === null ? null : { state: prev.state, drifted: prev.drifted },
    agreed,
  };
  s.readiness = { primary: null, secondary: null, ...s.readiness, [input.side]: fact };
  // A change is recorded; an evaluation that repeats the last one moves only its times (like a
  // duplicate signal's lastSeen), so the log does not grow by one event per target per interval.
  const same =
    prev !== null &&
    prev.state === fact.state &&
    prev.drifted === fact.drifted &&
    prev.failing.join("\u0000") === fact.failing.join("\u0000");
  if (!same) {
    audit(ctx, "readiness.changed", {
      side: input.side,
      state: fact.state,
      failing: fact.failing,
      ...(drifted === null ? {} : { drifted }),
      at: new Date(fact.at).toISOString(),
    });
  }
}

/** Rule of the hold's start: what the destination's readiness was then (`policy.requireReady` reads it). */
export function recordHoldReadiness(ctx: Ctx): void {
  ctx.s.holdReadiness = readinessAt(ctx.s, otherSide(ctx.s.activeSide), ctx.now);
}

/** Whether `policy.requireReady` blocks the automatic failover of the running hold. */
export function notReadyBlocks(state: MachineState): boolean {
  return state.policy.requireReady && state.phase === "pending" && state.holdReadiness?.state === "not-ready";
}

/** A short list of the failing checks for sentences: `permissions, dns-key`. */
export function failingText(failing: readonly string[]): string {
  return failing.length === 0 ? "a destination check failed" : failing.join(", ");
}

/**
 * Settle rule: announces, once each, that the failover destination is no longer ready and ready
 * again, and that the active side drifted and matches again, as two evaluations in a row agreed.
 * Runs after every input, so a switch (the destination is now the other side) is announced too.
 */
export function readinessAnnounce(ctx: Ctx): boolean {
  const s = ctx.s;
  const to = otherSide(s.activeSide);
  const fact = readinessFact(s, to);
  // Unknown (none, or too old) says nothing either way: it is shown, and waits for news.
  if (fact === null || ctx.now >= fact.validUntil) return false;
  const said = s.readinessAnnounced ?? { lost: false, drifted: false };
  let changed = false;
  if (fact.agreed.state === "not-ready" && !said.lost) {
    s.readinessAnnounced = { ...said, lost: true };
    audit(ctx, "readiness.lost", { to, failing: fact.failing, at: new Date(fact.at).toISOString() });
    ctx.effects.push({
      type: "notify",
      kind: "alert",
      key: readinessNoticeKey(s.target),
      text: `${s.target}: not ready to fail over to ${to}: ${failingText(fact.failing)} failing (two evaluations in a row)${s.policy.requireReady ? "; an automatic failover would be blocked" : ""}`,
    });
    changed = true;
  } else if (fact.agreed.state === "ready" && said.lost) {
    s.readinessAnnounced = { ...said, lost: false };
    audit(ctx, "readiness.regained", { to, at: new Date(fact.at).toISOString() });
    ctx.effects.push({
      type: "notify",
      kind: "alert",
      key: readinessNoticeKey(s.target),
      text: `${s.target}: ready again to fail over to ${to}`,
    });
    changed = true;
  }
  const now = s.readinessAnnounced ?? said;
  if (fact.agreed.drifted !== null && fact.agreed.drifted !== now.drifted) {
    s.readinessAnnounced = { ...now, drifted: fact.agreed.drifted };
    audit(ctx, "readiness.drift", { side: s.activeSide, drifted: fact.agreed.drifted, detail: fact.driftDetail });
    ctx.effects.push({
      type: "notify",
      kind: "alert",
      key: driftNoticeKey(s.target),
      text: fact.agreed.drifted
        ? `${s.target}: ${s.activeSide} (active) has drifted from its state: ${fact.driftDetail || "see the readiness report"}; shown, never acted on`
        : `${s.target}: ${s.activeSide} (active) matches its state again`,
    });
    changed = true;
  }
  return changed;
}
