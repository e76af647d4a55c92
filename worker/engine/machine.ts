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
 *    (Where the shell keeps its own counter, e.g. `TargetState.seq` in worker/target/target-object.ts,
 *    copy it into `machine.seq` before the call and back from the result after it.)
 * 3. Inputs (`MachineInput`, validated by zod inside `decide`; a malformed one throws):
 *    - `{ type: "observed", sides: { primary: { firingSources, heldSources }, secondary }, cause }`
 *      after storing signals (`observe(signals)` from worker/engine/signals.ts fits; `seen` is ignored);
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
import { type Side, sideAgent, type WorkerTarget } from "../../shared/config.ts";
import type { ActionKind } from "../../shared/protocol.ts";
import { dispatchResult, report } from "./machine-actions.ts";
import { agentInput, probeResult } from "./machine-agents.ts";
import { command } from "./machine-commands.ts";
import { audit, type Ctx, type Json, notify, sec } from "./machine-ctx.ts";
import { readinessInput } from "./machine-readiness.ts";
import { agentSilent, budgetUsed, DAY_MS, healthOf, nextDeadline } from "./machine-rules.ts";
import { settle } from "./machine-settle.ts";
import {
  type ActionState,
  type Blocker,
  type Decision,
  type DrillConfig,
  type MachineInput,
  MachineInputSchema,
  type MachineState,
  type ParsedMachineInput,
  type Phase,
} from "./machine-types.ts";

export { nextDeadline } from "./machine-rules.ts";
export type { Decision, Effect, MachineInput, MachineState } from "./machine-types.ts";
export { MachineInputSchema, MachineStateSchema, upgradeMachineState } from "./machine-types.ts";

/** The state of a target that has never been seen: steady on its configured initial side. */
export function initialState(
  target: string,
  config: Pick<WorkerTarget, "policy" | "initialActiveSide" | "drill"> & Partial<Pick<WorkerTarget, "sides">>,
): MachineState {
  const sides = config.sides;
  const side = () => ({
    health: "up" as const,
    firingSources: [],
    heldSources: [],
    staleSources: [],
    incidents: [],
    since: null,
    upSince: null,
    healthCause: null,
  });
  return {
    version: 3,
    target,
    seq: 0,
    policy: config.policy,
    homeSide: config.initialActiveSide,
    configuredInitialSide: config.initialActiveSide,
    configured: true,
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
    sideAgents: {
      primary: sides ? sideAgent({ sides }, "primary") : "default",
      secondary: sides ? sideAgent({ sides }, "secondary") : "default",
    },
    agentLiveness: {},
    probe: null,
  };
}

/**
 * Decides what one input means for one target at `now` (epoch ms). Pure and deterministic: the
 * same state, input and now always give the same result; `state` is never mutated.
 *
 * @example
 *   const { state: next, effects } = decide(state, { type: "timer" }, Date.now());
 */
export function decide(state: MachineState, input: MachineInput, now: number): Decision {
  return decideParsed(state, MachineInputSchema.parse(input), now);
}

/**
 * `decide` for an input already in its parsed shape, such as the observations the shell builds
 * itself from its own store: the same decision without validating the input again. The ingest
 * path makes one such call per webhook, so the validation was a tenth of its cost.
 */
export function decideParsed(state: MachineState, parsed: ParsedMachineInput, now: number): Decision {
  const ctx: Ctx = { s: writable(state), now, effects: [], root: parsed.cause, warnings: [] };
  // Deadlines that fell due before `now` happened before this input (an alarm can run late):
  // e.g. an approve that arrives after the approval expired finds the request already expired.
  // Not so for configuration: the shell applies it before any other input of the call, and when
  // it was edited is unknown, so a removed target never acts on a deadline first (rule 15).
  if (parsed.type !== "config" && parsed.type !== "unconfigured") settle(ctx);
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
    case "unconfigured":
      unconfigure(ctx);
      break;
    case "dispatch-result":
      dispatchResult(ctx, parsed);
      break;
    case "report":
      report(ctx, parsed.report, parsed.agent);
      break;
    case "agent":
      agentInput(ctx, parsed);
      break;
    case "probe-result":
      probeResult(ctx, parsed);
      break;
    case "readiness":
      readinessInput(ctx, parsed);
      break;
    case "command":
      rejected = command(ctx, parsed);
      break;
  }
  settle(ctx);
  ctx.effects.push({ type: "setTimer", at: nextDeadline(ctx.s, now) });
  const decision: Decision = { state: ctx.s, effects: ctx.effects };
  if (rejected !== undefined) decision.rejected = rejected;
  else if (ctx.warnings.length > 0) decision.warnings = ctx.warnings;
  return decision;
}

/**
 * A copy of `state` that the rules may change in place, made without a deep copy (a deep copy of
 * every state was a fifth of `npm run simulate`'s time): the rules write fields of the state, of
 * its sides, of its action and of its drill and the drill's switches, so those objects are copied;
 * everything else (policy, drill config, lists, approval, dismissal, last drill, side agents,
 * agent liveness, probe) is only ever replaced whole, never written into, so it is shared with
 * `state`. A rule that starts writing
 * into another nested object must copy it here (test/machine/decide-never-writes-into-its-input
 * freezes the input to catch it).
 */
function writable(state: MachineState): MachineState {
  const { action, drill } = state;
  return {
    ...state,
    sides: { primary: { ...state.sides.primary }, secondary: { ...state.sides.secondary } },
    action: action === null ? null : { ...action },
    drill: drill === null ? null : { ...drill, switches: drill.switches.map((sw) => ({ ...sw })) },
  };
}

// ---------------------------------------------------------------------------------------------
// Observations (rules 1, 4, 8, 12; §4 staleness)

type SideObservation = Extract<ParsedMachineInput, { type: "observed" }>["sides"]["primary"];

const sortedSet = (xs: readonly string[]) => [...new Set(xs)].sort();
const sameList = (a: readonly string[], b: readonly string[]) => a.length === b.length && a.every((x, i) => x === b[i]);

/** The lists an observation gives a side (sorted, distinct). */
type ObservedLists = Pick<SideObservation, "firingSources" | "heldSources" | "staleSources" | "incidents">;

/** Whether a side already holds these observed lists (both sorted and distinct): observing them changes nothing. */
export function holdsObservation(held: ObservedLists, seen: ObservedLists): boolean {
  return (
    sameList(held.firingSources, seen.firingSources) &&
    sameList(held.heldSources, seen.heldSources) &&
    sameList(held.staleSources, seen.staleSources) &&
    sameList(held.incidents, seen.incidents)
  );
}

function observe(ctx: Ctx, sides: Record<Side, SideObservation>): void {
  for (const side of ["primary", "secondary"] as const) {
    const firing = sortedSet(sides[side].firingSources);
    const held = sortedSet(sides[side].heldSources);
    const stale = sortedSet(sides[side].staleSources);
    // Incidents do not change health; they decide whether a dismissal still covers the side.
    const incidents = sortedSet(sides[side].incidents);
    const prev = ctx.s.sides[side];
    if (holdsObservation(prev, { firingSources: firing, heldSources: held, staleSources: stale, incidents })) continue;
    prev.firingSources = firing;
    prev.heldSources = held;
    prev.staleSources = stale;
    prev.incidents = incidents;
    refreshHealth(ctx, side, true);
  }
}

/** Recomputes a side's health from its stored sources; audits any change (rule 8: always recorded). */
function refreshHealth(ctx: Ctx, side: Side, sourcesChanged: boolean): void {
  const s = ctx.s;
  const st = s.sides[side];
  const health = healthOf(st.firingSources, st.heldSources, s.policy.quorum, st.staleSources);
  const changed = health !== st.health;
  if (!changed && !sourcesChanged) return;
  const seq = audit(ctx, changed ? "side.health-changed" : "side.sources-changed", {
    side,
    health,
    previous: st.health,
    firingSources: st.firingSources,
    heldSources: st.heldSources,
    ...(st.staleSources.length > 0 ? { staleSources: st.staleSources } : {}),
    ...(st.incidents.length > 0 ? { incidents: st.incidents } : {}),
    active: side === s.activeSide,
  });
  if (!changed) return;
  const wasDown = st.health === "down";
  st.health = health;
  st.since = ctx.now;
  st.upSince = health === "up" ? ctx.now : null;
  st.healthCause = seq;
  if (side === s.activeSide && wasDown !== (health === "down")) activeTransition(ctx, seq);
  // Rule 12: `failed` keeps watching, and says so when the active side goes down meanwhile.
  if (side === s.activeSide && health === "down" && s.phase === "failed") {
    notify(
      ctx,
      "alert",
      `${side} (active) is DOWN while the target is failed after ${s.action?.id ?? "its last action"}: automatic action is off until retry, revert or cancel`,
    );
  }
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

// ---------------------------------------------------------------------------------------------
// Configuration (rule 15: configuration is not a command)

function configure(ctx: Ctx, cfg: Extract<ParsedMachineInput, { type: "config" }>): void {
  const s = ctx.s;
  const drill: DrillConfig | null = cfg.drill ?? null;
  const returning = !s.configured;
  const agents = cfg.agents ?? { primary: "default", secondary: "default" };
  const agentsEdited = s.sideAgents.primary !== agents.primary || s.sideAgents.secondary !== agents.secondary;
  const same =
    !returning &&
    !agentsEdited &&
    JSON.stringify(s.policy) === JSON.stringify(cfg.policy) &&
    s.configuredInitialSide === cfg.initialActiveSide &&
    JSON.stringify(s.drillConfig) === JSON.stringify(drill);
  if (same) return;
  const sideEdited = s.configuredInitialSide !== cfg.initialActiveSide;
  audit(ctx, returning ? "target.configured" : "config.changed", {
    policy: cfg.policy as unknown as Json,
    initialActiveSide: cfg.initialActiveSide,
    drill: drill as unknown as Json,
    // The side a target starts on is read once: editing it never switches a target with state.
    ...(sideEdited ? { initialActiveSideApplies: false, activeSide: s.activeSide, homeSide: s.homeSide } : {}),
    // Design §11.6: an edit moves only actions committed after it; the current one keeps its agent.
    ...(agentsEdited ? { agents, ...(s.action ? { actionAgent: s.action.agent } : {}) } : {}),
  });
  s.sideAgents = { ...agents };
  s.policy = cfg.policy;
  s.configuredInitialSide = cfg.initialActiveSide;
  s.drillConfig = drill;
  if (returning) {
    s.configured = true;
    // Whatever was held before the target left is old evidence: a pending failover holds anew.
    if (s.phase === "pending") s.pendingSince = ctx.now;
    notify(ctx, "phase", "back in the configuration: automatic policy active again");
  }
  // A quorum change can change health without any new signal.
  refreshHealth(ctx, "primary", false);
  refreshHealth(ctx, "secondary", false);
}

/** Rule 15: the target left the config; audited and notified once, then nothing acts. */
function unconfigure(ctx: Ctx): void {
  const s = ctx.s;
  if (!s.configured) return;
  s.configured = false;
  audit(ctx, "target.unconfigured", { phase: s.phase, activeSide: s.activeSide });
  notify(
    ctx,
    "alert",
    `no longer in the configuration: it takes no automatic action (state kept; add it back to resume)`,
  );
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
  /** When the running hold ends (pending only). */
  holdUntil: string | null;
  /** Why a pending failover past its hold waits (§5 rules 2, 3, 14, 17), or null. */
  blocked: Blocker | null;
  /** Each side's agent and whether it is silent (rule 17). */
  agents?: Record<Side, { name: string; silent: boolean }>;
  /** The incidents dismissed by `cancel` or an expired approval (rule 10), or null. */
  dismissed: { kind: "failover" | "failback"; incidents: string[] } | null;
  /** False while the target is missing from the configuration (rule 15). */
  configured: boolean;
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
    /** The plan steps approved so far, with who approved each and when (design §11.2). */
    approvals?: { step: string; by: string; at: string }[];
    /** The agent it was dispatched to (recorded at commit). */
    agent?: string;
    error?: { code: string; message: string };
  } | null;
  autoActionsLast24h: number;
  lastDrill: MachineState["lastDrill"];
  /**
   * Plan steps skipped by `ifUnreachable: "skip"` and still owed (design §11.6), oldest first:
   * `detail` is the agent's word on why it was skipped.
   */
  owed?: { action: string; step: string; since: string; detail?: string }[];
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
    holdUntil: state.pendingSince === null ? null : iso(state.pendingSince + sec(state.policy.holdSeconds)),
    blocked: state.blocked,
    agents: {
      primary: { name: state.sideAgents.primary, silent: agentSilent(state, "primary") },
      secondary: { name: state.sideAgents.secondary, silent: agentSilent(state, "secondary") },
    },
    dismissed: state.dismissed,
    configured: state.configured,
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
            approvals: (a.approvals ?? []).map((x) => ({ step: x.step, by: x.by, at: new Date(x.at).toISOString() })),
            agent: a.agent,
            ...(a.error ? { error: a.error } : {}),
          },
    autoActionsLast24h: budgetUsed(state, now).length,
    lastDrill: state.lastDrill,
    owed: (state.owed ?? []).map((o) => ({
      action: o.action,
      step: o.step,
      since: new Date(o.since).toISOString(),
      ...(o.detail === undefined ? {} : { detail: o.detail }),
    })),
  };
}
