/**
 * Who may change things from Slack (design §5b): mutating commands and button clicks only from
 * `chatops.slack.allowedUsers` (Slack user ids, e.g. `U012AB3CD`: ids never change, while names can
 * be edited by their owner and would let anyone impersonate an operator), and, when
 * `chatops.slack.allowedChannels` is set, only in those channels (by channel id, for the same
 * reason). `status` and `help` are open to every verified request (of the configured workspace,
 * when `chatops.slack.teamId` is set).
 */
import type { WorkerConfig } from "../../../shared/config.ts";

/** A Slack user as the requests carry it. */
export interface SlackUser {
  id: string;
  name: string;
}

/** The audited actor string: `slack:<user_id>(<user_name>)`. */
export function slackActor(user: SlackUser): string {
  return `slack:${user.id}(${user.name})`;
}

/** Why this user may not act here, or undefined when they may. */
export function refusal(
  config: WorkerConfig,
  user: SlackUser,
  channel: { id: string; name?: string | undefined },
): string | undefined {
  const slack = config.chatops?.slack;
  const users = slack?.allowedUsers ?? [];
  if (!users.includes(user.id)) {
    return users.length === 0
      ? "no Slack user may change targets: `chatops.slack.allowedUsers` is empty in the turnout config"
      : `<@${user.id}> is not in \`chatops.slack.allowedUsers\`; ask an operator to add your Slack user id (${user.id})`;
  }
  const channels = slack?.allowedChannels;
  // By id only: names can be edited by a channel's members (config validation refuses names).
  if (channels && channels.length > 0 && !channels.includes(channel.id)) {
    return `changes are accepted only in ${channels.map((c) => `<#${c}>`).join(", ")} (\`chatops.slack.allowedChannels\`)`;
  }
  return undefined;
}

/**
 * Why a request from workspace `teamId` is refused, or undefined when it may proceed: with
 * `chatops.slack.teamId` set, only that workspace's commands and clicks count (an app installed in
 * several workspaces signs all their requests with one signing secret).
 */
export function workspaceRefusal(config: WorkerConfig, teamId: string | undefined): string | undefined {
  const want = config.chatops?.slack?.teamId;
  if (want === undefined || teamId === want) return undefined;
  return "this turnout answers only its own Slack workspace (`chatops.slack.teamId`); nothing was done";
}
