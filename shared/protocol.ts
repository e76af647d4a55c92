/**
 * The worker ↔ agent protocol (design §6): ActionRequest and ActionReport.
 */
import { z } from "zod";
import { DEFAULT_AGENT_NAME, SideSchema } from "./config.ts";

/** An agent's name (design §11.1): the `Turnout-Agent` header, `agents.<name>`, the request's `agent`. */
export const AgentNameSchema = z
  .string()
  .regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, "expected a DNS label, e.g. agent-a");
export type AgentName = z.infer<typeof AgentNameSchema>;
/** The agent a request, report or heartbeat without a name belongs to. */
export const DEFAULT_AGENT = DEFAULT_AGENT_NAME;
/** The header an agent names itself with on every report, heartbeat and answer (design §11.1); absent means `default`. */
export const AGENT_HEADER = "Turnout-Agent";

export const ActionKindSchema = z.enum(["failover", "failback", "drill"]);
export type ActionKind = z.infer<typeof ActionKindSchema>;

/** `<target>:<epoch>` (design §5 rule 5). */
export const ActionIdSchema = z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}:\d+$/, "expected <target>:<epoch>");

export const ActionRequestSchema = z.object({
  id: ActionIdSchema,
  target: z.string().min(1),
  kind: ActionKindSchema,
  from: SideSchema,
  to: SideSchema,
  dryRun: z.boolean().default(false),
  force: z.boolean().default(false),
  reason: z.string().max(2000).default(""),
  issuedAt: z.iso.datetime({ offset: true }),
  /** The agent the action is addressed to (design §11.1); absent means `default`. */
  agent: AgentNameSchema.optional(),
});
export type ActionRequest = z.infer<typeof ActionRequestSchema>;

/** `waiting`: a plan's approval step waits for a person (design §11.6). */
export const StepStatusSchema = z.enum(["pending", "running", "waiting", "succeeded", "failed", "skipped"]);
export type StepStatus = z.infer<typeof StepStatusSchema>;

export const StepReportSchema = z.object({
  name: z.string().min(1),
  status: StepStatusSchema,
  startedAt: z.iso.datetime({ offset: true }).optional(),
  finishedAt: z.iso.datetime({ offset: true }).optional(),
  detail: z.string().optional(),
  /** The parallel group a plan step belongs to (design §11.6). */
  group: z.string().min(1).optional(),
  /** On a `waiting` approval step: what the person approves, and until when. */
  approval: z.object({ message: z.string(), deadline: z.iso.datetime({ offset: true }) }).optional(),
});
export type StepReport = z.infer<typeof StepReportSchema>;

export const ReportStatusSchema = z.enum(["running", "succeeded", "failed"]);
export type ReportStatus = z.infer<typeof ReportStatusSchema>;

export const ActionReportSchema = z.object({
  actionId: ActionIdSchema,
  target: z.string().min(1),
  status: ReportStatusSchema,
  activeSide: SideSchema.optional(),
  dryRun: z.boolean().default(false),
  steps: z.array(StepReportSchema).default([]),
  error: z.object({ code: z.string(), message: z.string() }).optional(),
  at: z.iso.datetime({ offset: true }),
});
export type ActionReport = z.infer<typeof ActionReportSchema>;

/** `POST <agent>/v1/actions/:id/approvals` (design §11.2, §11.6): the path's id equals `actionId`. */
export const ApprovalRequestSchema = z.object({
  actionId: ActionIdSchema,
  step: z.string().min(1),
  /** The identity that approved (never a name from a request body). */
  by: z.string().min(1),
});
export type ApprovalRequest = z.infer<typeof ApprovalRequestSchema>;

/** One readiness check of a target toward a side (design §11.3). */
export const ReadinessCheckSchema = z.object({
  name: z.string().min(1),
  ok: z.boolean(),
  /** About the side the switch goes to: only these decide `ready`; the rest are advisory. */
  destination: z.boolean(),
  detail: z.string().default(""),
});
export type ReadinessCheck = z.infer<typeof ReadinessCheckSchema>;

/** A target's readiness toward one side, as its agent evaluated it. */
export const SideReadinessSchema = z.object({
  ready: z.boolean(),
  at: z.iso.datetime({ offset: true }),
  checks: z.array(ReadinessCheckSchema).default([]),
  /** Whether the active side still matches its state (a plan's `expect[active]`, a saved spec). */
  drift: z.object({ ok: z.boolean(), detail: z.string().default("") }).optional(),
});
export type SideReadiness = z.infer<typeof SideReadinessSchema>;

/** `{"<target>": {"<to side>": SideReadiness}}`. */
export const ReadinessReportSchema = z.record(z.string(), z.partialRecord(SideSchema, SideReadinessSchema));
export type ReadinessReport = z.infer<typeof ReadinessReportSchema>;

/** `POST <worker>/v1/agent/heartbeats` (design §11.1), signed with the agent's own key. */
export const HeartbeatSchema = z.object({
  agent: AgentNameSchema,
  version: z.string().default(""),
  mode: z.enum(["sandbox", "cluster"]),
  pod: z.string().min(1),
  /** The Lease holder's pod name; only a heartbeat whose `pod` is its `leader` makes the agent heard. */
  leader: z.string().nullable(),
  at: z.iso.datetime({ offset: true }),
  /** `{"<target>": "<sha256 of its agent config>"}`: the targets this agent serves. */
  targets: z.record(z.string(), z.string()).default({}),
  readiness: ReadinessReportSchema.optional(),
});
export type Heartbeat = z.infer<typeof HeartbeatSchema>;

/** The worker's answer to a heartbeat: which sides of which targets it sends this agent. */
export const HeartbeatAnswerSchema = z.object({
  serves: z.record(z.string(), z.array(SideSchema)),
});
export type HeartbeatAnswer = z.infer<typeof HeartbeatAnswerSchema>;

// Kept in a module without zod so the CLI can read durations without loading the schemas.
export { stepDurationMs } from "./step-duration.ts";
