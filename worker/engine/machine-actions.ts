/**
 * Actions (design §5 rules 5, 9, 11, 13, 16): starting one, delivering it, its deadlines, the
 * agent's reports, and the drills built from actions.
 */
import type { Side } from "../../shared/config.ts";
import { type ActionKind, type ActionReport, type ActionRequest, stepDurationMs } from "../../shared/protocol.ts";
import { audit, type Ctx, type Detail, type Json, notify, sec, setPhase } from "./machine-ctx.ts";
import { failingText, readinessAt } from "./machine-readiness.ts";
import { budgetUsed, deliveryBackoffMs } from "./machine-rules.ts";
import type { ActionState, DrillSwitch, MachineState, ParsedMachineInput, Trigger } from "./machine-types.ts";
import { noteOwed } from "./owed-steps.ts";

/** Rule 16: a committed dispatch with no delivery result recorded this long after is sent again. */
export const DELIVERY_CONFIRM_MS = 15_000;

/** What to start: the fields of an action that the caller decides. */
export interface ActionSpec {
  kind: ActionKind;
  from: Side;
  to: Side;
  dryRun: boolean;
  force: boolean;
  trigger: Trigger;
  reason: string;
  actor?: string | undefined;
  /** The agent to run it; default: the agent of `to` (a revert names the undone action's agent). */
  agent?: string | undefined;
  /** Audit-only context of the command that started it (e.g. `revertOf`, `onBehalfOf`). */
  extra?: Detail;
}

function requestOf(s: MachineState, a: ActionState): ActionRequest {
  return {
    id: a.id,
    target: s.target,
    kind: a.kind,
    from: a.from,
    to: a.to,
    dryRun: a.dryRun,
    force: a.force,
    // ActionRequestSchema caps reasons at 2000 characters; composed reasons can exceed it.
    reason: a.reason.slice(0, 2000),
    issuedAt: new Date(a.issuedAt).toISOString(),
    agent: a.agent,
  };
}

/** Arms the deadlines of a send: delivery confirmation (rule 16) first, the report timeout behind it. */
function armSend(ctx: Ctx, a: ActionState): void {
  const timeout = ctx.now + sec(ctx.s.policy.actionTimeoutSeconds);
  a.timeoutAt = timeout;
  a.deadline = Math.min(ctx.now + DELIVERY_CONFIRM_MS, timeout);
  a.deadlineKind = "delivery";
}

/** Rule 5: a new action with id `<target>:<epoch>`, dispatched at once; phase `executing`. */
export function startAction(ctx: Ctx, spec: ActionSpec, cause: number | undefined): ActionState | null {
  const s = ctx.s;
  // Rule 15: a target missing from the config never dispatches.
  if (!s.configured) return null;
  s.epoch += 1;
  const id = `${s.target}:${s.epoch}`;
  const agent = spec.agent ?? s.sideAgents[spec.to];
  const silent = s.agentLiveness[agent]?.silent === true;
  if (silent) {
    // Rule 17 with rule 7: only a command reaches here with a silent agent; it goes, with a warning.
    ctx.warnings.push(`agent ${agent} (${spec.to}) is silent; the action is dispatched to it anyway`);
  }
  const readiness = readinessAt(s, spec.to, ctx.now);
  if (readiness.state === "not-ready" && !spec.dryRun && spec.trigger === "manual") {
    // Rule 7: a manual command passes the policy (requireReady included); the person hears why it may fail.
    ctx.warnings.push(
      `${spec.to} is not ready (${failingText(readiness.failing)} failing); the action is dispatched anyway`,
    );
  }
  const phaseSeq = setPhase(ctx, "executing", `${spec.kind} ${id} to ${spec.to}: ${spec.reason}`, cause);
  // The audited detail and the action state start from the same fields.
  const fields = {
    id,
    kind: spec.kind,
    from: spec.from,
    to: spec.to,
    dryRun: spec.dryRun,
    force: spec.force,
    trigger: spec.trigger,
    reason: spec.reason,
    ...(spec.actor === undefined ? {} : { actor: spec.actor }),
    agent,
  };
  const seq = audit(
    ctx,
    "action.dispatched",
    { ...fields, ...(silent ? { agentSilent: true } : {}), ...(spec.extra ?? {}) },
    phaseSeq,
  );
  const action: ActionState = {
    ...fields,
    status: "dispatching",
    issuedAt: ctx.now,
    dispatchedAt: ctx.now,
    finishedAt: null,
    attempts: 1,
    deliveryFailures: 0,
    redispatches: 0,
    deadline: null,
    deadlineKind: null,
    timeoutAt: null,
    steps: [],
    cause: seq,
    settledByAgent: false,
  };
  armSend(ctx, action);
  s.action = action;
  if (spec.trigger === "automatic" || spec.trigger === "approved") {
    s.autoActions = [...budgetUsed(s, ctx.now), ctx.now];
  }
  ctx.effects.push({ type: "dispatch", request: requestOf(s, action) });
  const how = spec.dryRun ? "dry run of " : "";
  notify(
    ctx,
    "action",
    `${how}${spec.kind} ${spec.from} → ${spec.to} dispatched as ${id} (${spec.trigger}: ${spec.reason})`,
  );
  return action;
}

/** Sends the current action's request again (same id: the agent is idempotent). */
function resend(ctx: Ctx, a: ActionState): void {
  a.attempts += 1;
  // Until the agent reports again we only know we sent it; delivery failures count again.
  a.status = "dispatching";
  armSend(ctx, a);
  ctx.effects.push({ type: "dispatch", request: requestOf(ctx.s, a) });
}

/** The shell tried to deliver a dispatch: confirm it, or schedule the next attempt (rule 5). */
export function dispatchResult(ctx: Ctx, r: Extract<ParsedMachineInput, { type: "dispatch-result" }>): void {
  const s = ctx.s;
  const a = s.action;
  // A result for an action that is no longer in flight changes nothing.
  if (s.phase !== "executing" || a === null || a.status !== "dispatching") return;
  if (r.actionId !== undefined && r.actionId !== a.id) return;
  if (r.ok) {
    const firstResult = a.deadlineKind === "delivery";
    if (!firstResult && a.deliveryFailures === 0) return;
    // Rule 16: delivered; from now on only the report timeout is due.
    if (firstResult) {
      a.deadline = a.timeoutAt;
      a.deadlineKind = "timeout";
    }
    a.deliveryFailures = 0;
    audit(
      ctx,
      "action.delivered",
      { id: a.id, attempts: a.attempts, ...(r.detail === undefined ? {} : { detail: r.detail }) },
      a.cause,
    );
    return;
  }
  if (r.code === "wrong-agent") {
    // Design §11.1: the agent at that URL is another one; it runs nothing, and no retry can help.
    a.settledByAgent = true;
    failAction(
      ctx,
      { code: "wrong-agent", message: r.error ?? "the agent refused an action addressed to another name" },
      a.cause,
    );
    return;
  }
  deliveryFailed(ctx, a, r.error ?? "delivery failed", r.final ?? false, r.retryAfterMs);
}

function deliveryFailed(ctx: Ctx, a: ActionState, error: string, final: boolean, retryAfterMs?: number): void {
  const s = ctx.s;
  a.deliveryFailures += 1;
  if (final) {
    failAction(ctx, { code: "dispatch-failed", message: error }, a.cause);
    return;
  }
  if (a.deliveryFailures > s.policy.dispatchRetries) {
    failAction(
      ctx,
      { code: "dispatch-failed", message: `${a.deliveryFailures} deliveries failed; last: ${error}` },
      a.cause,
    );
    return;
  }
  const delay = deliveryBackoffMs(a.deliveryFailures, retryAfterMs);
  a.deadline = ctx.now + delay;
  a.deadlineKind = "retry";
  audit(
    ctx,
    "action.delivery-failed",
    {
      id: a.id,
      error,
      failures: a.deliveryFailures,
      retryInMs: delay,
      retriesLeft: s.policy.dispatchRetries - a.deliveryFailures + 1,
    },
    a.cause,
  );
}

/** The action's deadline fell due: confirm delivery, deliver again after backoff, or re-dispatch after a timeout. */
export function actionDeadline(ctx: Ctx, a: ActionState): void {
  const s = ctx.s;
  if (a.deadlineKind === "delivery") {
    // Rule 16: committed, but no delivery result was ever recorded (the object was evicted or
    // redeployed mid-fetch). Send it again now rather than after actionTimeoutSeconds; it counts
    // as a failed delivery so that a delivery that never completes still ends.
    a.deliveryFailures += 1;
    if (a.deliveryFailures > s.policy.dispatchRetries) {
      failAction(
        ctx,
        { code: "dispatch-failed", message: `no delivery result after ${a.deliveryFailures} attempts` },
        a.cause,
      );
      return;
    }
    resend(ctx, a);
    audit(
      ctx,
      "action.redelivered",
      { id: a.id, attempt: a.attempts, failures: a.deliveryFailures, why: "no delivery result within 15 s" },
      a.cause,
    );
    return;
  }
  if (a.deadlineKind === "retry") {
    resend(ctx, a);
    audit(ctx, "action.redelivered", { id: a.id, attempt: a.attempts, failures: a.deliveryFailures }, a.cause);
    return;
  }
  if (a.redispatches < s.policy.dispatchRetries) {
    a.redispatches += 1;
    resend(ctx, a);
    audit(
      ctx,
      "action.redispatched",
      { id: a.id, redispatches: a.redispatches, afterSeconds: s.policy.actionTimeoutSeconds },
      a.cause,
    );
    return;
  }
  failAction(
    ctx,
    {
      code: "action-timeout",
      message: `no report within ${s.policy.actionTimeoutSeconds} s after ${a.redispatches} re-dispatches`,
    },
    a.cause,
  );
}

function finish(a: ActionState, now: number): void {
  a.finishedAt = now;
  a.deadline = null;
  a.deadlineKind = null;
  a.timeoutAt = null;
}

/** The action failed (agent report, delivery give-up or timeout): phase `failed`, except dry runs. */
export function failAction(ctx: Ctx, error: { code: string; message: string }, cause: number): void {
  const s = ctx.s;
  const a = s.action;
  if (a === null) return;
  a.status = "failed";
  a.error = error;
  finish(a, ctx.now);
  const seq = audit(
    ctx,
    "action.failed",
    { id: a.id, kind: a.kind, to: a.to, code: error.code, message: error.message },
    cause,
  );
  notify(ctx, "action", `${a.kind} ${a.id} to ${a.to} FAILED: ${error.message}`);
  const drill = s.drill;
  if (drill) finishDrill(ctx, false, "failed", `${a.id} failed: ${error.message}`, seq, a);
  // A failed dry run is a finding, not a stuck target: it must not block real failover.
  if (a.dryRun) setPhase(ctx, "steady", `dry run ${a.id} failed`, seq);
  else
    setPhase(
      ctx,
      "failed",
      `${a.id} failed: ${error.message}; automatic action is off until retry, revert or cancel`,
      seq,
    );
}

function stepDurations(a: ActionState): DrillSwitch["steps"] {
  return a.steps.map((st) => ({
    name: st.name,
    status: st.status,
    durationMs: stepDurationMs(st),
  }));
}

/** An agent report for this target (rules 5 and 13). */
export function report(ctx: Ctx, r: ActionReport, agent?: string): void {
  const s = ctx.s;
  const a = s.action;
  const ignore = (why: string) =>
    audit(ctx, "report.ignored", { actionId: r.actionId, status: r.status, reason: why, current: a?.id ?? null });
  if (r.target !== s.target) return void ignore(`report is for target ${r.target}`);
  if (a === null || r.actionId !== a.id) {
    // An earlier action's report still settles the steps it owed (design §11.6).
    noteOwed(ctx, r, agent);
    return void ignore("not the current action (other id or old epoch)");
  }
  if (agent !== undefined && agent !== a.agent) {
    // Design §11.1: a valid key of one agent cannot report for an action dispatched to another.
    audit(ctx, "report.refused", { actionId: r.actionId, status: r.status, agent, dispatchedTo: a.agent });
    return;
  }
  if (r.dryRun !== a.dryRun) return void ignore("dryRun does not match the action");
  noteOwed(ctx, r, agent);
  if (r.status !== "running") a.settledByAgent = true;
  if (s.phase !== "executing") {
    // Rule 13: the agent's word wins. A final `succeeded` for the latest action the worker gave
    // up on (timeout, delivery) or that was failed and cancelled still tells where traffic is.
    if (r.status === "succeeded" && a.status === "failed" && !a.dryRun) {
      reconcile(ctx, a, r);
      return;
    }
    return void ignore(`action already ${a.status}`);
  }
  const before = new Map(a.steps.map((st) => [st.name, st.status]));
  a.steps = r.steps;
  if (r.status === "running") {
    // Design §11.6: a step waiting for a person is announced once, when it starts to wait (the
    // agent re-sends its running report every 60 s while it waits).
    for (const st of r.steps) {
      if (st.status !== "waiting" || before.get(st.name) === "waiting") continue;
      if (a.approvals?.some((x) => x.step === st.name)) continue;
      const until = st.approval ? ` before ${st.approval.deadline}` : "";
      audit(
        ctx,
        "approval.step-waiting",
        { id: a.id, step: st.name, message: st.approval?.message ?? "", deadline: st.approval?.deadline ?? null },
        ctx.root ?? a.cause,
      );
      notify(
        ctx,
        "approval",
        `step ${st.name} of ${a.id} waits for approval${until}: ${st.approval?.message ?? "approve to go on"}`,
        st.name,
      );
    }
    // Rule 13: a running report extends the deadline (the agent is working on it). A report
    // with a `waiting` step counts the same (design §11.6): the deadline runs from the latest
    // report, so a plan waiting for a person is never re-dispatched or failed here.
    a.status = "running";
    a.deliveryFailures = 0;
    a.timeoutAt = ctx.now + sec(s.policy.actionTimeoutSeconds);
    a.deadline = a.timeoutAt;
    a.deadlineKind = "timeout";
    audit(
      ctx,
      "action.progress",
      { id: a.id, steps: r.steps.map((st) => `${st.name}:${st.status}`) },
      ctx.root ?? a.cause,
    );
    return;
  }
  if (r.status === "failed") {
    failAction(ctx, r.error ?? { code: "agent-failed", message: "the agent reported failure" }, ctx.root ?? a.cause);
    return;
  }
  succeeded(ctx, a, r);
}

/** Where the agent says traffic now is after a successful action: its `activeSide`, else the action's `to`. */
function reportedSide(a: ActionState, r: ActionReport): Side {
  return a.dryRun ? a.from : (r.activeSide ?? a.to);
}

function succeeded(ctx: Ctx, a: ActionState, r: ActionReport): void {
  const s = ctx.s;
  a.status = "succeeded";
  finish(a, ctx.now);
  const recoveryMs = ctx.now - a.dispatchedAt;
  const detail: Detail = { id: a.id, kind: a.kind, from: a.from, to: a.to, dryRun: a.dryRun, recoveryMs };
  if (r.activeSide !== undefined && !a.dryRun && r.activeSide !== a.to) detail.reportedActiveSide = r.activeSide;
  const seq = audit(ctx, "action.succeeded", detail, ctx.root ?? a.cause);
  if (!a.dryRun) switched(ctx, a, reportedSide(a, r));
  notify(
    ctx,
    "action",
    a.dryRun
      ? `dry run ${a.id} (${a.from} → ${a.to}) succeeded in ${Math.round(recoveryMs / 1000)} s`
      : `${a.kind} ${a.id} succeeded: ${s.activeSide} is now active (${Math.round(recoveryMs / 1000)} s)`,
  );
  setPhase(ctx, "steady", `${a.id} succeeded`, seq);
  const drill = s.drill;
  if (!drill) return;
  const sw = drill.switches.find((x) => x.actionId === a.id);
  if (sw) {
    sw.finishedAt = ctx.now;
    sw.recoveryMs = recoveryMs;
    sw.ok = true;
    sw.steps = stepDurations(a);
  }
  if (drill.stage === "dry-run" || drill.stage === "failing-back") {
    finishDrill(ctx, true, "completed", `${drill.mode} drill completed`, seq);
  } else if (drill.stage === "failing-over") {
    drill.stage = "holding";
    drill.holdUntil = ctx.now + sec(s.drillConfig?.holdSeconds ?? 60);
    audit(ctx, "drill.holding", { on: s.activeSide, until: drill.holdUntil }, seq);
  }
}

/** Traffic moved to `side`: the new active side starts a clean flap history, and cooldown starts. */
function switched(ctx: Ctx, a: ActionState, side: Side): void {
  const s = ctx.s;
  s.activeSide = side;
  s.flapTransitions = [];
  s.lastActiveTransitionAt = ctx.now;
  // Drill switches are planned with both sides up: no cooldown to block a real failover after.
  if (a.trigger !== "drill") s.cooldownUntil = ctx.now + sec(s.policy.cooldownSeconds);
  // The dismissed incidents were on the side traffic just left.
  if (s.dismissed?.kind === "failover") s.dismissed = null;
}

/** Rule 13: a late `succeeded` for the latest action sets the active side to where the agent says it is. */
function reconcile(ctx: Ctx, a: ActionState, r: ActionReport): void {
  const s = ctx.s;
  const before = s.activeSide;
  const side = reportedSide(a, r);
  const previous = a.error ?? null;
  a.status = "succeeded";
  delete a.error;
  a.steps = r.steps;
  finish(a, ctx.now);
  const seq = audit(
    ctx,
    "action.reconciled",
    {
      id: a.id,
      kind: a.kind,
      activeSide: side,
      previousActiveSide: before,
      phase: s.phase,
      previousError: previous as unknown as Json,
    },
    ctx.root ?? a.cause,
  );
  switched(ctx, a, side);
  notify(
    ctx,
    "action",
    `${a.id} did succeed after all (late report): ${side} is active${side === before ? "" : ` (was recorded as ${before})`}; check the target`,
  );
  // What the machine was doing concerned the old active side; settle re-evaluates from here.
  if (s.phase !== "steady") setPhase(ctx, "steady", `${a.id} reconciled: ${side} active`, seq);
}

/** A drill's switch, recorded at dispatch. */
export function switchOf(a: ActionState): DrillSwitch {
  return {
    actionId: a.id,
    kind: a.kind,
    from: a.from,
    to: a.to,
    dispatchedAt: a.dispatchedAt,
    finishedAt: null,
    recoveryMs: null,
    ok: null,
    steps: [],
  };
}

/** Ends the drill in progress, recording its result (audited `drill.completed` or `drill.aborted`). */
export function finishDrill(
  ctx: Ctx,
  ok: boolean,
  outcome: "completed" | "failed" | "aborted",
  detail: string,
  cause: number,
  failed?: ActionState,
): void {
  const s = ctx.s;
  const d = s.drill;
  if (!d) return;
  if (failed) {
    const sw = d.switches.find((x) => x.actionId === failed.id);
    if (sw) {
      sw.ok = false;
      sw.finishedAt = ctx.now;
      sw.steps = stepDurations(failed);
    }
  }
  s.drill = null;
  s.lastDrill = {
    mode: d.mode,
    ok,
    outcome,
    startedAt: d.startedAt,
    finishedAt: ctx.now,
    switches: d.switches,
    detail,
  };
  audit(
    ctx,
    outcome === "aborted" ? "drill.aborted" : "drill.completed",
    {
      mode: d.mode,
      ok,
      outcome,
      detail,
      durationMs: ctx.now - d.startedAt,
      switches: d.switches as unknown as Json,
    },
    cause,
  );
  const times = d.switches
    .filter((x) => x.recoveryMs !== null)
    .map((x) => `${x.kind} ${Math.round((x.recoveryMs ?? 0) / 1000)} s`)
    .join(", ");
  notify(ctx, "drill", `${d.mode} drill ${outcome}${times ? ` (${times})` : ""}: ${detail}`);
}

/**
 * Drops the drill's plan. Rule 11: a dry run still in flight is abandoned as well, so the target
 * is free for the real action at once (the agent lets a real action preempt a dry run). A live
 * drill's switch in flight keeps running: it changes traffic, and its report is handled as any.
 */
export function abortDrill(ctx: Ctx, why: string, cause: number): void {
  const s = ctx.s;
  finishDrill(ctx, false, "aborted", why, cause);
  const a = s.action;
  if (s.phase === "executing" && a !== null && a.dryRun) {
    a.status = "failed";
    a.error = { code: "abandoned", message: `dry run abandoned: ${why}` };
    finish(a, ctx.now);
    audit(ctx, "action.abandoned", { id: a.id, reason: why }, cause);
    setPhase(ctx, "steady", `dry run ${a.id} abandoned: ${why}`, cause);
  }
}

/** Break-glass (rule 7): a forced switch to a down side, audited with the identity and notified. */
export function breakGlass(ctx: Ctx, actor: string | undefined, to: Side, cause: number, extra: Detail = {}): void {
  audit(ctx, "command.forced", { actor: actor ?? null, to, health: ctx.s.sides[to].health, ...extra }, cause);
  notify(ctx, "alert", `BREAK-GLASS: ${actor ?? "unknown actor"} forced a switch to ${to}, which is down`);
}
