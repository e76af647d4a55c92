/**
 * The worker ↔ agent protocol (design §6): ActionRequest and ActionReport.
 */
import { z } from "zod";
import { SideSchema } from "./config.ts";

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
});
export type ActionRequest = z.infer<typeof ActionRequestSchema>;

export const StepStatusSchema = z.enum(["pending", "running", "succeeded", "failed", "skipped"]);
export type StepStatus = z.infer<typeof StepStatusSchema>;

export const StepReportSchema = z.object({
  name: z.string().min(1),
  status: StepStatusSchema,
  startedAt: z.iso.datetime({ offset: true }).optional(),
  finishedAt: z.iso.datetime({ offset: true }).optional(),
  detail: z.string().optional(),
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

// Kept in a module without zod so the CLI can read durations without loading the schemas.
export { stepDurationMs } from "./step-duration.ts";
