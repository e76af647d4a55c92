/**
 * Approve / Cancel button clicks (`block_actions` interactions, design §5b) after the signature
 * check. Break-glass requests are resolved by the target's Durable Object in one transaction
 * (slack/break-glass.ts); approval requests of `approval: required` targets become the ordinary
 * `approve` / `cancel` commands once the click is shown to match the request still awaiting; a
 * plan step's Approve button approves that step of that action, as the API's `{"command":
 * "approve", "step"}` does, with the clicking user as the identity.
 */
import { z } from "zod";
import type { WorkerConfig } from "../../../shared/config.ts";
import type { Env } from "../../env.ts";
import { ephemeral, escapeSlack, type SlackMessage } from "../../target/slack-blocks.ts";
import { type ButtonValue, decodeButtonValue } from "../../target/slack-button-value.ts";
import { refusal, type SlackUser, slackActor } from "./authorize.ts";
import { summary } from "./commands.ts";

/** The parts of a `block_actions` payload the worker uses (api.slack.com/reference/interaction-payloads/block-actions). */
export const BlockActionsSchema = z.object({
  type: z.literal("block_actions"),
  user: z.object({
    id: z.string().min(1),
    username: z.string().optional(),
    name: z.string().optional(),
    team_id: z.string().optional(),
  }),
  team: z.object({ id: z.string() }).nullish(),
  channel: z.object({ id: z.string().min(1), name: z.string().optional() }).optional(),
  response_url: z.string().optional(),
  actions: z
    .array(z.object({ action_id: z.string(), value: z.string().optional() }))
    .min(1, "expected at least one action"),
});
export type BlockActions = z.infer<typeof BlockActionsSchema>;

/** A message that replaces the approval message for everyone (its buttons are gone). */
function replaceOriginal(text: string): SlackMessage {
  return {
    response_type: "in_channel",
    replace_original: true,
    text,
    blocks: [{ type: "section", text: { type: "mrkdwn", text } }],
  };
}

/** An answer only the clicker sees; the approval message stays as it is. */
function privately(text: string): SlackMessage {
  return { ...ephemeral(text), replace_original: false };
}

async function breakGlass(
  env: Env,
  value: Extract<ButtonValue, { k: "break-glass" }>,
  decision: "approve" | "cancel",
  user: SlackUser,
): Promise<SlackMessage> {
  const r = await env.TARGETS.getByName(value.t).resolveBreakGlass(value.t, {
    nonce: value.n,
    decision,
    actorId: user.id,
    actor: slackActor(user),
    epoch: value.e,
  });
  // Names (the Slack display name is the user's to choose) and reasons are text from outside.
  const actor = escapeSlack(slackActor(user));
  switch (r.outcome) {
    case "executed":
      return replaceOriginal(
        `:rotating_light: Forced \`${r.command}\` of *${value.t}* requested by ${escapeSlack(r.requester)}, approved by ${actor}: executing. Now ${summary(r.view)}`,
      );
    case "rejected":
      return replaceOriginal(
        `:no_entry: Forced \`${r.command}\` of *${value.t}* approved by ${actor} but refused by the target: ${escapeSlack(r.reason)}. Now ${summary(r.view)}`,
      );
    case "cancelled":
      return replaceOriginal(
        `:x: Forced \`${r.command}\` of *${value.t}* requested by ${escapeSlack(r.requester)} was cancelled by ${actor}; nothing changed.`,
      );
    default:
      return privately(`:no_entry: ${escapeSlack(r.detail)}`);
  }
}

async function approval(
  env: Env,
  value: Extract<ButtonValue, { k: "approval" }>,
  decision: "approve" | "cancel",
  user: SlackUser,
): Promise<SlackMessage> {
  const stub = env.TARGETS.getByName(value.t);
  const view = await stub.view(value.t, { events: false });
  const requested = new Date(value.d).toISOString();
  if (view.phase !== "awaiting_approval" || view.approvalDeadline !== requested) {
    return privately(
      `:hourglass: stale button: this approval request of *${value.t}* is no longer pending (now ${summary(view)}); nothing changed`,
    );
  }
  const actor = slackActor(user);
  // The machine re-checks the phase inside its own transaction, so a race with expiry is a refusal.
  const result = await stub.command(value.t, { command: decision, actor, reason: `${decision} button in Slack` });
  if (!result.applied) return privately(`:no_entry: ${escapeSlack(result.rejected ?? "refused")}; nothing changed`);
  const verb = decision === "approve" ? "approved" : "cancelled";
  return replaceOriginal(
    `:white_check_mark: *${value.t}*: ${verb} by ${escapeSlack(actor)}. Now ${summary(result.view)}`,
  );
}

/** Approves a plan step: the same object call as the API's `{"command": "approve", "step"}`. */
async function stepApproval(
  env: Env,
  value: Extract<ButtonValue, { k: "step" }>,
  decision: "approve" | "cancel",
  user: SlackUser,
): Promise<SlackMessage> {
  const step = escapeSlack(value.s);
  if (decision !== "approve") {
    return privately(`a plan step has no cancel: *${step}* fails at its deadline unless approved; nothing changed`);
  }
  const actor = slackActor(user);
  const r = await env.TARGETS.getByName(value.t).approveStep(value.t, {
    step: value.s,
    actor,
    actionId: value.a,
    reason: "approve button in Slack",
  });
  if (r.unavailable !== undefined) {
    return privately(
      `:warning: the approval of *${step}* did not reach the agent, so nothing was approved; click again: ${escapeSlack(r.unavailable)}`,
    );
  }
  if (!r.applied) return privately(`:no_entry: ${escapeSlack(r.rejected ?? "refused")}`);
  return replaceOriginal(
    `:white_check_mark: *${value.t}*: step *${step}* of \`${value.a}\` approved by ${escapeSlack(actor)}; the plan goes on. Now ${summary(r.view)}`,
  );
}

/** Runs one verified `block_actions` click. */
export async function runInteraction(env: Env, config: WorkerConfig, payload: BlockActions): Promise<SlackMessage> {
  const action = payload.actions[0];
  if (!action || (action.action_id !== "approve" && action.action_id !== "cancel")) {
    return privately("this button is not one of turnout's; nothing changed");
  }
  const value = action.value === undefined ? undefined : decodeButtonValue(action.value);
  if (!value)
    return privately("this button's value is not one turnout understands (outdated message?); nothing changed");
  if (!Object.hasOwn(config.targets, value.t)) {
    return privately(`target \`${value.t}\` is no longer configured; nothing changed`);
  }
  const user: SlackUser = { id: payload.user.id, name: payload.user.username ?? payload.user.name ?? "" };
  const why = refusal(config, user, { id: payload.channel?.id ?? "", name: payload.channel?.name });
  if (why) return privately(`:no_entry: ${action.action_id} refused: ${why}`);
  try {
    switch (value.k) {
      case "break-glass":
        return await breakGlass(env, value, action.action_id, user);
      case "approval":
        return await approval(env, value, action.action_id, user);
      case "step":
        return await stepApproval(env, value, action.action_id, user);
    }
  } catch (err) {
    console.error(JSON.stringify({ level: "error", msg: "slack: click failed", target: value.t, error: String(err) }));
    return privately(
      `:warning: target \`${value.t}\` did not answer, so the outcome is unknown; check \`/turnout status ${value.t}\` before clicking again`,
    );
  }
}
