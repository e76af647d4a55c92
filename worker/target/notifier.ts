/**
 * Notifications (design §5b): every phase change, action result and drill result as one short
 * Slack message. Best effort: a failed post is logged, never retried into the state machine; the
 * audit log is always the record.
 *
 * Two ways to post:
 * - the incoming webhook `SLACK_WEBHOOK_URL`: one message per event in the webhook's channel;
 * - a bot token `SLACK_BOT_TOKEN` with `chatops.slack.notifyChannel`: `chat.postMessage`, threaded
 *   per incident. The first message while the target has no open incident becomes the thread's
 *   root; later ones are replies; the one that finds the target settled again (steady, nothing
 *   awaiting approval, no drill under way) closes the incident and is also broadcast to the
 *   channel, so the outcome is visible without opening the thread. The bot token wins when both
 *   are set.
 *
 * Each message names the target, the sides (which is active, and the switch's direction), the
 * cause (the action's trigger and reason), step durations for action results, and links the
 * status page (`statusUrl`). An approval request of an `approval: required` target carries the
 * same Approve / Cancel buttons as `/turnout` break-glass requests (worker/http/slack/interactions.ts).
 */
import type { Side } from "../../shared/config.ts";
import { type StepReport, stepDurationMs } from "../../shared/protocol.ts";
import { fetchWithin } from "../agents/fetch-within.ts";
import type { MachineState } from "../engine/machine.ts";
import type { Env } from "../env.ts";
import { approvalButtons, escapeSlack, stepApprovalButton } from "./slack-blocks.ts";
import { encodeButtonValue } from "./slack-button-value.ts";

/** The target's situation when the notification was emitted (added by the Durable Object). */
export interface NotificationContext {
  activeSide: Side;
  phase: string;
  epoch: number;
  /** A drill (dry-run or live) is under way. */
  drill: boolean;
  approval: { kind: string; to: Side; reason: string; deadline: number } | null;
  action: {
    id: string;
    kind: string;
    from: Side;
    to: Side;
    status: string;
    trigger: string;
    reason: string;
    actor?: string;
    dryRun: boolean;
    steps: StepReport[];
  } | null;
}

export interface Notification {
  target: string;
  text: string;
  kind: string;
  /** An `approval` notice of a plan step waiting for a person: the step, posted with its button. */
  step?: string;
  /** The subject across targets, for paging and dedup: `turnout/agent/<name>` for an agent's silence (design §11.6). */
  key?: string;
  context?: NotificationContext;
  /**
   * The last message of a decision that left the target settled (see {@link settles}): it closes
   * the incident's thread. Set by the Durable Object, which knows where a decision's messages end.
   */
  closesIncident?: boolean;
}

/**
 * The target's open incident thread (the root message's `ts`), kept by its Durable Object so it
 * survives evictions. Only the bot-token notifier uses it.
 */
export interface IncidentThread {
  current(): string | undefined;
  open(ts: string): void;
  close(): void;
}

export interface Notifier {
  notify(n: Notification, thread?: IncidentThread): Promise<void>;
}

/** True when the target is settled (steady, nothing awaiting approval, no drill): no incident is open. */
export function settles(c: NotificationContext): boolean {
  return c.phase === "steady" && c.approval === null && !c.drill;
}

/** The notification context of a machine state (what the message needs, nothing more). */
export function notificationContext(m: MachineState): NotificationContext {
  const a = m.action;
  return {
    activeSide: m.activeSide,
    phase: m.phase,
    epoch: m.epoch,
    drill: m.drill !== null,
    approval: m.approval
      ? { kind: m.approval.kind, to: m.approval.to, reason: m.approval.reason, deadline: m.approval.deadline }
      : null,
    action: a
      ? {
          id: a.id,
          kind: a.kind,
          from: a.from,
          to: a.to,
          status: a.status,
          trigger: a.trigger,
          reason: a.reason,
          ...(a.actor === undefined ? {} : { actor: a.actor }),
          dryRun: a.dryRun,
          steps: a.steps,
        }
      : null,
  };
}

const EMOJI: Record<string, string> = {
  phase: ":arrows_counterclockwise:",
  action: ":gear:",
  approval: ":raised_hand:",
  drill: ":test_tube:",
  alert: ":rotating_light:",
};

/** A step's duration from its reported start and finish, e.g. `3.2 s`; `?` when unknown. */
export function stepDuration(step: StepReport): string {
  const ms = stepDurationMs(step);
  if (ms === null) return "?";
  return ms < 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms / 1000)} s`;
}

/** A Slack message for the webhook: `text` is the fallback, `blocks` the rendering. */
export interface SlackWebhookMessage {
  text: string;
  blocks: unknown[];
}

/**
 * Formats one message: target first, then what happened and why, then sides, cause, step
 * durations (action and drill results) and the status page link.
 */
export function formatNotification(n: Notification, statusUrl?: string): SlackWebhookMessage {
  // The machine prefixes its texts with the target name; the message shows it once, in bold.
  // The machine's texts embed reasons, actors and agent errors, which came from outside: escaped
  // whole (the machine writes no Slack markup of its own), like every such field below.
  const what = escapeSlack(n.text.startsWith(`${n.target}: `) ? n.text.slice(n.target.length + 2) : n.text);
  const headline = `${EMOJI[n.kind] ?? ":information_source:"} *${n.target}*: ${what}`;
  const ctx = n.context;
  const facts: string[] = [];
  if (ctx) {
    const a = ctx.action;
    facts.push(`active *${ctx.activeSide}*, phase \`${ctx.phase}\``);
    if (a && (n.kind === "action" || n.kind === "drill" || ctx.phase === "executing")) {
      facts.push(`${a.dryRun ? "dry run " : ""}${a.kind} \`${a.id}\` ${a.from} → ${a.to}: ${a.status}`);
      facts.push(`cause: ${a.trigger}${a.actor ? ` by ${escapeSlack(a.actor)}` : ""} — ${escapeSlack(a.reason)}`);
    } else if (ctx.approval) {
      facts.push(
        `${ctx.approval.kind} ${ctx.activeSide} → ${ctx.approval.to}; cause: ${escapeSlack(ctx.approval.reason)}`,
      );
    }
  }
  const steps =
    ctx?.action && (n.kind === "action" || n.kind === "drill") && ctx.action.steps.length > 0
      ? ctx.action.steps.map((s) => `• ${escapeSlack(s.name)}: ${s.status} (${stepDuration(s)})`).join("\n")
      : "";
  const link = statusUrl ? `<${statusUrl}|Status page>` : "";
  const blocks: unknown[] = [{ type: "section", text: { type: "mrkdwn", text: headline } }];
  if (steps) blocks.push({ type: "section", text: { type: "mrkdwn", text: steps } });
  const contextLine = [...facts, link].filter(Boolean);
  if (contextLine.length > 0) {
    blocks.push({ type: "context", elements: contextLine.map((text) => ({ type: "mrkdwn", text })) });
  }
  if (n.kind === "approval" && ctx?.phase === "awaiting_approval" && ctx.approval) {
    blocks.push(
      approvalButtons(encodeButtonValue({ v: 1, k: "approval", t: n.target, e: ctx.epoch, d: ctx.approval.deadline })),
    );
  }
  const waiting = waitingStep(n);
  if (waiting && ctx?.action) {
    const { approval } = waiting;
    if (approval) {
      blocks.push({
        type: "section",
        // The message and the step's name came from the agent's config: outside text.
        text: {
          type: "mrkdwn",
          text: `*${escapeSlack(waiting.name)}* waits for approval until ${approval.deadline}: ${escapeSlack(approval.message)}`,
        },
      });
    }
    blocks.push(
      stepApprovalButton(
        encodeButtonValue({ v: 1, k: "step", t: n.target, a: ctx.action.id, s: waiting.name }),
        waiting.name,
      ),
    );
  }
  const text = [headline, ...facts, steps, link].filter(Boolean).join("\n");
  return { text, blocks };
}

/** The plan step an `approval` notice is about, while it still waits in the action (else none). */
function waitingStep(n: Notification): StepReport | undefined {
  const a = n.context?.action;
  if (n.kind !== "approval" || n.step === undefined || !a || n.context?.phase !== "executing") return undefined;
  return a.steps.find((st) => st.name === n.step && st.status === "waiting");
}

function warn(msg: string, fields: Record<string, unknown>): void {
  console.warn(JSON.stringify({ level: "warn", msg, ...fields }));
}

/** Where Slack's Web API lives; `SLACK_API_URL` (a worker var) overrides it for a local fake. */
const SLACK_API = "https://slack.com/api";

/** What the notifier needs from the worker's env. */
export type SlackNotifierEnv = Pick<Env, "SLACK_WEBHOOK_URL" | "SLACK_BOT_TOKEN" | "SLACK_API_URL">;

export interface SlackNotifierOptions {
  /** The status page, linked from every message (config `statusUrl`). */
  statusUrl?: string | undefined;
  /** Channel id for bot-token notifications (config `chatops.slack.notifyChannel`). */
  channel?: string | undefined;
  /**
   * How long one post may take (default 5 s). A target's notifications are posted one after
   * another, so a Slack that hangs must not hold the ones behind it for longer than this.
   */
  timeoutMs?: number;
}

/**
 * Posts through the bot token and `channel` when both are set (threaded per incident), else to
 * `SLACK_WEBHOOK_URL` when it is set; otherwise does nothing (the audit log has it).
 */
export function slackNotifier(env: SlackNotifierEnv, options: SlackNotifierOptions = {}): Notifier {
  const post = (url: string, init: RequestInit) => fetchWithin(options.timeoutMs ?? 5_000, "Slack", url, init);
  if (env.SLACK_BOT_TOKEN && options.channel) {
    const api = `${(env.SLACK_API_URL ?? SLACK_API).replace(/\/$/, "")}/chat.postMessage`;
    return botNotifier(post, api, env.SLACK_BOT_TOKEN, options.channel, options.statusUrl);
  }
  return webhookNotifier(post, env.SLACK_WEBHOOK_URL, options.statusUrl);
}

type Post = (url: string, init: RequestInit) => Promise<Response>;

/** Posts each notification to the incoming webhook. */
function webhookNotifier(post: Post, webhook: string | undefined, statusUrl?: string): Notifier {
  return {
    async notify(n) {
      if (!webhook) return;
      try {
        const res = await post(webhook, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify(formatNotification(n, statusUrl)),
        });
        if (!res.ok) warn("slack notification refused", { target: n.target, status: res.status });
      } catch (err) {
        warn("slack notification failed", { target: n.target, error: String(err) });
      }
    },
  };
}

/** `chat.postMessage`'s answer: HTTP 200 with `ok` false and an `error` code on failure. */
interface PostMessageAnswer {
  ok?: boolean;
  ts?: string;
  error?: string;
}

/** Posts with `chat.postMessage` to `channel`, threading each incident under its first message. */
function botNotifier(post: Post, api: string, token: string, channel: string, statusUrl?: string): Notifier {
  const postMessage = async (n: Notification, threadTs: string | undefined, broadcast: boolean) => {
    const body = {
      channel,
      ...formatNotification(n, statusUrl),
      unfurl_links: false,
      ...(threadTs ? { thread_ts: threadTs, ...(broadcast ? { reply_broadcast: true } : {}) } : {}),
    };
    const res = await post(api, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json; charset=utf-8" },
      body: JSON.stringify(body),
    });
    if (!res.ok) return { ok: false, error: `HTTP ${res.status}` } satisfies PostMessageAnswer;
    return ((await res.json().catch(() => ({}))) ?? {}) as PostMessageAnswer;
  };
  return {
    async notify(n, thread) {
      const ends = n.closesIncident === true;
      try {
        const threadTs = thread?.current();
        const answer = await postMessage(n, threadTs, ends);
        if (!answer.ok) {
          warn("slack notification refused", { target: n.target, error: answer.error ?? "unknown" });
          return;
        }
        if (ends) thread?.close();
        else if (!threadTs && answer.ts) thread?.open(answer.ts);
      } catch (err) {
        warn("slack notification failed", { target: n.target, error: String(err) });
      }
    },
  };
}
