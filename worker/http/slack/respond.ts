/**
 * Answering Slack within its 3 s and following up through `response_url` (wire-formats §c:
 * "if you're unable to immediately respond to a command within 3000 milliseconds, use the
 * specific `response_url`"; up to 5 follow-ups within 30 minutes).
 *
 * Follow-ups go only to `https://hooks.slack.com/` URLs, so a forged-but-signed payload cannot make
 * the worker POST elsewhere. `SLACK_RESPONSE_URL_PREFIX` (a worker var) or
 * `slackTesting.responseUrlPrefix` overrides the prefix for local runs and tests.
 */
import type { Env } from "../../env.ts";
import type { SlackMessage } from "../../target/slack-blocks.ts";

/** Where Slack's `response_url`s live (api.slack.com/interactivity/handling#message_responses). */
export const SLACK_RESPONSE_URL_PREFIX = "https://hooks.slack.com/";

/** How long the route waits for the Durable Object before acknowledging and following up later. */
export const ACK_DEADLINE_MS = 2500;

/** Test seams (same isolate as the worker in the Workers Vitest integration). */
export const slackTesting: { responseUrlPrefix?: string; ackDeadlineMs?: number } = {};

/** The environment the Slack routes read: the worker's plus the optional response-URL override. */
export type SlackEnv = Env & { SLACK_RESPONSE_URL_PREFIX?: string };

/** The allowed `response_url` prefix in force. */
export function responseUrlPrefix(env: SlackEnv): string {
  return slackTesting.responseUrlPrefix ?? env.SLACK_RESPONSE_URL_PREFIX ?? SLACK_RESPONSE_URL_PREFIX;
}

/** Posts a follow-up message to `response_url`; refuses other hosts; best effort (logged). */
export async function postToResponseUrl(env: SlackEnv, url: string | undefined, message: SlackMessage): Promise<void> {
  if (!url) return;
  const prefix = responseUrlPrefix(env);
  if (!url.startsWith(prefix)) {
    console.warn(JSON.stringify({ level: "warn", msg: "response_url refused (not Slack's)", prefix }));
    return;
  }
  try {
    const res = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(message),
    });
    if (!res.ok) console.warn(JSON.stringify({ level: "warn", msg: "response_url refused", status: res.status }));
  } catch (err) {
    console.warn(JSON.stringify({ level: "warn", msg: "response_url post failed", error: String(err) }));
  }
}

const TIMED_OUT = Symbol("timed out");

/**
 * The answer if `work` finishes within the ack deadline; otherwise `interim` now and the real
 * answer later at `response_url` (through `waitUntil`, so the isolate stays alive for it).
 */
export async function answerWithin(
  work: Promise<SlackMessage>,
  interim: SlackMessage,
  later: (message: SlackMessage) => Promise<void>,
  waitUntil: (p: Promise<unknown>) => void,
): Promise<SlackMessage> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<typeof TIMED_OUT>((resolve) => {
    timer = setTimeout(() => resolve(TIMED_OUT), slackTesting.ackDeadlineMs ?? ACK_DEADLINE_MS);
  });
  const first = await Promise.race([work, deadline]);
  if (timer !== undefined) clearTimeout(timer);
  if (first !== TIMED_OUT) return first;
  waitUntil(work.then(later));
  return interim;
}
