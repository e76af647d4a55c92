/**
 * Opsgenie Alert API (docs.opsgenie.com/docs/alert-api): `POST /v2/alerts` (create) and
 * `POST /v2/alerts/:identifier/close?identifierType=alias` (close), with
 * `Authorization: GenieKey <key>`; both answer 202 `{result: "Request will be processed", took,
 * requestId}`. The field limits are the documented ones.
 */
import { z } from "zod";

const Responder = z
  .object({
    type: z.enum(["team", "user", "escalation", "schedule"]),
    id: z.string().optional(),
    name: z.string().optional(),
    username: z.string().optional(),
  })
  .strict();

export const OpsgenieCreateAlertSchema = z
  .object({
    message: z.string().min(1).max(130),
    alias: z.string().max(512).optional(),
    description: z.string().max(15_000).optional(),
    responders: z.array(Responder).max(50).optional(),
    visibleTo: z.array(Responder).max(50).optional(),
    actions: z.array(z.string().max(50)).max(10).optional(),
    tags: z.array(z.string().max(50)).max(20).optional(),
    details: z
      .record(z.string(), z.string())
      .refine((d) => JSON.stringify(d).length <= 8000, "details are limited to 8000 characters")
      .optional(),
    entity: z.string().max(512).optional(),
    source: z.string().max(100).optional(),
    priority: z.enum(["P1", "P2", "P3", "P4", "P5"]).optional(),
    user: z.string().max(100).optional(),
    note: z.string().max(25_000).optional(),
  })
  .strict();
export type OpsgenieCreateAlert = z.infer<typeof OpsgenieCreateAlertSchema>;

export const OpsgenieCloseAlertSchema = z
  .object({
    user: z.string().max(100).optional(),
    source: z.string().max(100).optional(),
    note: z.string().max(25_000).optional(),
  })
  .strict();
export type OpsgenieCloseAlert = z.infer<typeof OpsgenieCloseAlertSchema>;
