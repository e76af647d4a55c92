/**
 * Settling (design §5): after every input, the rules whose condition holds at `now` are applied
 * until none does. Each rule is a named function that answers whether it changed anything; they
 * are tried in the order of {@link RULES}, from the first again after any change.
 */
import { otherSide, type Side } from "../../shared/config.ts";
import { abortDrill, actionDeadline, startAction, switchOf } from "./machine-actions.ts";
import { audit, type Ctx, notify, sec, setPhase } from "./machine-ctx.ts";
import { failingText, readinessAnnounce, recordHoldReadiness } from "./machine-readiness.ts";
import {
  anySignal,
  autoDown,
  dismissalCovers,
  failbackReadyAt,
  failbackReadyIgnoringOwed,
  failoverBlocker,
  flapReleaseAt,
  PROBE_WAIT_MS,
} from "./machine-rules.ts";
import type { Blocker } from "./machine-types.ts";
import { owedSteps } from "./owed-steps.ts";

type Rule = (ctx: Ctx) => boolean;

/** Rule 4: a latched flap releases once the active side has been stable for a whole window. */
const flapReleased: Rule = (ctx) => {
  const s = ctx.s;
  const release = flapReleaseAt(s);
  if (release === null || ctx.now < release) return false;
  s.flapping = false;
  s.flappingSince = null;
  s.flapTransitions = [];
  audit(ctx, "flapping.released", { side: s.activeSide, stableSeconds: s.policy.flap.windowSeconds }, s.flappingCause);
  s.flappingCause = null;
  notify(ctx, "alert", `${s.activeSide} stable for ${s.policy.flap.windowSeconds} s: flapping released`);
  return true;
};

/** Rule 10: a dismissal lasts for the incidents it dismissed; it lapses once they are over. */
const dismissalLapsed: Rule = (ctx) => {
  const s = ctx.s;
  const d = s.dismissed;
  if (d === null) return false;
  const lapsed =
    d.kind === "failover"
      ? !autoDown(s.sides[s.activeSide], s.policy)
      : s.sides[s.homeSide].health !== "up" || s.activeSide === s.homeSide;
  if (!lapsed) return false;
  s.dismissed = null;
  return false; // bookkeeping only: nothing else needs to re-run because of it
};

/** Rule 11 and §5b: a real signal ends a drill's plan; a dry run in flight is abandoned. */
const drillYields: Rule = (ctx) => {
  const s = ctx.s;
  const drill = s.drill;
  if (!drill || !anySignal(s)) return false;
  const cause = s.sides[s.activeSide].healthCause ?? s.sides[otherSide(s.activeSide)].healthCause ?? drill.cause;
  abortDrill(ctx, "a real signal arrived; normal policy takes over", cause);
  return true;
};

/** §5b live drills: after holding on the other side, fail back home. */
const drillHoldOver: Rule = (ctx) => {
  const s = ctx.s;
  const drill = s.drill;
  if (drill?.stage !== "holding" || drill.holdUntil === null) return false;
  if (ctx.now < drill.holdUntil || s.phase !== "steady") return false;
  const seq = audit(ctx, "drill.failing-back", { to: drill.homeSide }, drill.cause);
  const action = startAction(
    ctx,
    {
      kind: "failback",
      from: s.activeSide,
      to: drill.homeSide,
      dryRun: false,
      force: false,
      trigger: "drill",
      reason: "live drill: fail back after hold",
      actor: drill.actor,
    },
    seq,
  );
  drill.stage = "failing-back";
  drill.holdUntil = null;
  if (action) drill.switches.push(switchOf(action));
  return true;
};

/** Rule 1: the active side down (by non-held sources) starts the hold, unless dismissed (rule 10). */
const holdStarts: Rule = (ctx) => {
  const s = ctx.s;
  const active = s.sides[s.activeSide];
  if (s.phase !== "steady" || s.drill || !autoDown(active, s.policy) || dismissalCovers(s)) return false;
  if (s.dismissed?.kind === "failover") {
    // A new incident on the dismissed side: the dismissal does not cover it (rule 10).
    audit(ctx, "dismissal.superseded", { dismissed: s.dismissed.incidents, firing: active.incidents });
    s.dismissed = null;
  }
  s.blocked = null;
  const seq = setPhase(
    ctx,
    "pending",
    `${s.activeSide} down (${active.firingSources.join(", ")}); holding ${s.policy.holdSeconds} s`,
    active.healthCause,
  );
  s.pendingSince = ctx.now;
  s.pendingCause = seq;
  recordHoldReadiness(ctx);
  return true;
};

/** Rule 1: the active side recovered within the hold: back to steady, no action. */
const recoveredInHold: Rule = (ctx) => {
  const s = ctx.s;
  const active = s.sides[s.activeSide];
  if (s.phase !== "pending" || autoDown(active, s.policy)) return false;
  setPhase(ctx, "steady", `${s.activeSide} recovered within the hold; no action`, active.healthCause);
  return true;
};

/** Rules 2 and 3 (and 14's rise): the hold expired; fail over, or say once per reason why not. */
const holdExpired: Rule = (ctx) => {
  const s = ctx.s;
  if (s.phase !== "pending") return false;
  const since = s.pendingSince ?? ctx.now;
  if (ctx.now < since + sec(s.policy.holdSeconds)) return false;
  const blocker = failoverBlocker(s, ctx.now);
  if (blocker === "agent-silent" && s.blocked !== blocker) {
    // Rule 17: before blocking, ask the silent agent once (a signed GET /healthz); an answer
    // counts as heard and the failover goes at once, without a new hold.
    const agent = s.sideAgents[otherSide(s.activeSide)];
    if (s.probe?.agent !== agent) {
      s.probe = { agent, at: ctx.now, answered: null };
      audit(ctx, "agent.probed", { agent }, s.pendingCause);
      ctx.effects.push({ type: "probe", agent });
      return true;
    }
    if (s.probe.answered === null && ctx.now < s.probe.at + PROBE_WAIT_MS) return false;
  }
  if (blocker !== null) {
    if (s.blocked === blocker) return false;
    s.blocked = blocker;
    blockedAudit(ctx, blocker);
    return true;
  }
  const active = s.sides[s.activeSide];
  proposeOrStart(
    ctx,
    "failover",
    otherSide(s.activeSide),
    `${s.activeSide} down for ${Math.round((ctx.now - since) / 1000)} s (${active.firingSources.join(", ")})`,
    s.pendingCause ?? undefined,
  );
  return true;
};

/** Rule 6: auto failback once the home side has been up for `failbackAfterSeconds`. */
const failbackDue: Rule = (ctx) => {
  const s = ctx.s;
  const due = (at: number | null) => at !== null && ctx.now >= at && !s.flapping;
  const owed = owedSteps(s);
  const wouldGo = s.phase === "steady" && due(failbackReadyIgnoringOwed(s, ctx.now));
  if (owed.length > 0 && wouldGo) {
    // Design §11.6: say once that the failback waits for the owed steps; a manual failback still goes.
    if (s.blocked === "owed-steps") return false;
    s.blocked = "owed-steps";
    const steps = owed.map((o) => `${o.step} of ${o.action}`).join(", ");
    const reason = `${owed.length} plan step${owed.length === 1 ? "" : "s"} owed (${steps}); a manual failback still goes`;
    audit(ctx, "failback.blocked", { blocker: "owed-steps", reason, steps: owed.map((o) => o.step) }, s.action?.cause);
    notify(ctx, "alert", `${s.homeSide} is back, but no automatic failback: ${reason}`);
    return true;
  }
  if (s.blocked === "owed-steps" && s.phase === "steady" && (owed.length === 0 || !wouldGo)) {
    // The owed steps are done, or the failback is no longer due: nothing stands in the way to show.
    s.blocked = null;
  }
  const ready = failbackReadyAt(s, ctx.now);
  if (!due(ready)) return false;
  proposeOrStart(
    ctx,
    "failback",
    s.homeSide,
    `${s.homeSide} up for ${s.policy.failbackAfterSeconds} s (auto failback)`,
    // A home side that never had a signal has no health event: the switch away caused this.
    s.sides[s.homeSide].healthCause ?? s.action?.cause ?? undefined,
  );
  return true;
};

/** Rule 3: an approval request is withdrawn when its condition clears. */
const approvalWithdrawn: Rule = (ctx) => {
  const s = ctx.s;
  if (s.phase !== "awaiting_approval") return false;
  const ap = s.approval;
  if (ap === null) {
    setPhase(ctx, "steady", "no approval request on record");
    return true;
  }
  const stillWanted =
    ap.kind === "failover"
      ? autoDown(s.sides[s.activeSide], s.policy)
      : s.sides[s.homeSide].health === "up" && s.activeSide !== s.homeSide;
  if (stillWanted) return false;
  setPhase(ctx, "steady", `approval request for ${ap.kind} withdrawn: the condition cleared`, ap.cause);
  return true;
};

/** Rules 3 and 10: an expired approval dismisses the incidents firing at that moment. */
const approvalExpired: Rule = (ctx) => {
  const s = ctx.s;
  const ap = s.approval;
  if (s.phase !== "awaiting_approval" || ap === null || ctx.now < ap.deadline) return false;
  const seq = audit(ctx, "approval.expired", { kind: ap.kind, to: ap.to, requestedAt: ap.requestedAt }, ap.cause);
  notify(
    ctx,
    "approval",
    `approval for ${ap.kind} to ${ap.to} expired after ${s.policy.approvalTimeoutSeconds} s; no action for the incidents firing now (a new one starts a new hold)`,
  );
  s.dismissed = {
    kind: ap.kind,
    incidents: ap.kind === "failover" ? [...s.sides[s.activeSide].incidents] : [],
  };
  setPhase(ctx, "steady", "approval expired", seq);
  return true;
};

/** Rules 5 and 16: an executing action's deadline fell due (delivery confirmation, retry, timeout). */
const actionDue: Rule = (ctx) => {
  const s = ctx.s;
  if (s.phase !== "executing") return false;
  const a = s.action;
  if (a === null) {
    setPhase(ctx, "failed", "executing without an action on record");
    return true;
  }
  if (a.deadline === null || ctx.now < a.deadline) return false;
  actionDeadline(ctx, a);
  return true;
};

/**
 * The rules in the order they are tried. A target missing from the config (rule 15) runs none
 * that start anything; its deadlines wait until it returns.
 */
const RULES: readonly Rule[] = [
  flapReleased,
  dismissalLapsed,
  drillYields,
  drillHoldOver,
  holdStarts,
  failbackDue,
  recoveredInHold,
  holdExpired,
  approvalWithdrawn,
  approvalExpired,
  actionDue,
  readinessAnnounce,
];

/** Applies every rule whose condition holds at `now` until nothing changes. */
export function settle(ctx: Ctx): void {
  if (!ctx.s.configured) return;
  // Each rule makes progress in a finite lattice (phase/deadline changes); the bound only guards
  // against a bug turning into an infinite loop inside a Durable Object.
  for (let i = 0; i < 32; i++) {
    if (!RULES.some((rule) => rule(ctx))) return;
  }
}

const WHY: Record<Blocker, (ctx: Ctx, other: Side) => string> = {
  "both-sides-down": () => "both sides down",
  "other-side-not-up": (_, other) => `${other} is not up (signals below quorum)`,
  "other-side-stale": (_, other) =>
    `${other}'s only firing signals are stale, so its health is unknown; clear them if they are over`,
  "other-side-rising": (ctx, other) =>
    `${other} has been up for less than riseSeconds (${ctx.s.policy.riseSeconds ?? ctx.s.policy.holdSeconds} s)`,
  paused: () => "target is paused",
  flapping: () => "target is flapping",
  cooldown: (ctx) => `cooldown until ${new Date(ctx.s.cooldownUntil ?? 0).toISOString()}`,
  budget: (ctx) => `daily budget of ${ctx.s.policy.maxAutoActionsPerDay} automatic actions spent`,
  "agent-silent": (ctx, other) =>
    `${other}'s agent ${ctx.s.sideAgents[other]} is silent and did not answer the probe; a manual command still goes`,
  "owed-steps": (ctx) => `${owedSteps(ctx.s).length} plan step(s) still owed`,
  "not-ready": (ctx, other) =>
    `${other} was not ready when the hold started (${failingText(ctx.s.holdReadiness?.failing ?? [])} failing; policy requireReady); a manual command still goes`,
  "agent-unfinished": (ctx, other) =>
    `${ctx.s.action?.id ?? "the last action"} on agent ${ctx.s.action?.agent ?? "?"} has no final report, and ${other}'s agent is ${ctx.s.sideAgents[other]}`,
};

function blockedAudit(ctx: Ctx, blocker: Blocker): void {
  const s = ctx.s;
  const other = otherSide(s.activeSide);
  if (blocker === "both-sides-down") {
    audit(ctx, "both-sides-down", { active: s.activeSide, other }, s.sides[other].healthCause ?? s.pendingCause);
    notify(ctx, "alert", `both sides down: ${s.activeSide} and ${other}; staying on ${s.activeSide}`);
    return;
  }
  const why = WHY[blocker](ctx, other);
  audit(ctx, "failover.blocked", { blocker, reason: why }, s.pendingCause);
  notify(ctx, "alert", `${s.activeSide} down past the hold, but no automatic failover: ${why}`);
}

/** An automatic switch: request approval (policy `required`) or dispatch it. */
function proposeOrStart(
  ctx: Ctx,
  kind: "failover" | "failback",
  to: Side,
  reason: string,
  cause: number | undefined,
): void {
  const s = ctx.s;
  if (s.policy.approval === "required") {
    const seq = audit(ctx, "approval.requested", { kind, from: s.activeSide, to, reason }, cause);
    setPhase(ctx, "awaiting_approval", `${kind} to ${to} needs approval: ${reason}`, seq);
    s.approval = {
      kind,
      from: s.activeSide,
      to,
      reason,
      requestedAt: ctx.now,
      deadline: ctx.now + sec(s.policy.approvalTimeoutSeconds),
      cause: seq,
    };
    notify(
      ctx,
      "approval",
      `approve ${kind} ${s.activeSide} → ${to}? (${reason}); expires in ${s.policy.approvalTimeoutSeconds} s`,
    );
    return;
  }
  startAction(ctx, { kind, from: s.activeSide, to, dryRun: false, force: false, trigger: "automatic", reason }, cause);
}
