/**
 * Operator commands (design §3, §5 rules 7, 9, 10, 12, 14): one small handler per command. A
 * handler answers `undefined` when it applied, or the reason it was refused (HTTP 409 detail);
 * either way the command is audited.
 */
import { otherSide, type Side } from "../../shared/config.ts";
import { abortDrill, breakGlass, startAction, switchOf } from "./machine-actions.ts";
import { audit, byActor, type Ctx, type Detail, notify, setPhase } from "./machine-ctx.ts";
import { agentUnfinished, autoDown } from "./machine-rules.ts";
import type { CommandName, MachineState, ParsedMachineInput } from "./machine-types.ts";

type Command = Extract<ParsedMachineInput, { type: "command" }>;

/** What every handler gets besides the context: the command and how to accept or refuse it. */
interface Verdicts {
  c: Command;
  /** Audits `command.rejected` and returns the refusal text. */
  reject: (why: string) => string;
  /** Audits `command.accepted` and returns its seq (the cause of what follows). */
  accept: (extra?: Detail) => number;
  /** The reason to record on an action: the operator's, else "manual <command> by <actor>". */
  reasonText: string;
  /** Why the target cannot start another action now (null: it can). */
  busy: string | null;
}

type Handler = (ctx: Ctx, v: Verdicts) => string | undefined;

/** Applies one command; the refusal reason, or undefined when it applied. */
export function command(ctx: Ctx, c: Command): string | undefined {
  const s = ctx.s;
  const who: Detail = {};
  if (c.actor !== undefined) who.actor = c.actor;
  if (c.onBehalfOf !== undefined) who.onBehalfOf = c.onBehalfOf;
  if (c.reason !== undefined) who.reason = c.reason;
  const v: Verdicts = {
    c,
    reject: (why) => {
      audit(ctx, "command.rejected", { command: c.command, ...who, force: c.force ?? false, reason: why });
      return `${c.command}: ${why}`;
    },
    accept: (extra = {}) =>
      audit(ctx, "command.accepted", { command: c.command, ...who, force: c.force ?? false, ...extra }),
    reasonText: c.reason ?? `manual ${c.command}${byActor(c.actor)}`,
    busy: s.phase === "executing" && s.action ? `target is executing ${s.action.id}` : null,
  };
  if (!s.configured && c.command !== "pause" && c.command !== "resume") {
    return v.reject("target is not in the configuration; it takes no action until it returns");
  }
  return HANDLERS[c.command](ctx, v);
}

/** A dry-run drill in flight never stands in the way of a real switch (rule 11). */
function busyForSwitch(s: MachineState, busy: string | null): string | null {
  return busy !== null && s.drill?.mode === "dry-run" && s.action?.dryRun ? null : busy;
}

/**
 * Design §11.6: no action goes to another agent while the last one's agent has not said it is
 * over; a confirmed break-glass (`force`) may, and its answer says so. Returns the refusal, if any.
 */
function guardAgent(ctx: Ctx, v: Verdicts, to: Side, force: boolean): string | undefined {
  const s = ctx.s;
  if (!agentUnfinished(s, to)) return undefined;
  const a = s.action;
  const why = `${a?.id} was dispatched to agent ${a?.agent} and has no final report; ${to}'s agent is ${s.sideAgents[to]}`;
  if (!force) return v.reject(`${why} (a confirmed break-glass may send it anyway)`);
  ctx.warnings.push(`break-glass: ${why}; both agents may act`);
  return undefined;
}

/**
 * Rule 2 with rule 7's break-glass: refuses a switch to a down side unless forced, audits and
 * notifies the forced one. Returns the refusal, or undefined after accepting (seq in `accepted`).
 */
function guardDownSide(ctx: Ctx, v: Verdicts, to: Side, force: boolean, extra: Detail): string | number {
  const down = ctx.s.sides[to].health === "down";
  if (down && !force) return v.reject(`${to} is down (never switch to a down side; force overrides)`);
  const seq = v.accept(extra);
  if (force && down) breakGlass(ctx, v.c.actor, to, seq);
  return seq;
}

const HANDLERS: Record<CommandName, Handler> = {
  pause(ctx, { c, reject, accept }) {
    const s = ctx.s;
    if (s.paused) return reject("target is already paused");
    const seq = accept();
    s.paused = true;
    notify(ctx, "phase", `paused${byActor(c.actor)}: no automatic action until resume`);
    if (s.drill) abortDrill(ctx, "paused", seq);
    return undefined;
  },

  resume(ctx, { c, reject, accept }) {
    const s = ctx.s;
    if (!s.paused) return reject("target is not paused");
    const seq = accept();
    s.paused = false;
    // Rule 14: a fresh hold after a block. A hold that ran out while paused is evidence from
    // before the pause; the source may still be delaying its resolve.
    if (s.phase === "pending") {
      s.pendingSince = ctx.now;
      s.blocked = null;
      audit(ctx, "hold.restarted", { reason: "resumed", holdSeconds: s.policy.holdSeconds }, seq);
    }
    notify(ctx, "phase", `resumed${byActor(c.actor)}: automatic policy active`);
    return undefined;
  },

  approve(ctx, v) {
    if (v.c.step !== undefined) return approveStep(ctx, v, v.c.step);
    const s = ctx.s;
    const ap = s.approval;
    if (s.phase !== "awaiting_approval" || ap === null) return v.reject(`nothing awaits approval (phase ${s.phase})`);
    const agentRefusal = guardAgent(ctx, v, ap.to, v.c.force ?? false);
    if (agentRefusal !== undefined) return agentRefusal;
    const seq = guardDownSide(ctx, v, ap.to, v.c.force ?? false, { kind: ap.kind, to: ap.to });
    if (typeof seq === "string") return seq;
    startAction(
      ctx,
      {
        kind: ap.kind,
        from: s.activeSide,
        to: ap.to,
        dryRun: false,
        force: v.c.force ?? false,
        trigger: "approved",
        reason: `${ap.reason}; approved${byActor(v.c.actor)}`,
        actor: v.c.actor,
      },
      seq,
    );
    return undefined;
  },

  cancel(ctx, { c, reject, accept, busy }) {
    const s = ctx.s;
    if (busy) {
      // The agent has no cancel verb (design §6) and may be mid-step: abandoning the action
      // would leave the active side unknown. Wait for its report or timeout, then cancel.
      return reject(`${busy}; the agent cannot be stopped mid-action, wait for its report or timeout`);
    }
    if (s.phase === "steady") {
      if (!s.drill) return reject("nothing to cancel (phase steady)");
      abortDrill(ctx, `cancelled${byActor(c.actor)}`, accept());
      return undefined;
    }
    const seq = accept({ phase: s.phase });
    // Rule 10: dismissal is per incident: exactly the incidents firing on the active side now.
    const incidents = [...s.sides[s.activeSide].incidents];
    if (s.phase === "pending") s.dismissed = { kind: "failover", incidents };
    if (s.phase === "awaiting_approval") {
      const kind = s.approval?.kind ?? "failover";
      s.dismissed = { kind, incidents: kind === "failover" ? incidents : [] };
    }
    if (s.phase === "failed")
      s.dismissed = autoDown(s.sides[s.activeSide], s.policy) ? { kind: "failover", incidents } : null;
    setPhase(ctx, "steady", `cancelled${byActor(c.actor)}; no automatic action for the incidents firing now`, seq);
    return undefined;
  },

  retry(ctx, v) {
    const s = ctx.s;
    const a = s.action;
    if (s.phase !== "failed" || a === null) return v.reject(v.busy ?? `nothing to retry (phase ${s.phase})`);
    if (a.to === s.activeSide) return v.reject(`${a.to} is already active`);
    const force = v.c.force ?? a.force;
    const agentRefusal = guardAgent(ctx, v, a.to, v.c.force ?? false);
    if (agentRefusal !== undefined) return agentRefusal;
    const seq = guardDownSide(ctx, v, a.to, force, { retryOf: a.id });
    if (typeof seq === "string") return seq;
    startAction(
      ctx,
      {
        kind: a.kind,
        from: s.activeSide,
        to: a.to,
        dryRun: false,
        force,
        trigger: "manual",
        reason: `retry of ${a.id}: ${v.reasonText}`,
        actor: v.c.actor,
      },
      seq,
    );
    return undefined;
  },

  revert(ctx, { c, reject, accept, reasonText }) {
    // Rule 12: back to the failed action's `from` side, so half-done steps are undone. `from` is
    // still the recorded active side: this restores rather than switches, so rule 2 does not apply.
    const s = ctx.s;
    const a = s.action;
    if (s.phase !== "failed" || a === null || a.dryRun) return reject(`nothing to revert (phase ${s.phase})`);
    if (a.kind !== "failover" && a.kind !== "failback") return reject(`cannot revert a ${a.kind}`);
    const seq = accept({ revertOf: a.id, to: a.from });
    startAction(
      ctx,
      {
        kind: a.kind === "failover" ? "failback" : "failover",
        from: a.to,
        to: a.from,
        dryRun: false,
        force: false,
        trigger: "manual",
        reason: `revert of ${a.id}: ${reasonText}`,
        actor: c.actor,
        // Design §11.6: undone by the agent that did it, whatever the config says now.
        agent: a.agent,
        extra: { revertOf: a.id },
      },
      seq,
    );
    return undefined;
  },

  failover: manualSwitch,
  failback: manualSwitch,

  drill(ctx, { c, reject, accept, busy }) {
    const s = ctx.s;
    if (s.phase !== "steady") return reject(busy ?? `target is ${s.phase}`);
    if (s.drill) return reject(`a ${s.drill.mode} drill is already running`);
    const mode = c.mode ?? s.drillConfig?.mode ?? "dry-run";
    const to = otherSide(s.activeSide);
    if (s.sides[to].health === "down") return reject(`${to} is down`);
    if (agentUnfinished(s, to)) return reject(`${s.action?.id} on agent ${s.action?.agent} has no final report`);
    if (mode === "live") {
      // Design §5b: a live drill runs only when both sides are up and the target is steady,
      // not paused, not in cooldown.
      if (s.sides[s.activeSide].health !== "up" || s.sides[to].health !== "up")
        return reject("live drill needs both sides up");
      if (s.paused) return reject("target is paused");
      if (s.cooldownUntil !== null && s.cooldownUntil > ctx.now) return reject("target is in cooldown");
      if (s.flapping) return reject("target is flapping");
    }
    const seq = accept({ mode });
    const action = startAction(
      ctx,
      {
        kind: mode === "live" ? "failover" : "drill",
        from: s.activeSide,
        to,
        dryRun: mode === "dry-run",
        force: false,
        trigger: "drill",
        reason: `${mode} drill${byActor(c.actor)}`,
        actor: c.actor,
      },
      seq,
    );
    if (action === null) return undefined;
    s.drill = {
      mode,
      stage: mode === "live" ? "failing-over" : "dry-run",
      startedAt: ctx.now,
      homeSide: s.activeSide,
      holdUntil: null,
      switches: [switchOf(action)],
      ...(c.actor === undefined ? {} : { actor: c.actor }),
      cause: action.cause,
    };
    return undefined;
  },
};

/**
 * Why `step` of the current action cannot be approved now, or undefined when it can: the action
 * runs, has that step, the step is `waiting`, and it was not approved before (design §11.2). The
 * object asks this before it forwards the approval to the agent, and the command asks it again.
 */
export function stepApprovalRefusal(s: MachineState, step: string): string | undefined {
  const a = s.action;
  if (s.phase !== "executing" || a === null)
    return `no action is running (phase ${s.phase}); no step waits for approval`;
  const done = a.approvals?.find((x) => x.step === step);
  if (done) return `step ${JSON.stringify(step)} of ${a.id} was already approved by ${done.by}`;
  const st = a.steps.find((x) => x.name === step);
  if (!st) return `${a.id} has no step named ${JSON.stringify(step)}`;
  if (st.status !== "waiting")
    return `step ${JSON.stringify(step)} of ${a.id} is ${st.status}, not waiting for approval`;
  return undefined;
}

/**
 * `approve` with `step`: a plan's approval step (design §11.2). The object has already forwarded
 * it to the agent; this records it once, so that a second approval of the step is refused.
 */
function approveStep(ctx: Ctx, v: Verdicts, step: string): string | undefined {
  const s = ctx.s;
  const why = stepApprovalRefusal(s, step);
  const a = s.action;
  if (why !== undefined || a === null) return v.reject(why ?? "no action");
  const by = v.c.actor ?? "unknown";
  const seq = v.accept({ id: a.id, step });
  a.approvals = [...(a.approvals ?? []), { step, by, at: ctx.now }];
  audit(ctx, "approval.step-approved", { id: a.id, step, by }, seq);
  notify(ctx, "approval", `step ${step} of ${a.id} approved by ${by}; the plan goes on`);
  return undefined;
}

/** Rule 7: manual `failover`/`failback` bypass hold, quorum, flapping, cooldown and budget, not rule 2. */
function manualSwitch(ctx: Ctx, v: Verdicts): string | undefined {
  const s = ctx.s;
  const busy = busyForSwitch(s, v.busy);
  if (busy) return v.reject(busy);
  const to = v.c.command === "failover" ? otherSide(s.activeSide) : s.homeSide;
  if (to === s.activeSide) return v.reject(`${to} is already active`);
  const force = v.c.force ?? false;
  const agentRefusal = guardAgent(ctx, v, to, force);
  if (agentRefusal !== undefined) return agentRefusal;
  const seq = guardDownSide(ctx, v, to, force, { to });
  if (typeof seq === "string") return seq;
  if (s.drill) abortDrill(ctx, `manual ${v.c.command}`, seq);
  startAction(
    ctx,
    {
      kind: v.c.command === "failover" ? "failover" : "failback",
      from: s.activeSide,
      to,
      dryRun: false,
      force,
      trigger: "manual",
      reason: v.reasonText,
      actor: v.c.actor,
    },
    seq,
  );
  return undefined;
}
