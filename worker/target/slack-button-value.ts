/**
 * The `value` of the Approve / Cancel buttons (Block Kit button `value`, at most 2000 characters):
 * compact JSON saying what the click must still match when it arrives.
 *
 * - `break-glass`: a forced `/turnout failover|failback` awaiting a second person; carries the
 *   target, the command, the requester's Slack id, the target's epoch and phase at request time
 *   and the random nonce under which the Durable Object keeps the pending request.
 * - `approval`: an `approval: required` target's approval request (phase `awaiting_approval`);
 *   carries the target, its epoch and the request's deadline, which identifies that request (a
 *   later request has a later deadline), so a click on an old message cannot approve a new one.
 * - `step`: a plan's approval step waiting for a person (design §11.2); carries the target, the
 *   action id and the step's name, which identify it exactly (a later action has a later id), so a
 *   click on an old message cannot approve a step of a newer action.
 */
import { z } from "zod";
import { ActionIdSchema } from "../../shared/protocol.ts";
import { toHex } from "../../shared/signature.ts";

/** A break-glass request's buttons. */
export const BreakGlassButtonSchema = z
  .object({
    v: z.literal(1),
    k: z.literal("break-glass"),
    t: z.string().min(1),
    c: z.enum(["failover", "failback"]),
    r: z.string().min(1),
    e: z.number().int().min(0),
    p: z.string(),
    n: z.string().regex(/^[0-9a-f]{32}$/),
  })
  .strict();

/** An `approval: required` request's buttons. */
export const ApprovalButtonSchema = z
  .object({
    v: z.literal(1),
    k: z.literal("approval"),
    t: z.string().min(1),
    e: z.number().int().min(0),
    d: z.number().int(),
  })
  .strict();

/** A plan step's Approve button. */
export const StepButtonSchema = z
  .object({
    v: z.literal(1),
    k: z.literal("step"),
    t: z.string().min(1),
    a: ActionIdSchema,
    s: z.string().min(1).max(200),
  })
  .strict();

/** Any kind of turnout button value. */
export const ButtonValueSchema = z.discriminatedUnion("k", [
  BreakGlassButtonSchema,
  ApprovalButtonSchema,
  StepButtonSchema,
]);
export type ButtonValue = z.infer<typeof ButtonValueSchema>;

/** Serializes a button value (checked against the 2000-character Block Kit limit). */
export function encodeButtonValue(value: ButtonValue): string {
  const text = JSON.stringify(ButtonValueSchema.parse(value));
  if (text.length > 2000) throw new Error("button value exceeds Slack's 2000 characters");
  return text;
}

/** Parses a clicked button's value; undefined when it is not one of ours. */
export function decodeButtonValue(text: string): ButtonValue | undefined {
  try {
    const parsed = ButtonValueSchema.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/** 128 random bits as 32 hex digits: the break-glass request's key. */
export function newNonce(): string {
  return toHex(crypto.getRandomValues(new Uint8Array(16)).buffer);
}
