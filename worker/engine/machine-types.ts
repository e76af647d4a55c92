/**
 * Schemas of the decision engine (design §5): its persisted state, its inputs and its effects.
 * Types are inferred from these schemas; the Durable Object re-validates the state row it reads
 * back with {@link MachineStateSchema} and every input it builds from outside data.
 */
import { z } from "zod";
import { DrillSchema, PolicySchema, SideSchema } from "../../shared/config.ts";
import { ActionIdSchema, ActionKindSchema, ActionReportSchema, StepReportSchema } from "../../shared/protocol.ts";

/** Epoch milliseconds; time is always an input (style.md §5). */
const Ms = z.number().int();
const Seq = z.number().int().min(0);

export const PhaseSchema = z.enum(["steady", "pending", "awaiting_approval", "executing", "failed"]);
export type Phase = z.infer<typeof PhaseSchema>;

/** A target's configured drill (`targets.<name>.drill`, design §5b). */
export type DrillConfig = z.infer<typeof DrillSchema>;

/**
 * A side's health for the rules: `down` when firing (or held) signals come from at least `quorum`
 * distinct sources, `up` when nothing fires, `unknown` when something fires below quorum (neither
 * down nor up: not a failover trigger, and not an "up" side to fail over to automatically).
 */
export const MachineHealthSchema = z.enum(["up", "down", "unknown"]);
export type MachineHealth = z.infer<typeof MachineHealthSchema>;

export const SideStateSchema = z
  .object({
    health: MachineHealthSchema,
    /** Sources with firing, non-soft, non-held, fresh signals (these alone trigger automatic action). */
    firingSources: z.array(z.string()),
    /** Sources whose firing signals are held by a Nagios flapping/downtime notice. */
    heldSources: z.array(z.string()),
    /** Sources whose only firing signals are stale (§4): not down evidence, not "up" either. */
    staleSources: z.array(z.string()),
    /** The incidents (key + start) firing fresh on the side: dismissal is per incident (rule 10). */
    incidents: z.array(z.string()),
    /** When `health` last changed. */
    since: Ms.nullable(),
    /** When the side last became `up` (null while not up); drives the auto-failback soak. */
    upSince: Ms.nullable(),
    /** Seq of the audit event that recorded the last health change. */
    healthCause: Seq.nullable(),
  })
  .strict();
export type SideState = z.infer<typeof SideStateSchema>;

/** Who started an action; automatic and approved actions count against the daily budget. */
export const TriggerSchema = z.enum(["automatic", "approved", "manual", "drill"]);
export type Trigger = z.infer<typeof TriggerSchema>;

export const ActionStatusSchema = z.enum(["dispatching", "running", "succeeded", "failed"]);
export type ActionStatus = z.infer<typeof ActionStatusSchema>;

/** One approved plan step: which, by whom (the authenticated identity), when. */
export const StepApprovalSchema = z.object({ step: z.string().min(1), by: z.string(), at: Ms }).strict();
export type StepApproval = z.infer<typeof StepApprovalSchema>;

export const ActionStateSchema = z
  .object({
    id: ActionIdSchema,
    kind: ActionKindSchema,
    from: SideSchema,
    to: SideSchema,
    dryRun: z.boolean(),
    force: z.boolean(),
    trigger: TriggerSchema,
    status: ActionStatusSchema,
    reason: z.string(),
    actor: z.string().optional(),
    /** The request's `issuedAt`; re-dispatches re-send the identical request. */
    issuedAt: Ms,
    /** First dispatch; recovery time is measured from here to the `succeeded` report. */
    dispatchedAt: Ms,
    finishedAt: Ms.nullable(),
    /** Dispatch effects emitted for this id (first send, delivery retries, re-dispatches). */
    attempts: z.number().int().min(1),
    /** Consecutive failed deliveries (reset by a successful one). */
    deliveryFailures: z.number().int().min(0),
    /** Re-dispatches after `actionTimeoutSeconds` without a report. */
    redispatches: z.number().int().min(0),
    /**
     * `delivery`: no delivery result recorded yet (rule 16: re-send 15 s after commit);
     * `retry`: deliver again (backoff after a failed delivery); `timeout`: no report by then.
     */
    deadline: Ms.nullable(),
    deadlineKind: z.enum(["delivery", "retry", "timeout"]).nullable(),
    /** When the current attempt times out without a report (`actionTimeoutSeconds` after the send). */
    timeoutAt: Ms.nullable(),
    steps: z.array(StepReportSchema),
    /**
     * A plan's approval steps approved so far (design §11.2): each forwarded once to the agent; a
     * second approval of the same step is refused. Absent on rows written before plans.
     */
    approvals: z.array(StepApprovalSchema).optional(),
    error: z.object({ code: z.string(), message: z.string() }).strict().optional(),
    /** Seq of the `action.dispatched` event: the cause of everything that follows. */
    cause: Seq,
    /**
     * The agent that runs it, recorded when it was committed (design §11.6): re-sends, approvals
     * and a `revert` go to it, never to one recomputed from a config edited since.
     */
    agent: z.string().min(1),
    /** Whether its agent has said it is over (a final report, or a 421 refusal): until then no other agent gets an action. */
    settledByAgent: z.boolean(),
  })
  .strict();
export type ActionState = z.infer<typeof ActionStateSchema>;

/** A proposed automatic switch waiting for `approve` (policy `approval: required`). */
export const ApprovalSchema = z
  .object({
    kind: z.enum(["failover", "failback"]),
    from: SideSchema,
    to: SideSchema,
    reason: z.string(),
    requestedAt: Ms,
    deadline: Ms,
    cause: Seq,
  })
  .strict();
export type Approval = z.infer<typeof ApprovalSchema>;

/** One measured switch of a drill: dispatch → `succeeded` report. */
export const DrillSwitchSchema = z
  .object({
    actionId: ActionIdSchema,
    kind: ActionKindSchema,
    from: SideSchema,
    to: SideSchema,
    dispatchedAt: Ms,
    finishedAt: Ms.nullable(),
    recoveryMs: z.number().int().min(0).nullable(),
    ok: z.boolean().nullable(),
    steps: z.array(z.object({ name: z.string(), status: z.string(), durationMs: z.number().nullable() }).strict()),
  })
  .strict();
export type DrillSwitch = z.infer<typeof DrillSwitchSchema>;

export const DrillStateSchema = z
  .object({
    mode: z.enum(["dry-run", "live"]),
    /** dry-run: one dry-run action; live: fail over → hold → fail back. */
    stage: z.enum(["dry-run", "failing-over", "holding", "failing-back"]),
    startedAt: Ms,
    /** The side the live drill returns to. */
    homeSide: SideSchema,
    holdUntil: Ms.nullable(),
    switches: z.array(DrillSwitchSchema),
    actor: z.string().optional(),
    cause: Seq,
  })
  .strict();
export type DrillState = z.infer<typeof DrillStateSchema>;

export const DrillResultSchema = z
  .object({
    mode: z.enum(["dry-run", "live"]),
    ok: z.boolean(),
    /** completed, failed, or aborted (a real signal, a pause or a cancel ended it). */
    outcome: z.enum(["completed", "failed", "aborted"]),
    startedAt: Ms,
    finishedAt: Ms,
    switches: z.array(DrillSwitchSchema),
    detail: z.string(),
  })
  .strict();
export type DrillResult = z.infer<typeof DrillResultSchema>;

/** Why a pending failover whose hold has elapsed is not executing yet. */
export const BlockerSchema = z.enum([
  "both-sides-down",
  "other-side-not-up",
  /** The other side's only firing signals are stale: its health is unknown (§4 staleness). */
  "other-side-stale",
  /** The other side is up, but for less than `riseSeconds` (rule 14). */
  "other-side-rising",
  "paused",
  "flapping",
  "cooldown",
  "budget",
  /** Rule 17: the destination side's agent is silent (and did not answer the probe). */
  "agent-silent",
  /** Design §11.6: the last action's agent has not said it is over, and this one would go to another agent. */
  "agent-unfinished",
  /** Design §11.6: a plan step skipped by `ifUnreachable: "skip"` is still owed; an automatic failback waits. */
  "owed-steps",
  /** Design §11.3, `policy.requireReady`: the destination was not ready at the start of the hold. */
  "not-ready",
]);
export type Blocker = z.infer<typeof BlockerSchema>;

/** A dismissal (rule 10): one automatic switch kind, for the incidents firing when it was made. */
export const DismissalSchema = z
  .object({
    kind: z.enum(["failover", "failback"]),
    /** The active side's incidents at the moment of dismissal; a new one starts a new hold. */
    incidents: z.array(z.string()),
  })
  .strict();
export type Dismissal = z.infer<typeof DismissalSchema>;

/**
 * A plan step an agent still owes (design §11.6): reported `owed` (skipped because its cluster did
 * not answer), kept until a later report of the same action says it ran.
 */
export const OwedStepSchema = z
  .object({
    action: ActionIdSchema,
    step: z.string().min(1),
    since: Ms,
    agent: z.string().min(1),
    /** The agent's detail when it skipped it ("owed: cluster … does not answer; …"). */
    detail: z.string().optional(),
  })
  .strict();
export type OwedStep = z.infer<typeof OwedStepSchema>;
/** A readiness state as the engine and the view say it (design §11.3). */
export const ReadinessStateSchema = z.enum(["ready", "not-ready"]);
export type ReadinessState = z.infer<typeof ReadinessStateSchema>;

/**
 * One side's readiness as the engine knows it (design §11.3): the latest evaluation toward it,
 * the one before (two in a row must agree before anything is said), and what was last agreed.
 */
export const SideReadinessFactSchema = z
  .object({
    state: ReadinessStateSchema,
    /** When the agent evaluated it. */
    at: Ms,
    /** Past this (`at` + 2 × `readiness.intervalSeconds`) it is unknown: shown, never blocking. */
    validUntil: Ms,
    /** The destination checks that failed (names), or `agent-lacks-target` / `agent-mode`. */
    failing: z.array(z.string()),
    /** Whether the active side no longer matches its state (reported with this evaluation); null: not said. */
    drifted: z.boolean().nullable(),
    driftDetail: z.string(),
    /** The evaluation before this one; null: this is the first. */
    previous: z.object({ state: ReadinessStateSchema, drifted: z.boolean().nullable() }).strict().nullable(),
    /** What two evaluations in a row last agreed on; null: never yet. */
    agreed: z.object({ state: ReadinessStateSchema.nullable(), drifted: z.boolean().nullable() }).strict(),
  })
  .strict();
export type SideReadinessFact = z.infer<typeof SideReadinessFactSchema>;

/** What the target last announced of its readiness and of the active side's drift (once per change). */
export const ReadinessAnnouncedSchema = z.object({ lost: z.boolean(), drifted: z.boolean() }).strict();

/** The destination's readiness at the start of the running hold (rule for `policy.requireReady`). */
export const HoldReadinessSchema = z
  .object({ to: SideSchema, state: z.enum(["ready", "not-ready", "unknown"]), failing: z.array(z.string()) })
  .strict();
export type HoldReadiness = z.infer<typeof HoldReadinessSchema>;

/** The persisted state of one target's decision engine (one JSON row in its Durable Object). */
/** What the engine knows of one agent's liveness (rule 17): silent or heard, as of `at`. */
export const AgentLivenessSchema = z.object({ silent: z.boolean(), at: Ms }).strict();
export type AgentLiveness = z.infer<typeof AgentLivenessSchema>;

/** The probe of a silent destination agent before a failover is blocked (rule 17): once per hold. */
export const AgentProbeSchema = z.object({ agent: z.string(), at: Ms, answered: z.boolean().nullable() }).strict();

export const MachineStateSchema = z
  .object({
    version: z.literal(3),
    target: z.string().min(1),
    /** The last audit seq used; the next audit event gets seq + 1. */
    seq: Seq,
    policy: PolicySchema,
    /** Where auto/manual failback returns to: the initial active side when the state was created. */
    homeSide: SideSchema,
    /** The configured `initialActiveSide` last seen; editing it never switches a target with state (rule 15). */
    configuredInitialSide: SideSchema,
    /** False while the target is missing from the config: it then takes no action (rule 15). */
    configured: z.boolean(),
    drillConfig: DrillSchema.nullable(),
    activeSide: SideSchema,
    phase: PhaseSchema,
    paused: z.boolean(),
    flapping: z.boolean(),
    flappingSince: Ms.nullable(),
    /** Up/down changes of the active side (pruned to the flap window when one is added). */
    flapTransitions: z.array(Ms),
    /** The last up/down change of the active side, or the last switch; flapping releases a window later. */
    lastActiveTransitionAt: Ms.nullable(),
    flappingCause: Seq.nullable(),
    cooldownUntil: Ms.nullable(),
    pendingSince: Ms.nullable(),
    pendingCause: Seq.nullable(),
    /** Why a pending failover past its hold waits (audited once per reason). */
    blocked: BlockerSchema.nullable(),
    approval: ApprovalSchema.nullable(),
    /**
     * Set by `cancel` or an expired approval (rule 10): no automatic `failover` for the incidents
     * dismissed (a new incident starts a new hold; the dismissal lapses when the active side stops
     * being down), no automatic `failback` until the home side stops being up.
     */
    dismissed: DismissalSchema.nullable(),
    epoch: z.number().int().min(0),
    /** The current (phase executing/failed) or last action. */
    action: ActionStateSchema.nullable(),
    /** Dispatch times of automatic/approved actions (pruned to 24 h when one is added). */
    autoActions: z.array(Ms),
    sides: z.object({ primary: SideStateSchema, secondary: SideStateSchema }).strict(),
    drill: DrillStateSchema.nullable(),
    lastDrill: DrillResultSchema.nullable(),
    /** The agent each side's actions go to, as the config last said (`sides.<side>.agent`). */
    sideAgents: z.object({ primary: z.string(), secondary: z.string() }).strict(),
    /** The liveness of agents as last heard of (rule 17); an agent absent here is taken as heard. */
    agentLiveness: z.record(z.string(), AgentLivenessSchema),
    /** The probe under way or done in this hold (rule 17), cleared when the phase leaves pending. */
    probe: AgentProbeSchema.nullable(),
    /** Plan steps owed by the latest action(s), oldest first; absent on rows written before plans. */
    owed: z.array(OwedStepSchema).optional(),
    /** Each side's readiness (design §11.3); absent until an agent reported any. */
    readiness: z
      .object({ primary: SideReadinessFactSchema.nullable(), secondary: SideReadinessFactSchema.nullable() })
      .strict()
      .optional(),
    readinessAnnounced: ReadinessAnnouncedSchema.optional(),
    /** The destination's readiness when the running hold started (read only while pending). */
    holdReadiness: HoldReadinessSchema.nullable().optional(),
  })
  .strict();
export type MachineState = z.infer<typeof MachineStateSchema>;

// ---------------------------------------------------------------------------------------------
// Inputs

/** Seq of the audit event (written by the shell) that caused this input, e.g. the signal. */
const Cause = Seq.optional();

export const SideObservationInputSchema = z.object({
  firingSources: z.array(z.string()),
  heldSources: z.array(z.string()),
  staleSources: z.array(z.string()).default([]),
  incidents: z.array(z.string()).default([]),
});

export const CommandNameSchema = z.enum([
  "failover",
  "failback",
  "approve",
  "cancel",
  "pause",
  "resume",
  "drill",
  "retry",
  "revert",
]);
export type CommandName = z.infer<typeof CommandNameSchema>;

export const MachineInputSchema = z.discriminatedUnion("type", [
  z.object({
    type: z.literal("observed"),
    sides: z.object({ primary: SideObservationInputSchema, secondary: SideObservationInputSchema }),
    cause: Cause,
  }),
  z.object({ type: z.literal("timer"), cause: Cause }),
  z.object({
    type: z.literal("command"),
    command: CommandNameSchema,
    force: z.boolean().optional(),
    actor: z.string().optional(),
    /** A request body's `actor` (design §3a): audited beside the authenticated identity. */
    onBehalfOf: z.string().max(200).optional(),
    reason: z.string().max(2000).optional(),
    /** `drill` only: overrides the configured drill mode. */
    mode: z.enum(["dry-run", "live"]).optional(),
    /** `approve` only: the plan step waiting for approval (design §11.2); absent approves a switch. */
    step: z.string().min(1).max(200).optional(),
    cause: Cause,
  }),
  z.object({
    type: z.literal("report"),
    report: ActionReportSchema,
    /** The agent that signed it (`Turnout-Agent`); a report for another agent's action is refused. */
    agent: z.string().optional(),
    cause: Cause,
  }),
  z.object({
    type: z.literal("dispatch-result"),
    /** The id the shell tried to deliver; a result for another id is ignored. */
    actionId: ActionIdSchema.optional(),
    ok: z.boolean(),
    error: z.string().optional(),
    /** How it was delivered (e.g. "published to QStash as … (deduplicated)"), for the audit log. */
    detail: z.string().optional(),
    /**
     * The transport gave up for good (QStash's failure callback: its own retries are spent, and a
     * re-publish under the same deduplication id would be swallowed): the action fails at once.
     */
    final: z.boolean().optional(),
    /** The receiver asked to wait this long before the next attempt (HTTP Retry-After). */
    retryAfterMs: z.number().int().min(0).optional(),
    /** `wrong-agent`: the agent refused an action addressed to another name (421, final). */
    code: z.literal("wrong-agent").optional(),
    cause: Cause,
  }),
  z.object({
    type: z.literal("config"),
    policy: PolicySchema,
    initialActiveSide: SideSchema.default("primary"),
    drill: DrillSchema.nullish(),
    /** Each side's agent (`sides.<side>.agent`); absent: both `default`. */
    agents: z.object({ primary: z.string(), secondary: z.string() }).optional(),
    cause: Cause,
  }),
  /**
   * An agent's liveness changed (rule 17), as of `at` (the heartbeat's signed time, or when its
   * silence was noticed). `announce`: this target carries the one notification of the transition.
   */
  z.object({
    type: z.literal("agent"),
    agent: z.string().min(1),
    silent: z.boolean(),
    at: z.number().int(),
    /** Not heard since (for the sentence); null: never heard. */
    lastHeardAt: z.number().int().nullable().optional(),
    announce: z.boolean().optional(),
    cause: Cause,
  }),
  /**
   * A new readiness evaluation toward `side` (design §11.3), from that side's agent, with its time;
   * the shell turns `agent-lacks-target` and `agent-mode` into a not-ready one of its own.
   */
  z.object({
    type: z.literal("readiness"),
    side: SideSchema,
    state: ReadinessStateSchema,
    at: z.number().int(),
    validUntil: z.number().int(),
    failing: z.array(z.string()).default([]),
    drift: z.object({ ok: z.boolean(), detail: z.string().default("") }).optional(),
    cause: Cause,
  }),
  /** The answer to a `probe` effect (rule 17): `ok` means the agent answered, which counts as heard. */
  z.object({ type: z.literal("probe-result"), agent: z.string().min(1), ok: z.boolean(), cause: Cause }),
  /** The target vanished from the config (rule 15): no action until it returns. */
  z.object({ type: z.literal("unconfigured"), cause: Cause }),
]);
export type MachineInput = z.input<typeof MachineInputSchema>;
export type ParsedMachineInput = z.infer<typeof MachineInputSchema>;

// ---------------------------------------------------------------------------------------------
// Effects

export const AuditEventSchema = z
  .object({
    seq: z.number().int().min(1),
    at: Ms,
    type: z.string().regex(/^[a-z][a-z-]*(\.[a-z-]+)*$/),
    detail: z.record(z.string(), z.json()),
    cause: Seq.optional(),
  })
  .strict();
export type AuditEvent = z.infer<typeof AuditEventSchema>;

export const NotifyKindSchema = z.enum(["phase", "action", "approval", "drill", "alert"]);
export type NotifyKind = z.infer<typeof NotifyKindSchema>;

export const EffectSchema = z.discriminatedUnion("type", [
  z.object({
    type: z.literal("dispatch"),
    request: z.object({
      id: ActionIdSchema,
      target: z.string(),
      kind: ActionKindSchema,
      from: SideSchema,
      to: SideSchema,
      dryRun: z.boolean(),
      force: z.boolean(),
      reason: z.string(),
      issuedAt: z.string(),
      agent: z.string().optional(),
    }),
  }),
  z.object({
    type: z.literal("notify"),
    text: z.string(),
    kind: NotifyKindSchema,
    /** An `approval` notice of a plan step waiting for a person: the step (Slack shows its button). */
    step: z.string().optional(),
    /** Groups notices of one subject across targets (e.g. `turnout/agent/<name>`, design §11.6). */
    key: z.string().optional(),
  }),
  /** Rule 17: ask the agent's `GET /healthz` once before blocking on its silence; feed a `probe-result`. */
  z.object({ type: z.literal("probe"), agent: z.string() }),
  z.object({ type: z.literal("setTimer"), at: Ms.nullable() }),
  z.object({ type: z.literal("audit"), event: AuditEventSchema }),
]);
export type Effect = z.infer<typeof EffectSchema>;

/** What {@link decide} returns; `rejected` is set for a refused command (HTTP 409 detail). */
export interface Decision {
  state: MachineState;
  effects: Effect[];
  rejected?: string;
  /** For a command that went: what the person must know (a silent agent, an unfinished agent's action). */
  warnings?: string[];
}

// ---------------------------------------------------------------------------------------------
// Stored rows of older versions

const V1_SIDE = { staleSources: [] as string[], incidents: [] as string[] };

/**
 * Reads a stored machine state of any version this code knows. Version 2 added
 * staleness, per-incident dismissal, configuration tracking and the delivery deadline; a version 1
 * row is upgraded with the values that keep its behaviour.
 */
export function upgradeMachineState(raw: unknown): MachineState {
  return upgradeV2(upgradeV1(raw));
}

/**
 * Version 3 (agents on every side, design §11.1) records the agent on each action and the
 * liveness of agents. Rows before it knew one agent, `default`; an action that ended by report is
 * settled by its agent, one that the worker gave up on is not (its agent never said).
 */
function upgradeV2(raw: unknown): MachineState {
  const r = raw as Record<string, unknown> | null;
  if (r === null || typeof r !== "object" || r.version !== 2) return MachineStateSchema.parse(raw);
  const action = r.action as Record<string, unknown> | null;
  const gaveUp = ["dispatch-failed", "action-timeout", "abandoned"];
  const code = (action?.error as { code?: string } | undefined)?.code;
  return MachineStateSchema.parse({
    ...r,
    version: 3,
    sideAgents: { primary: "default", secondary: "default" },
    agentLiveness: {},
    probe: null,
    action:
      action === null
        ? null
        : {
            ...action,
            agent: "default",
            settledByAgent:
              action.status === "succeeded" || (action.status === "failed" && !gaveUp.includes(code ?? "")),
          },
  });
}

function upgradeV1(raw: unknown): unknown {
  const r = raw as Record<string, unknown> | null;
  if (r !== null && typeof r === "object" && r.version === 1) {
    const sides = r.sides as Record<string, Record<string, unknown>>;
    const action = r.action as Record<string, unknown> | null;
    const dismissed = r.dismissed as string | null;
    // Validated once, at the end of the upgrade chain.
    return {
      ...r,
      version: 2,
      configuredInitialSide: r.homeSide,
      configured: true,
      dismissed: dismissed === null ? null : { kind: dismissed, incidents: [] },
      sides: {
        primary: { ...sides.primary, ...V1_SIDE },
        secondary: { ...sides.secondary, ...V1_SIDE },
      },
      action:
        action === null ? null : { ...action, timeoutAt: action.deadlineKind === "timeout" ? action.deadline : null },
    };
  }
  return raw;
}
