/**
 * Pure predicates of the §5 rules over a {@link MachineState}: health, the daily budget, flapping,
 * the failover blockers and the auto-failback readiness. Shared by {@link decide} and
 * {@link nextDeadline} so the timer the shell arms always matches what the machine waits for.
 */
import { otherSide, type Policy, type Side } from "../../shared/config.ts";
import type { Blocker, MachineHealth, MachineState, SideState } from "./machine-types.ts";

export const DAY_MS = 24 * 60 * 60 * 1000;
const sec = (s: number) => s * 1000;

/**
 * Rule 1: down at `quorum` distinct sources (held ones included), up when nothing fires. Stale
 * signals (§4) are no down evidence, but a side firing only stale signals is not known to
 * be up either: `unknown`, never a failover destination.
 */
export function healthOf(
  firing: readonly string[],
  held: readonly string[],
  quorum: number,
  stale: readonly string[] = [],
): MachineHealth {
  const all = new Set([...firing, ...held]);
  if (all.size >= quorum) return "down";
  return all.size === 0 && stale.length === 0 ? "up" : "unknown";
}

/** Rule 14: how long a side that was down must be up before it is a failover destination. */
export function riseMs(policy: Policy): number {
  return sec(policy.riseSeconds ?? policy.holdSeconds);
}

/** Rule 14: when the other side, up now, has been up for `riseSeconds` (null: not up; ≤ now: risen). */
export function risenAt(side: SideState, policy: Policy): number | null {
  if (side.health !== "up") return null;
  // upSince is null for a side that has been up since turnout first saw the target.
  return side.upSince === null ? 0 : side.upSince + riseMs(policy);
}

/**
 * Rule 10: whether a failover dismissal still covers the active side's incidents. It lapses when
 * the side stops being down, and stops covering as soon as a new incident fires.
 */
export function dismissalCovers(state: MachineState): boolean {
  const d = state.dismissed;
  if (d === null || d.kind !== "failover") return false;
  const active = state.sides[state.activeSide];
  return active.incidents.every((i) => d.incidents.includes(i));
}

/** Whether the side is down by non-held sources alone: only this triggers automatic action. */
export function autoDown(side: SideState, policy: Policy): boolean {
  return side.firingSources.length >= policy.quorum;
}

/** The automatic actions that still count against the rolling 24 h budget at `now`. */
export function budgetUsed(state: MachineState, now: number): number[] {
  return state.autoActions.filter((t) => t > now - DAY_MS);
}

/** When the budget frees a slot again (null: not spent; Infinity: a zero budget never frees). */
export function budgetReleaseAt(state: MachineState, now: number): number | null {
  const max = state.policy.maxAutoActionsPerDay;
  const used = budgetUsed(state, now).sort((a, b) => a - b);
  if (used.length < max) return null;
  if (max === 0) return Number.POSITIVE_INFINITY;
  // The slot frees when the oldest of the `max` newest actions leaves the window.
  const oldest = used[used.length - max] ?? now;
  return oldest + DAY_MS;
}

/** When a latched flap releases: a whole window after the active side's last change. */
export function flapReleaseAt(state: MachineState): number | null {
  if (!state.flapping) return null;
  return (state.lastActiveTransitionAt ?? 0) + sec(state.policy.flap.windowSeconds);
}

export function inCooldown(state: MachineState, now: number): boolean {
  return state.cooldownUntil !== null && state.cooldownUntil > now;
}

/** Rule 17: whether the agent of `side` is silent, as last heard of (an agent never reported silent is heard). */
export function agentSilent(state: MachineState, side: Side): boolean {
  return state.agentLiveness[state.sideAgents[side]]?.silent === true;
}

/**
 * Design §11.6: whether an action toward `side` would go to another agent while the last action's
 * agent has not said it is over (that agent may still be switching traffic).
 */
export function agentUnfinished(state: MachineState, side: Side): boolean {
  const a = state.action;
  return a !== null && !a.settledByAgent && a.agent !== state.sideAgents[side];
}

/** How long the object waits for the probe of a silent agent (rule 17) before it blocks. */
export const PROBE_WAIT_MS = 15_000;

/**
 * Rule 3: why an automatic failover of the active side cannot start now (null: it can). Rule 2
 * first, because "both sides down" is what people must hear about.
 */
export function failoverBlocker(state: MachineState, now: number): Blocker | null {
  const otherName = otherSide(state.activeSide);
  const other = state.sides[otherName];
  if (other.health === "down") return "both-sides-down";
  if (other.health !== "up") {
    const onlyStale = other.firingSources.length + other.heldSources.length === 0 && other.staleSources.length > 0;
    return onlyStale ? "other-side-stale" : "other-side-not-up";
  }
  if ((risenAt(other, state.policy) ?? 0) > now) return "other-side-rising";
  if (agentSilent(state, otherName)) return "agent-silent";
  if (agentUnfinished(state, otherName)) return "agent-unfinished";
  // Design §11.3: what the destination's readiness was when the hold started, not now (the
  // failing source may by now disturb what the agent can read); unknown never blocks.
  if (state.policy.requireReady && state.holdReadiness?.state === "not-ready") return "not-ready";
  if (state.paused) return "paused";
  if (state.flapping) return "flapping";
  if (inCooldown(state, now)) return "cooldown";
  if (budgetReleaseAt(state, now) !== null) return "budget";
  return null;
}

/**
 * Rule 6 (auto failback): the time the failback to the home side may start, or null when it waits
 * for an input (policy manual, not failed over, home side not up, paused, dismissed, busy) rather
 * than for time. A result ≤ now means "now".
 */
export function failbackReadyAt(state: MachineState, now: number): number | null {
  // Design §11.6: a plan step still owed waits for its report, an input, not for time.
  if ((state.owed ?? []).length > 0) return null;
  return failbackReadyIgnoringOwed(state, now);
}

/** {@link failbackReadyAt} as if no plan step were owed: when the failback would go but for them. */
export function failbackReadyIgnoringOwed(state: MachineState, now: number): number | null {
  const home = state.sides[state.homeSide];
  if (state.policy.failback !== "auto" || state.phase !== "steady" || state.drill !== null) return null;
  if (state.activeSide === state.homeSide || home.health !== "up") return null;
  if (state.paused || state.dismissed?.kind === "failback" || !state.configured) return null;
  // Rule 17 and §11.6: never automatically into a silent agent, nor to another agent mid-action;
  // the agent's liveness is an input, so its return re-decides at once.
  if (agentSilent(state, state.homeSide) || agentUnfinished(state, state.homeSide)) return null;
  // Never switch to a side that is down; never auto-switch away from a side that is itself down
  // (that is the failover path with its hold).
  if (autoDown(state.sides[state.activeSide], state.policy)) return null;
  const budget = budgetReleaseAt(state, now);
  if (budget === Number.POSITIVE_INFINITY) return null;
  // upSince is null for a side that has been up since turnout first saw the target (no signal
  // ever fired on it): it has been up for longer than any failbackAfterSeconds.
  return Math.max(
    home.upSince === null ? 0 : home.upSince + sec(state.policy.failbackAfterSeconds),
    state.cooldownUntil ?? 0,
    flapReleaseAt(state) ?? 0,
    budget ?? 0,
  );
}

/** Whether a real signal fires anywhere: a drill must hand control back to normal policy. */
export function anySignal(state: MachineState): boolean {
  const { primary, secondary } = state.sides;
  return [primary, secondary].some((s) => s.firingSources.length > 0 || s.heldSources.length > 0);
}

/**
 * The earliest moment anything in `state` falls due, or null. The shell arms its single alarm
 * at this time; {@link decide} emits it as the `setTimer` effect of every call.
 */
export function nextDeadline(state: MachineState, now: number): number | null {
  // Rule 15: a target missing from the config takes no action, so nothing falls due.
  if (!state.configured) return null;
  const at: number[] = [];
  const p = state.policy;
  if (state.phase === "pending" && state.pendingSince !== null) {
    const holdEnd = state.pendingSince + sec(p.holdSeconds);
    if (holdEnd > now) at.push(holdEnd);
    else if (state.probe?.answered === null && state.probe.at + PROBE_WAIT_MS > now) {
      // Rule 17: the probe's wait; past it, the failover is blocked.
      at.push(state.probe.at + PROBE_WAIT_MS);
    } else if (state.blocked === "budget") {
      const release = budgetReleaseAt(state, now);
      if (release !== null && Number.isFinite(release)) at.push(release);
    } else if (state.blocked === "other-side-rising") {
      const risen = risenAt(state.sides[otherSide(state.activeSide)], p);
      if (risen !== null && risen > now) at.push(risen);
    }
  }
  if (state.phase === "awaiting_approval" && state.approval) at.push(state.approval.deadline);
  if (state.phase === "executing" && state.action?.deadline != null) at.push(state.action.deadline);
  const flap = flapReleaseAt(state);
  if (flap !== null) at.push(flap);
  if (state.cooldownUntil !== null && state.cooldownUntil > now) at.push(state.cooldownUntil);
  if (state.drill?.stage === "holding" && state.drill.holdUntil !== null) at.push(state.drill.holdUntil);
  const failback = failbackReadyAt(state, now);
  if (failback !== null) at.push(failback);
  // With steps owed, the moment the failback would have gone is when the view starts to say it waits.
  const withoutOwed = (state.owed ?? []).length > 0 ? failbackReadyIgnoringOwed(state, now) : null;
  if (withoutOwed !== null && withoutOwed > now) at.push(withoutOwed);
  return at.length === 0 ? null : Math.min(...at);
}

/** The longest wait between deliveries, whatever the receiver's Retry-After asks for. */
export const MAX_DELIVERY_BACKOFF_MS = 300_000;

/**
 * Retry delay after the n-th consecutive failed delivery (n ≥ 1): 5 s × 2^(n−1), or longer when
 * the receiver's Retry-After asked for it, capped at 5 min.
 */
export function deliveryBackoffMs(failures: number, retryAfterMs = 0): number {
  return Math.min(Math.max(5_000 * 2 ** Math.max(0, failures - 1), retryAfterMs), MAX_DELIVERY_BACKOFF_MS);
}
