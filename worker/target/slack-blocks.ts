/**
 * Block Kit messages for `/turnout` answers (design §5b: `{response_type, text, blocks}`).
 * Renderers take the §3 target view's fields they need, nothing more.
 */

/**
 * Escapes text that came from outside (reasons, labels, agent errors, actor names) for Slack
 * mrkdwn: `&`, `<` and `>` become entities, so the text can neither mention `<!channel>` nor
 * forge a `<https://…|link>` (api.slack.com/reference/surfaces/formatting#escaping).
 */
export function escapeSlack(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

export interface StatusViewTarget {
  name: string;
  activeSide: string;
  phase: string;
  paused: boolean;
  flapping: boolean;
  cooldownUntil?: string | null;
  sides: Record<string, { health: string; firing?: readonly unknown[] }>;
  action?: { id: string; kind: string; status: string } | null;
}

export interface SlackMessage {
  response_type: "ephemeral" | "in_channel";
  text: string;
  blocks?: unknown[];
  replace_original?: boolean;
}

const HEALTH_ICON: Record<string, string> = {
  up: ":large_green_circle:",
  down: ":red_circle:",
  unknown: ":white_circle:",
};

function section(text: string) {
  return { type: "section", text: { type: "mrkdwn", text } };
}

function targetLine(t: StatusViewTarget): string {
  const sides = Object.entries(t.sides)
    .map(
      ([side, s]) => `${HEALTH_ICON[s.health] ?? ""} ${side}${side === t.activeSide ? " (active)" : ""}: ${s.health}`,
    )
    .join("   ");
  const flags = [
    t.paused ? "paused" : "",
    t.flapping ? "flapping" : "",
    t.cooldownUntil ? `cooldown until ${t.cooldownUntil}` : "",
  ]
    .filter(Boolean)
    .join(", ");
  const action = t.action ? `\nlast action \`${t.action.id}\` ${t.action.kind}: ${t.action.status}` : "";
  return `*${t.name}* — active *${t.activeSide}*, phase \`${t.phase}\`${flags ? ` (${flags})` : ""}\n${sides}${action}`;
}

/** `/turnout status [target]`. */
export function statusMessage(targets: readonly StatusViewTarget[], statusUrl?: string): SlackMessage {
  const text = targets.length === 0 ? "No targets are configured." : targets.map(targetLine).join("\n\n");
  const blocks: unknown[] = targets.length === 0 ? [section(text)] : targets.map((t) => section(targetLine(t)));
  if (statusUrl) blocks.push({ type: "context", elements: [{ type: "mrkdwn", text: `<${statusUrl}|Status page>` }] });
  return { response_type: "ephemeral", text, blocks };
}

/** A short ephemeral answer (errors, refusals, help). */
export function ephemeral(text: string): SlackMessage {
  return { response_type: "ephemeral", text, blocks: [section(text)] };
}

/** A message visible to the channel (accepted commands, so the team sees who did what). */
export function inChannel(text: string, extraBlocks: unknown[] = []): SlackMessage {
  return { response_type: "in_channel", text, blocks: [section(text), ...extraBlocks] };
}

/** Approve / cancel buttons; `value` carries what the click must match (target, epoch, requester). */
export function approvalButtons(value: string): unknown {
  return {
    type: "actions",
    block_id: "turnout-approval",
    elements: [
      { type: "button", action_id: "approve", style: "primary", text: { type: "plain_text", text: "Approve" }, value },
      { type: "button", action_id: "cancel", style: "danger", text: { type: "plain_text", text: "Cancel" }, value },
    ],
  };
}

/** A plan step's Approve button (a step has no cancel: it fails at its deadline). */
export function stepApprovalButton(value: string, step: string): unknown {
  return {
    type: "actions",
    block_id: "turnout-step-approval",
    elements: [
      {
        type: "button",
        action_id: "approve",
        style: "primary",
        // plain_text is not mrkdwn: a step name cannot format or mention here.
        text: { type: "plain_text", text: `Approve ${step}`.slice(0, 75) },
        value,
      },
    ],
  };
}
