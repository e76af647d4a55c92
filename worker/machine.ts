/**
 * The decision engine (design §5): a pure, deterministic `decide(state, input, now)`.
 *
 * No I/O, no clock, no Cloudflare imports: it runs the same on Node (tests) and in workerd.
 *
 * How the Durable Object shell uses it (one call per input, inside `blockConcurrencyWhile` or an
 * input gate so two calls never interleave):
 *
 * 1. Load: `MachineStateSchema.parse(JSON.parse(row))`; a target seen for the first time starts
 *    from `initialState(name, targetConfig)`. When the configured target differs from
 *    `state.policy` / `homeSide` / `drillConfig`, first feed `{ type: "config", ...targetConfig }`
 *    (extra keys such as `sides` are stripped; a no-op config returns no audit).
 * 2. Audit seqs: `state.seq` IS the target's audit counter. If the shell writes events of its own
 *    (e.g. `signal.received`), it allocates them as `state.seq + 1` and stores the bumped seq in
 *    the machine state before calling `decide`, then passes that seq as the input's `cause`.
 *    (Where the shell keeps its own counter, e.g. `TargetState.seq` in worker/target-object.ts,
 *    copy it into `machine.seq` before the call and back from the result after it.)
 * 3. Inputs (`MachineInput`, validated by zod inside `decide`; a malformed one throws):
 *    - `{ type: "observed", sides: { primary: { firingSources, heldSources }, secondary }, cause }`
 *      after storing signals (`observe(signals)` from worker/signals.ts fits; `seen` is ignored);
 *    - `{ type: "timer" }` from `alarm()`;
 *    - `{ type: "command", command, force?, actor?, reason?, mode? }` from the API / Slack;
 *    - `{ type: "report", report }` with a verified ActionReport;
 *    - `{ type: "dispatch-result", actionId, ok, error?, detail?, final?, retryAfterMs? }` after
 *      trying to deliver a dispatch (`final`: the transport gave up for good);
 *    - `{ type: "config", policy, initialActiveSide, drill? }`.
 * 4. `const { state, effects, rejected } = decide(state, input, Date.now())`.
 * 5. In ONE storage transaction write `state` and each `{ type: "audit", event }` (event = {seq,
 *    at (epoch ms), type, detail, cause?}) to the events table; only then perform the rest:
 *    - `{ type: "setTimer", at }`: exactly one per call, always last; `setAlarm(at)`, or
 *      `deleteAlarm()` when null. An alarm that fires early is harmless (feed `timer` anyway).
 *    - `{ type: "dispatch", request }`: sign and deliver the ActionRequest (direct POST, or QStash
 *      publish with deduplicationId = id), then feed the `dispatch-result`; the machine schedules
 *      delivery retries (5 s × 2^n, max 5 min) and re-dispatches after `actionTimeoutSeconds`
 *      through the timer, always with the same id and body.
 *    - `{ type: "notify", text, kind }`: post to Slack; best effort, never fed back.
 * 6. `rejected` (commands only) is the reason for a 409 problem, e.g. "failback: target is
 *    executing egress-gw:3"; the state (with its `command.rejected` audit) is still persisted.
 * 7. The §3 view: `machineView(state, now)` plus the shell's firing signals and last events.
 */
import { otherSide, type Side, type WorkerTarget } from "../shared/config.ts";
import type { ActionKind, ActionReport, ActionRequest } from "../shared/protocol.ts";
import {
  anySignal,
  autoDown,
  budgetUsed,
  DAY_MS,
  deliveryBackoffMs,
  failbackReadyAt,
  failoverBlocker,
  flapReleaseAt,
  healthOf,
  nextDeadline,
} from "./machine-rules.ts";
import {
  type ActionState,
  type Blocker,
  type Decision,
  type DrillConfig,
  type DrillSwitch,
  type Effect,
  type MachineInput,
  MachineInputSchema,
  type MachineState,
  type NotifyKind,
  type ParsedMachineInput,
  type Phase,
  type Trigger,
} from "./machine-types.ts";

export { nextDeadline } from "./machine-rules.ts";
export type { Decision, Effect, MachineInput, MachineState } from "./machine-types.ts";
export { MachineInputSchema, MachineStateSchema } from "./machine-types.ts";

type Json = string | number | boolean | null | Json[] | { [key: string]: Json };
type Detail = Record<string, Json>;

const sec = (s: number) => s * 1000;

/** The state of a target that has never been seen: steady on its configured initial side. */
export function initialState(
  target: string,
  config: Pick<WorkerTarget, "policy" | "initialActiveSide" | "drill">,
): MachineState {
  const side = () => ({
    health: "up" as const,
    firingSources: [],
    heldSources: [],
    since: null,
    upSince: null,
    healthCause: null,
  });
  return {
    version: 1,
    target,
    seq: 0,
    policy: config.policy,
    homeSide: config.initialActiveSide,
    drillConfig: config.drill ?? null,
    activeSide: config.initialActiveSide,
    phase: "steady",
    paused: false,
    flapping: false,
    flappingSince: null,
    flapTransitions: [],
    lastActiveTransitionAt: null,
    flappingCause: null,
    cooldownUntil: null,
    pendingSince: null,
    pendingCause: null,
    blocked: null,
    approval: null,
    dismissed: null,
    epoch: 0,
    action: null,
    autoActions: [],
    sides: { primary: side(), secondary: side() },
    drill: null,
    lastDrill: null,
  };
}

/** One transition in progress: a private copy of the state plus the effects so far. */
interface Ctx {
  s: MachineState;
  now: number;
  effects: Effect[];
  /** The default cause: the input's cause, else the first event of this transition. */
  root: number | undefined;
}

function audit(ctx: Ctx, type: string, detail: Detail, cause?: number | null): number {
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

function notify(ctx: Ctx, kind: NotifyKind, text: string): void {
  ctx.effects.push({ type: "notify", kind, text: `${ctx.s.target}: ${text}` });
}

function setPhase(ctx: Ctx, phase: Phase, reason: string, cause?: number | null): number {
  const from = ctx.s.phase;
  ctx.s.phase = phase;
  if (phase !== "pending") {
    ctx.s.pendingSince = null;
    ctx.s.pendingCause = null;
    ctx.s.blocked = null;
  }
  if (phase !== "awaiting_approval") ctx.s.approval = null;
  const seq = audit(ctx, "phase.changed", { from, to: phase, reason }, cause);
  notify(ctx, "phase", `${from} → ${phase}: ${reason}`);
  return seq;
}

/**
 * Decides what one input means for one target at `now` (epoch ms). Pure and deterministic: the
 * same state, input and now always give the same result; `state` is never mutated.
 *
 * @example
 *   const { state: next, effects } = decide(state, { type: "timer" }, Date.now());
 */
export function decide(state: MachineState, input: MachineInput, now: number): Decision {
  const parsed: ParsedMachineInput = MachineInputSchema.parse(input);
  const ctx: Ctx = { s: structuredClone(state), now, effects: [], root: parsed.cause };
  // Deadlines that fell due before `now` happened before this input (an alarm can run late):
  // e.g. an approve that arrives after the approval expired finds the request already expired.
  settle(ctx);
  let rejected: string | undefined;
  switch (parsed.type) {
    case "observed":
      observe(ctx, parsed.sides);
      break;
    case "timer":
      break;
    case "config":
      configure(ctx, parsed);
      break;
    case "dispatch-result":
      dispatchResult(ctx, parsed);
      break;
    case "report":
      report(ctx, parsed.report);
      break;
    case "command":
      rejected = command(ctx, parsed);
      break;
  }
  settle(ctx);
  ctx.effects.push({ type: "setTimer", at: nextDeadline(ctx.s, now) });
  return rejected === undefined
    ? { state: ctx.s, effects: ctx.effects }
    : { state: ctx.s, effects: ctx.effects, rejected };
}

// ---------------------------------------------------------------------------------------------
// Observations (rules 1, 4, 8)

const sortedSet = (xs: readonly string[]) => [...new Set(xs)].sort();
const sameList = (a: readonly string[], b: readonly string[]) => a.length === b.length && a.every((x, i) => x === b[i]);

function observe(ctx: Ctx, sides: Record<Side, { firingSources: string[]; heldSources: string[] }>): void {
  for (const side of ["primary", "secondary"] as const) {
    const firing = sortedSet(sides[side].firingSources);
    const held = sortedSet(sides[side].heldSources);
    const prev = ctx.s.sides[side];
    if (sameList(prev.firingSources, firing) && sameList(prev.heldSources, held)) continue;
    prev.firingSources = firing;
    prev.heldSources = held;
    refreshHealth(ctx, side, true);
  }
}

/** Recomputes a side's health from its stored sources; audits any change (rule 8: always recorded). */
function refreshHealth(ctx: Ctx, side: Side, sourcesChanged: boolean): void {
  const s = ctx.s;
  const st = s.sides[side];
  const health = healthOf(st.firingSources, st.heldSources, s.policy.quorum);
  const changed = health !== st.health;
  if (!changed && !sourcesChanged) return;
  const seq = audit(ctx, changed ? "side.health-changed" : "side.sources-changed", {
    side,
    health,
    previous: st.health,
    firingSources: st.firingSources,
    heldSources: st.heldSources,
    active: side === s.activeSide,
  });
  if (!changed) return;
  const wasDown = st.health === "down";
  st.health = health;
  st.since = ctx.now;
  st.upSince = health === "up" ? ctx.now : null;
  st.healthCause = seq;
  if (side === s.activeSide && wasDown !== (health === "down")) activeTransition(ctx, seq);
}

/** Rule 4: count an up/down change of the active side; latch flapping past the limit. */
function activeTransition(ctx: Ctx, cause: number): void {
  const s = ctx.s;
  const window = sec(s.policy.flap.windowSeconds);
  s.flapTransitions = [...s.flapTransitions.filter((t) => t > ctx.now - window), ctx.now];
  s.lastActiveTransitionAt = ctx.now;
  if (!s.flapping && s.flapTransitions.length > s.policy.flap.maxTransitions) {
    s.flapping = true;
    s.flappingSince = ctx.now;
    s.flappingCause = audit(
      ctx,
      "flapping.latched",
      { side: s.activeSide, transitions: s.flapTransitions.length, windowSeconds: s.policy.flap.windowSeconds },
      cause,
    );
    notify(
      ctx,
      "alert",
      `${s.activeSide} is flapping (${s.flapTransitions.length} up/down changes in ${s.policy.flap.windowSeconds} s); automatic action held until it is stable for a whole window`,
    );
  }
}

function configure(ctx: Ctx, cfg: Extract<ParsedMachineInput, { type: "config" }>): void {
  const s = ctx.s;
  const drill: DrillConfig | null = cfg.drill ?? null;
  const same =
    JSON.stringify(s.policy) === JSON.stringify(cfg.policy) &&
    s.homeSide === cfg.initialActiveSide &&
    JSON.stringify(s.drillConfig) === JSON.stringify(drill);
  if (same) return;
  audit(ctx, "config.changed", {
    policy: cfg.policy as unknown as Json,
    homeSide: cfg.initialActiveSide,
    drill: drill as unknown as Json,
  });
  s.policy = cfg.policy;
  s.homeSide = cfg.initialActiveSide;
  s.drillConfig = drill;
  // A quorum change can change health without any new signal.
  refreshHealth(ctx, "primary", false);
  refreshHealth(ctx, "secondary", false);
}

// ---------------------------------------------------------------------------------------------
// Actions (rule 5)

interface ActionSpec {
  kind: ActionKind;
  from: Side;
  to: Side;
  dryRun: boolean;
  force: boolean;
  trigger: Trigger;
  reason: string;
  actor?: string | undefined;
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
  };
}

function startAction(ctx: Ctx, spec: ActionSpec, cause: number | undefined): ActionState {
  const s = ctx.s;
  s.epoch += 1;
  const id = `${s.target}:${s.epoch}`;
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
  };
  const seq = audit(ctx, "action.dispatched", fields, phaseSeq);
  const action: ActionState = {
    ...fields,
    status: "dispatching",
    issuedAt: ctx.now,
    dispatchedAt: ctx.now,
    finishedAt: null,
    attempts: 1,
    deliveryFailures: 0,
    redispatches: 0,
    deadline: ctx.now + sec(s.policy.actionTimeoutSeconds),
    deadlineKind: "timeout",
    steps: [],
    cause: seq,
  };
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
  a.deadline = ctx.now + sec(ctx.s.policy.actionTimeoutSeconds);
  a.deadlineKind = "timeout";
  ctx.effects.push({ type: "dispatch", request: requestOf(ctx.s, a) });
}

function dispatchResult(ctx: Ctx, r: Extract<ParsedMachineInput, { type: "dispatch-result" }>): void {
  const s = ctx.s;
  const a = s.action;
  // A result for an action that is no longer in flight changes nothing.
  if (s.phase !== "executing" || a === null || a.status !== "dispatching") return;
  if (r.actionId !== undefined && r.actionId !== a.id) return;
  if (r.ok) {
    if (a.deliveryFailures === 0) return;
    a.deliveryFailures = 0;
    audit(
      ctx,
      "action.delivered",
      { id: a.id, attempts: a.attempts, ...(r.detail === undefined ? {} : { detail: r.detail }) },
      a.cause,
    );
    return;
  }
  a.deliveryFailures += 1;
  const error = r.error ?? "delivery failed";
  if (r.final) {
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
  const delay = deliveryBackoffMs(a.deliveryFailures, r.retryAfterMs);
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

/** The action's deadline fell due: deliver again after backoff, or re-dispatch after a timeout. */
function actionDeadline(ctx: Ctx, a: ActionState): void {
  const s = ctx.s;
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

/** The action failed (agent report, delivery give-up or timeout): phase `failed`, except dry runs. */
function failAction(ctx: Ctx, error: { code: string; message: string }, cause: number): void {
  const s = ctx.s;
  const a = s.action;
  if (a === null) return;
  a.status = "failed";
  a.error = error;
  a.finishedAt = ctx.now;
  a.deadline = null;
  a.deadlineKind = null;
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
  else setPhase(ctx, "failed", `${a.id} failed: ${error.message}; waiting for retry, cancel or a manual command`, seq);
}

function stepDurations(a: ActionState): DrillSwitch["steps"] {
  return a.steps.map((st) => ({
    name: st.name,
    status: st.status,
    durationMs: st.startedAt && st.finishedAt ? Date.parse(st.finishedAt) - Date.parse(st.startedAt) : null,
  }));
}

function report(ctx: Ctx, r: ActionReport): void {
  const s = ctx.s;
  const a = s.action;
  const ignore = (why: string) =>
    audit(ctx, "report.ignored", { actionId: r.actionId, status: r.status, reason: why, current: a?.id ?? null });
  if (r.target !== s.target) return void ignore(`report is for target ${r.target}`);
  if (a === null || r.actionId !== a.id) return void ignore("not the current action (other id or old epoch)");
  // A late report after we gave up (timeout / delivery) still tells the truth: take it.
  const lateAfterGiveUp =
    s.phase === "failed" &&
    a.status === "failed" &&
    (a.error?.code === "action-timeout" || a.error?.code === "dispatch-failed");
  if (!(s.phase === "executing" || lateAfterGiveUp)) return void ignore(`action already ${a.status}`);
  if (r.dryRun !== a.dryRun) return void ignore("dryRun does not match the action");
  a.steps = r.steps;
  if (lateAfterGiveUp) {
    delete a.error;
    a.finishedAt = null;
    setPhase(
      ctx,
      "executing",
      `late report for ${a.id} (${r.status})`,
      audit(ctx, "action.revived", { id: a.id, status: r.status }, ctx.root ?? a.cause),
    );
  }
  if (r.status === "running") {
    a.status = "running";
    a.deliveryFailures = 0;
    a.deadline = ctx.now + sec(s.policy.actionTimeoutSeconds);
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
  // succeeded
  a.status = "succeeded";
  a.finishedAt = ctx.now;
  a.deadline = null;
  a.deadlineKind = null;
  const recoveryMs = ctx.now - a.dispatchedAt;
  const detail: Detail = { id: a.id, kind: a.kind, from: a.from, to: a.to, dryRun: a.dryRun, recoveryMs };
  if (r.activeSide !== undefined && !a.dryRun && r.activeSide !== a.to) detail.reportedActiveSide = r.activeSide;
  const seq = audit(ctx, "action.succeeded", detail, ctx.root ?? a.cause);
  if (!a.dryRun) {
    s.activeSide = a.to;
    // The new active side starts with a clean flap history; a latch releases a window from now.
    s.flapTransitions = [];
    s.lastActiveTransitionAt = ctx.now;
    // Drill switches are planned with both sides up: no cooldown to block a real failover after.
    if (a.trigger !== "drill") s.cooldownUntil = ctx.now + sec(s.policy.cooldownSeconds);
    if (s.dismissed === "failover") s.dismissed = null;
  }
  notify(
    ctx,
    "action",
    a.dryRun
      ? `dry run ${a.id} (${a.from} → ${a.to}) succeeded in ${Math.round(recoveryMs / 1000)} s`
      : `${a.kind} ${a.id} succeeded: ${a.to} is now active (${Math.round(recoveryMs / 1000)} s)`,
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

function finishDrill(
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

// ---------------------------------------------------------------------------------------------
// Commands (rules 7, 9 and the operator verbs)

function command(ctx: Ctx, c: Extract<ParsedMachineInput, { type: "command" }>): string | undefined {
  const s = ctx.s;
  const who: Detail = {};
  if (c.actor !== undefined) who.actor = c.actor;
  if (c.reason !== undefined) who.reason = c.reason;
  const reject = (why: string): string => {
    audit(ctx, "command.rejected", { command: c.command, ...who, force: c.force ?? false, reason: why });
    return `${c.command}: ${why}`;
  };
  const accept = (extra: Detail = {}): number =>
    audit(ctx, "command.accepted", { command: c.command, ...who, force: c.force ?? false, ...extra });
  const busy = s.phase === "executing" && s.action ? `target is executing ${s.action.id}` : null;
  const reasonText = c.reason ?? `manual ${c.command}${c.actor ? ` by ${c.actor}` : ""}`;

  switch (c.command) {
    case "pause": {
      if (s.paused) return reject("target is already paused");
      const seq = accept();
      s.paused = true;
      notify(ctx, "phase", `paused${c.actor ? ` by ${c.actor}` : ""}: no automatic action until resume`);
      if (s.drill) abortDrill(ctx, "paused", seq);
      return undefined;
    }
    case "resume": {
      if (!s.paused) return reject("target is not paused");
      accept();
      s.paused = false;
      notify(ctx, "phase", `resumed${c.actor ? ` by ${c.actor}` : ""}: automatic policy active`);
      return undefined;
    }
    case "approve": {
      const ap = s.approval;
      if (s.phase !== "awaiting_approval" || ap === null) return reject(`nothing awaits approval (phase ${s.phase})`);
      const to = s.sides[ap.to];
      if (to.health === "down" && !c.force)
        return reject(`${ap.to} is down (never switch to a down side; force overrides)`);
      const seq = accept({ kind: ap.kind, to: ap.to });
      if (c.force && to.health === "down") breakGlass(ctx, c.actor, ap.to, seq);
      startAction(
        ctx,
        {
          kind: ap.kind,
          from: s.activeSide,
          to: ap.to,
          dryRun: false,
          force: c.force ?? false,
          trigger: "approved",
          reason: `${ap.reason}; approved${c.actor ? ` by ${c.actor}` : ""}`,
          actor: c.actor,
        },
        seq,
      );
      return undefined;
    }
    case "cancel": {
      if (busy) {
        // The agent has no cancel verb (design §6) and may be mid-step: abandoning the action
        // would leave the active side unknown. Wait for its report or timeout, then cancel.
        return reject(`${busy}; the agent cannot be stopped mid-action, wait for its report or timeout`);
      }
      if (s.phase === "steady") {
        if (!s.drill) return reject("nothing to cancel (phase steady)");
        abortDrill(ctx, `cancelled${c.actor ? ` by ${c.actor}` : ""}`, accept());
        return undefined;
      }
      const seq = accept({ phase: s.phase });
      if (s.phase === "pending") s.dismissed = "failover";
      if (s.phase === "awaiting_approval") s.dismissed = s.approval?.kind ?? "failover";
      if (s.phase === "failed") s.dismissed = autoDown(s.sides[s.activeSide], s.policy) ? "failover" : null;
      setPhase(
        ctx,
        "steady",
        `cancelled${c.actor ? ` by ${c.actor}` : ""}; no automatic action for this incident`,
        seq,
      );
      return undefined;
    }
    case "retry": {
      const a = s.action;
      if (s.phase !== "failed" || a === null) return reject(busy ?? `nothing to retry (phase ${s.phase})`);
      if (a.to === s.activeSide) return reject(`${a.to} is already active`);
      const force = c.force ?? a.force;
      if (s.sides[a.to].health === "down" && !force)
        return reject(`${a.to} is down (never switch to a down side; force overrides)`);
      const seq = accept({ retryOf: a.id });
      if (force && s.sides[a.to].health === "down") breakGlass(ctx, c.actor, a.to, seq);
      startAction(
        ctx,
        {
          kind: a.kind,
          from: s.activeSide,
          to: a.to,
          dryRun: false,
          force,
          trigger: "manual",
          reason: `retry of ${a.id}: ${reasonText}`,
          actor: c.actor,
        },
        seq,
      );
      return undefined;
    }
    case "failover":
    case "failback": {
      if (busy) return reject(busy);
      const to = c.command === "failover" ? otherSide(s.activeSide) : s.homeSide;
      if (to === s.activeSide) return reject(`${to} is already active`);
      const force = c.force ?? false;
      if (s.sides[to].health === "down" && !force)
        return reject(`${to} is down (never switch to a down side; force overrides)`);
      const seq = accept({ to });
      if (force && s.sides[to].health === "down") breakGlass(ctx, c.actor, to, seq);
      if (s.drill) abortDrill(ctx, `manual ${c.command}`, seq);
      startAction(
        ctx,
        {
          kind: c.command,
          from: s.activeSide,
          to,
          dryRun: false,
          force,
          trigger: "manual",
          reason: reasonText,
          actor: c.actor,
        },
        seq,
      );
      return undefined;
    }
    case "drill": {
      if (s.phase !== "steady") return reject(busy ?? `target is ${s.phase}`);
      if (s.drill) return reject(`a ${s.drill.mode} drill is already running`);
      const mode = c.mode ?? s.drillConfig?.mode ?? "dry-run";
      const to = otherSide(s.activeSide);
      if (s.sides[to].health === "down") return reject(`${to} is down`);
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
          reason: `${mode} drill${c.actor ? ` by ${c.actor}` : ""}`,
          actor: c.actor,
        },
        seq,
      );
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
    }
  }
}

function switchOf(a: ActionState): DrillSwitch {
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

function breakGlass(ctx: Ctx, actor: string | undefined, to: Side, cause: number): void {
  audit(ctx, "command.forced", { actor: actor ?? null, to, health: ctx.s.sides[to].health }, cause);
  notify(ctx, "alert", `BREAK-GLASS: ${actor ?? "unknown actor"} forced a switch to ${to}, which is down`);
}

function abortDrill(ctx: Ctx, why: string, cause: number): void {
  // An in-flight drill action keeps running (one action in flight per target); only the drill's
  // plan (hold, fail back) is dropped, so its report is handled like any action's.
  finishDrill(ctx, false, "aborted", why, cause);
}

// ---------------------------------------------------------------------------------------------
// Settling: apply every rule whose condition holds at `now` until nothing changes.

function settle(ctx: Ctx): void {
  // Each step makes progress in a finite lattice (phase/deadline changes); the bound only guards
  // against a bug turning into an infinite loop inside a Durable Object.
  for (let i = 0; i < 32; i++) if (!settleOnce(ctx)) return;
}

function settleOnce(ctx: Ctx): boolean {
  const s = ctx.s;
  const now = ctx.now;
  const p = s.policy;
  const active = s.sides[s.activeSide];
  const activeDown = autoDown(active, p);

  const release = flapReleaseAt(s);
  if (release !== null && now >= release) {
    s.flapping = false;
    s.flappingSince = null;
    s.flapTransitions = [];
    audit(ctx, "flapping.released", { side: s.activeSide, stableSeconds: p.flap.windowSeconds }, s.flappingCause);
    s.flappingCause = null;
    notify(ctx, "alert", `${s.activeSide} stable for ${p.flap.windowSeconds} s: flapping released`);
    return true;
  }
  // Dismissals last for one incident only.
  if (s.dismissed === "failover" && !activeDown) s.dismissed = null;
  if (s.dismissed === "failback" && (s.sides[s.homeSide].health !== "up" || s.activeSide === s.homeSide))
    s.dismissed = null;

  const drill = s.drill;
  if (drill) {
    if (anySignal(s)) {
      abortDrill(ctx, "a real signal arrived; normal policy takes over", active.healthCause ?? drill.cause);
      return true;
    }
    if (drill.stage === "holding" && drill.holdUntil !== null && now >= drill.holdUntil && s.phase === "steady") {
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
      drill.switches.push(switchOf(action));
      return true;
    }
  }

  switch (s.phase) {
    case "steady": {
      if (activeDown && s.dismissed !== "failover" && !s.drill) {
        s.blocked = null;
        const seq = setPhase(
          ctx,
          "pending",
          `${s.activeSide} down (${active.firingSources.join(", ")}); holding ${p.holdSeconds} s`,
          active.healthCause,
        );
        s.pendingSince = now;
        s.pendingCause = seq;
        return true;
      }
      const ready = failbackReadyAt(s, now);
      if (ready !== null && now >= ready && !s.flapping) {
        proposeOrStart(
          ctx,
          "failback",
          s.homeSide,
          `${s.homeSide} up for ${p.failbackAfterSeconds} s (auto failback)`,
          // A home side that never had a signal has no health event: the switch away caused this.
          s.sides[s.homeSide].healthCause ?? s.action?.cause ?? undefined,
        );
        return true;
      }
      return false;
    }
    case "pending": {
      if (!activeDown) {
        setPhase(ctx, "steady", `${s.activeSide} recovered within the hold; no action`, active.healthCause);
        return true;
      }
      const since = s.pendingSince ?? now;
      if (now < since + sec(p.holdSeconds)) return false;
      const blocker = failoverBlocker(s, now);
      if (blocker !== null) {
        if (s.blocked === blocker) return false;
        s.blocked = blocker;
        blockedAudit(ctx, blocker);
        return true;
      }
      proposeOrStart(
        ctx,
        "failover",
        otherSide(s.activeSide),
        `${s.activeSide} down for ${Math.round((now - since) / 1000)} s (${active.firingSources.join(", ")})`,
        s.pendingCause ?? undefined,
      );
      return true;
    }
    case "awaiting_approval": {
      const ap = s.approval;
      if (ap === null) {
        setPhase(ctx, "steady", "no approval request on record");
        return true;
      }
      const stillWanted =
        ap.kind === "failover" ? activeDown : s.sides[s.homeSide].health === "up" && s.activeSide !== s.homeSide;
      if (!stillWanted) {
        setPhase(ctx, "steady", `approval request for ${ap.kind} withdrawn: the condition cleared`, ap.cause);
        return true;
      }
      if (now >= ap.deadline) {
        const seq = audit(ctx, "approval.expired", { kind: ap.kind, to: ap.to, requestedAt: ap.requestedAt }, ap.cause);
        notify(
          ctx,
          "approval",
          `approval for ${ap.kind} to ${ap.to} expired after ${p.approvalTimeoutSeconds} s; no action`,
        );
        s.dismissed = ap.kind;
        setPhase(ctx, "steady", "approval expired", seq);
        return true;
      }
      return false;
    }
    case "executing": {
      const a = s.action;
      if (a === null) {
        setPhase(ctx, "failed", "executing without an action on record");
        return true;
      }
      if (a.deadline !== null && now >= a.deadline) {
        actionDeadline(ctx, a);
        return true;
      }
      return false;
    }
    case "failed":
      return false;
  }
}

function blockedAudit(ctx: Ctx, blocker: Blocker): void {
  const s = ctx.s;
  const other = otherSide(s.activeSide);
  if (blocker === "both-sides-down") {
    audit(ctx, "both-sides-down", { active: s.activeSide, other }, s.sides[other].healthCause ?? s.pendingCause);
    notify(ctx, "alert", `both sides down: ${s.activeSide} and ${other}; staying on ${s.activeSide}`);
    return;
  }
  const why: Record<Blocker, string> = {
    "both-sides-down": "both sides down",
    "other-side-not-up": `${other} is not up (signals below quorum)`,
    paused: "target is paused",
    flapping: "target is flapping",
    cooldown: `cooldown until ${new Date(s.cooldownUntil ?? 0).toISOString()}`,
    budget: `daily budget of ${s.policy.maxAutoActionsPerDay} automatic actions spent`,
  };
  audit(ctx, "failover.blocked", { blocker, reason: why[blocker] }, s.pendingCause);
  notify(ctx, "alert", `${s.activeSide} down past the hold, but no automatic failover: ${why[blocker]}`);
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

/** Rolling budget window, exported for tests and the status view. */
export const BUDGET_WINDOW_MS = DAY_MS;

/** The machine's part of the target view (design §3); the shell adds `name`, firing signals and events. */
export interface MachineView {
  activeSide: Side;
  phase: Phase;
  paused: boolean;
  flapping: boolean;
  /** ISO time, or null once passed. */
  cooldownUntil: string | null;
  pendingSince: string | null;
  approvalDeadline: string | null;
  sides: Record<Side, { health: MachineState["sides"]["primary"]["health"]; upSince: string | null }>;
  action: {
    id: string;
    kind: ActionKind;
    from: Side;
    to: Side;
    dryRun: boolean;
    status: ActionState["status"];
    steps: ActionState["steps"];
    error?: { code: string; message: string };
  } | null;
  autoActionsLast24h: number;
  lastDrill: MachineState["lastDrill"];
}

/** Renders the state for `GET /v1/targets/:name` and the status page. */
export function machineView(state: MachineState, now: number): MachineView {
  const iso = (t: number | null) => (t === null ? null : new Date(t).toISOString());
  const side = (s: Side) => ({ health: state.sides[s].health, upSince: iso(state.sides[s].upSince) });
  const a = state.action;
  return {
    activeSide: state.activeSide,
    phase: state.phase,
    paused: state.paused,
    flapping: state.flapping,
    cooldownUntil: state.cooldownUntil !== null && state.cooldownUntil > now ? iso(state.cooldownUntil) : null,
    pendingSince: iso(state.pendingSince),
    approvalDeadline: iso(state.approval?.deadline ?? null),
    sides: { primary: side("primary"), secondary: side("secondary") },
    action:
      a === null
        ? null
        : {
            id: a.id,
            kind: a.kind,
            from: a.from,
            to: a.to,
            dryRun: a.dryRun,
            status: a.status,
            steps: a.steps,
            ...(a.error ? { error: a.error } : {}),
          },
    autoActionsLast24h: budgetUsed(state, now).length,
    lastDrill: state.lastDrill,
  };
}
