/**
 * PagerDuty Events API v2 `POST https://events.pagerduty.com/v2/enqueue`, as PagerDuty documents
 * it ("Send an Alert Event", developer.pagerduty.com): the receivers of the paging tests validate
 * every request against it and answer as PagerDuty does (202 `{status: "success", message:
 * "Event processed", dedup_key}`, or 400 `{status: "invalid event", …, errors}`).
 */
import { z } from "zod";

const Link = z.object({ href: z.url(), text: z.string().optional() }).strict();
const Image = z.object({ src: z.url(), href: z.url().optional(), alt: z.string().optional() }).strict();

const Payload = z
  .object({
    summary: z.string().min(1).max(1024),
    source: z.string().min(1),
    severity: z.enum(["critical", "error", "warning", "info"]),
    timestamp: z.iso.datetime({ offset: true }).optional(),
    component: z.string().optional(),
    group: z.string().optional(),
    class: z.string().optional(),
    custom_details: z.record(z.string(), z.unknown()).optional(),
  })
  .strict();

const Common = {
  // Integration keys are 32 characters.
  routing_key: z.string().length(32),
  dedup_key: z.string().min(1).max(255),
  images: z.array(Image).optional(),
  links: z.array(Link).optional(),
  client: z.string().optional(),
  client_url: z.url().optional(),
};

export const PagerDutyEnqueueSchema = z.discriminatedUnion("event_action", [
  z
    .object({ event_action: z.literal("trigger"), ...Common, dedup_key: Common.dedup_key.optional(), payload: Payload })
    .strict(),
  z.object({ event_action: z.literal("acknowledge"), ...Common, payload: Payload.optional() }).strict(),
  z.object({ event_action: z.literal("resolve"), ...Common, payload: Payload.optional() }).strict(),
]);
export type PagerDutyEnqueue = z.infer<typeof PagerDutyEnqueueSchema>;
