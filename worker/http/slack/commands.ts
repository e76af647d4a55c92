/**
 * `/turnout <command>` (design §5b) after the signature check: parse against the configured
 * targets, authorize, call the target's Durable Object and render the Block Kit answer.
 * Parse errors, refusals and 409s from the object are ephemeral 200 answers (Slack shows non-200
 * answers as a bare failure); accepted changes are in-channel so the team sees who did what.
 */
import { z } from "zod";
import type { WorkerConfig } from "../../../shared/config.ts";
import type { Env } from "../../env.ts";
import {
  approvalButtons,
  ephemeral,
  escapeSlack,
  inChannel,
  type SlackMessage,
  statusMessage,
} from "../../target/slack-blocks.ts";
import { encodeButtonValue, newNonce } from "../../target/slack-button-value.ts";
import type { TargetView } from "../../target/target-object.ts";
import type { TargetCommand } from "../../target/target-view.ts";
import { refusal, type SlackUser, slackActor } from "./authorize.ts";
import { HELP_TEXT, parseSlashCommand, type SlashCommand } from "./parse.ts";

/** The fields of a slash command the worker uses (wire-formats §c; Slack sends more). */
export const SlashCommandBodySchema = z.object({
  command: z.string().optional(),
  text: z.string().default(""),
  user_id: z.string().min(1),
  user_name: z.string().default(""),
  channel_id: z.string().min(1),
  channel_name: z.string().optional(),
  response_url: z.string().optional(),
  team_id: z.string().optional(),
});
export type SlashCommandBody = z.infer<typeof SlashCommandBodySchema>;

/** What Slack sends the target's object: the object's own TargetCommand (with `revert`, `clear` and its `key`). */
export type SlackTargetCommand = TargetCommand;

const unavailable = (target: string) =>
  ephemeral(`:warning: target \`${target}\` did not answer (its Durable Object is unavailable); try again`);

async function fromObject<T>(target: string, call: () => Promise<T>): Promise<T | undefined> {
  try {
    return await call();
  } catch (err) {
    console.error(
      JSON.stringify({ level: "error", msg: "slack: target object call failed", target, error: String(err) }),
    );
    return undefined;
  }
}

/** What the target is doing now, in one line. */
export function summary(view: TargetView): string {
  const a = view.action;
  const action = a ? `; ${a.dryRun ? "dry run " : ""}${a.kind} \`${a.id}\` ${a.from} → ${a.to}: ${a.status}` : "";
  return `active *${view.activeSide}*, phase \`${view.phase}\`${view.paused ? " (paused)" : ""}${action}`;
}

async function status(env: Env, config: WorkerConfig, target: string | undefined): Promise<SlackMessage> {
  const names = target ? [target] : Object.keys(config.targets).sort();
  const views = await Promise.all(
    names.map((n) => fromObject(n, () => env.TARGETS.getByName(n).view(n, { events: false }))),
  );
  const ok = views.filter((v): v is TargetView => v !== undefined);
  const message = statusMessage(ok, config.statusUrl);
  const missing = names.filter((_, i) => views[i] === undefined);
  if (missing.length > 0) message.text += `\n:warning: no answer from ${missing.join(", ")}`;
  return message;
}

async function breakGlassRequest(
  env: Env,
  body: SlashCommandBody,
  user: SlackUser,
  cmd: Extract<SlashCommand, { kind: "mutate" }>,
): Promise<SlackMessage> {
  const command = cmd.command;
  if (command !== "failover" && command !== "failback") {
    return ephemeral("`force` applies only to failover and failback");
  }
  const nonce = newNonce();
  const actor = slackActor(user);
  const reason = cmd.reason.slice(0, 1500);
  const at = await fromObject(cmd.target, () =>
    env.TARGETS.getByName(cmd.target).requestBreakGlass(cmd.target, {
      nonce,
      command,
      requesterId: user.id,
      requester: actor,
      reason,
    }),
  );
  if (!at) return unavailable(cmd.target);
  const value = encodeButtonValue({
    v: 1,
    k: "break-glass",
    t: cmd.target,
    c: command,
    r: user.id,
    e: at.epoch,
    p: at.phase,
    n: nonce,
  });
  const text =
    `:rotating_light: *Break-glass request*: <@${escapeSlack(body.user_id)}> wants a FORCED \`${cmd.command}\` of *${cmd.target}* ` +
    `(active *${at.activeSide}*, phase \`${at.phase}\`), past the never-switch-to-a-down-side rule.\n` +
    `Reason: ${reason ? escapeSlack(reason) : "_none given_"}\nA second allowed person must approve; the requester cannot.`;
  return inChannel(text, [approvalButtons(value)]);
}

function accepted(user: SlackUser, cmd: Extract<SlashCommand, { kind: "mutate" }>, view: TargetView): SlackMessage {
  return inChannel(
    `:white_check_mark: <@${escapeSlack(user.id)}> ran \`${cmd.command} ${cmd.target}\`${cmd.reason ? ` (${escapeSlack(cmd.reason)})` : ""}: accepted. Now ${summary(view)}`,
  );
}

/**
 * Runs one verified slash command and renders its answer. The caller races it against the 3 s
 * acknowledgement (respond.ts `answerWithin`) and posts a late answer to `response_url`.
 */
export async function runSlashCommand(env: Env, config: WorkerConfig, body: SlashCommandBody): Promise<SlackMessage> {
  const targets = Object.keys(config.targets).sort();
  const parsed = parseSlashCommand(body.text, targets);
  // The error quotes what was typed: escaped like any text from outside.
  if (!parsed.ok) return ephemeral(`:grey_question: ${escapeSlack(parsed.error)}\nTry \`/turnout help\`.`);
  const cmd = parsed.command;
  if (cmd.kind === "help") return ephemeral(HELP_TEXT);
  if (cmd.kind === "status") return status(env, config, cmd.target);
  const user: SlackUser = { id: body.user_id, name: body.user_name };
  const why = refusal(config, user, { id: body.channel_id, name: body.channel_name });
  if (why) return ephemeral(`:no_entry: \`${cmd.command} ${cmd.target}\` refused: ${why}`);
  if (cmd.force) return breakGlassRequest(env, body, user, cmd);
  const result = await fromObject(cmd.target, () =>
    env.TARGETS.getByName(cmd.target).command(cmd.target, {
      command: cmd.command,
      actor: slackActor(user),
      ...(cmd.reason ? { reason: cmd.reason.slice(0, 2000) } : {}),
      ...(cmd.key !== undefined ? { key: cmd.key } : {}),
    }),
  );
  if (!result) return unavailable(cmd.target);
  if (!result.applied) {
    return ephemeral(
      `:no_entry: \`${cmd.command} ${cmd.target}\` was refused by the target: ${escapeSlack(result.rejected ?? "it does not apply now")}\nNow ${summary(result.view)}`,
    );
  }
  return accepted(user, cmd, result.view);
}
