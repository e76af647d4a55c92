/**
 * Who may change things from Slack (design §5b): mutating commands and button clicks only from
 * `chatops.slack.allowedUsers` (Slack user ids, e.g. `U012AB3CD`: ids never change, while names can
 * be edited by their owner and would let anyone impersonate an operator), and, when
 * `chatops.slack.allowedChannels` is set, only in those channels (channel id, or name with or
 * without `#`). `status` and `help` are open to every verified request.
 */
import type { WorkerConfig } from "../../shared/config.ts";

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
  if (channels && channels.length > 0) {
    const name = channel.name?.replace(/^#/, "");
    const ok = channels.some((c) => c === channel.id || (name !== undefined && c.replace(/^#/, "") === name));
    if (!ok) {
      return `changes are accepted only in ${channels.map((c) => (c.startsWith("C") ? `<#${c}>` : `#${c.replace(/^#/, "")}`)).join(", ")} (\`chatops.slack.allowedChannels\`)`;
    }
  }
  return undefined;
}
