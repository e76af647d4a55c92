/**
 * Notifications (design §5b): every phase change, action result and drill result as one short
 * Slack message through the incoming webhook `SLACK_WEBHOOK_URL`. Best effort: a failed post is
 * logged, never retried into the state machine; the audit log is always the record.
 */
import type { Env } from "./env.ts";

export interface Notification {
  target: string;
  text: string;
  kind: string;
}

export interface Notifier {
  notify(n: Notification): Promise<void>;
}

const EMOJI: Record<string, string> = {
  phase: ":arrows_counterclockwise:",
  action: ":gear:",
  approval: ":raised_hand:",
  drill: ":test_tube:",
  alert: ":rotating_light:",
};

/** Formats one message: target first, then what happened and why, then the status page link. */
export function formatNotification(n: Notification, statusUrl?: string): { text: string } {
  const link = statusUrl ? ` <${statusUrl}|status>` : "";
  return { text: `${EMOJI[n.kind] ?? ":information_source:"} *${n.target}*: ${n.text}${link}` };
}

/** Posts to `SLACK_WEBHOOK_URL` when it is set; otherwise does nothing (the audit log has it). */
export function slackNotifier(env: Pick<Env, "SLACK_WEBHOOK_URL">, statusUrl?: string): Notifier {
  return {
    async notify(n) {
      if (!env.SLACK_WEBHOOK_URL) return;
      try {
        const res = await fetch(env.SLACK_WEBHOOK_URL, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify(formatNotification(n, statusUrl)),
        });
        if (!res.ok) {
          console.warn(
            JSON.stringify({ level: "warn", msg: "slack notification refused", target: n.target, status: res.status }),
          );
        }
      } catch (err) {
        console.warn(
          JSON.stringify({ level: "warn", msg: "slack notification failed", target: n.target, error: String(err) }),
        );
      }
    },
  };
}
