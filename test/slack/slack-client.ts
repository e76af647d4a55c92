/**
 * Test helpers that talk to the worker as Slack does: signed form-encoded slash commands and
 * `block_actions` clicks (signed with the test binding SLACK_SIGNING_SECRET at the REAL current
 * time, since the route checks the 5-minute window against Date.now()), and a capture of the
 * outbound POSTs (response_url follow-ups, webhook notifications) made through globalThis.fetch.
 */
import { vi } from "vitest";
import { signSlackRequest } from "../../worker/http/slack/signature.ts";
import { TEST_CREDENTIALS } from "../worker/support/bindings.ts";

/** The worker project's SLACK_SIGNING_SECRET binding. */
export const SLACK_SECRET = TEST_CREDENTIALS.slackSigningSecret;
/** The response_url prefix the tests allow (stands in for https://hooks.slack.com/). */
export const RESPONSE_PREFIX = "https://hooks.slack.test/";

export interface SlackPerson {
  id: string;
  name: string;
}
export const ALICE: SlackPerson = { id: "UALICE", name: "alice" };
export const BOB: SlackPerson = { id: "UBOB", name: "bob" };
export const MALLORY: SlackPerson = { id: "UMALLORY", name: "mallory" };
export const OPS_CHANNEL = { id: "COPS", name: "ops" };

type Fetcher = (url: string, init: RequestInit) => Promise<Response>;

/** Signs `raw` the way Slack does and POSTs it. */
export async function signedPost(
  fetcher: Fetcher,
  path: string,
  raw: string,
  opts: { secret?: string; timestamp?: number } = {},
): Promise<Response> {
  const ts = opts.timestamp ?? Math.floor(Date.now() / 1000);
  return fetcher(`http://w${path}`, {
    method: "POST",
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      "x-slack-request-timestamp": String(ts),
      "x-slack-signature": await signSlackRequest(opts.secret ?? SLACK_SECRET, ts, raw),
    },
    body: raw,
  });
}

let triggers = 0;
/** A fresh trigger_id in Slack's shape (`<digits>.<digits>.<hex>`). */
function triggerId(): string {
  triggers++;
  const hex = Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
  return `13345224609.${738474920 + triggers}.${hex}`;
}

/** The form body of `/turnout <text>` from `user` in `channel`. */
export function slashBody(
  text: string,
  user: SlackPerson = ALICE,
  channel: { id: string; name: string } = OPS_CHANNEL,
  responseUrl = `${RESPONSE_PREFIX}commands/1/xyz`,
): string {
  return new URLSearchParams({
    token: "legacy",
    team_id: "T0001",
    team_domain: "example",
    channel_id: channel.id,
    channel_name: channel.name,
    user_id: user.id,
    user_name: user.name,
    command: "/turnout",
    text,
    api_app_id: "A0001",
    is_enterprise_install: "false",
    response_url: responseUrl,
    // Slack gives every invocation its own trigger_id, so two requests never share a signature
    // (the replay guard answers a repeated signature "already handled").
    trigger_id: triggerId(),
  }).toString();
}

/** The form body of a click on a button carrying `value`. */
export function clickBody(
  actionId: "approve" | "cancel",
  value: string,
  user: SlackPerson,
  channel: { id: string; name: string } = OPS_CHANNEL,
): string {
  const payload = {
    type: "block_actions",
    user: { id: user.id, username: user.name, name: user.name, team_id: "T0001" },
    api_app_id: "A0001",
    token: "legacy",
    container: { type: "message", message_ts: "1548261231.000200", channel_id: channel.id, is_ephemeral: false },
    trigger_id: triggerId(),
    team: { id: "T0001", domain: "example" },
    channel,
    response_url: `${RESPONSE_PREFIX}actions/T0001/1/abc`,
    actions: [
      {
        action_id: actionId,
        block_id: "turnout-approval",
        text: { type: "plain_text", text: actionId === "approve" ? "Approve" : "Cancel" },
        value,
        style: actionId === "approve" ? "primary" : "danger",
        type: "button",
        action_ts: "1548426417.840180",
      },
    ],
  };
  return new URLSearchParams({ payload: JSON.stringify(payload) }).toString();
}

/** A Slack answer as the routes send it. */
export interface SlackAnswer {
  response_type: "ephemeral" | "in_channel";
  text: string;
  blocks?: Array<{ type: string; elements?: Array<{ action_id?: string; value?: string }> }>;
  replace_original?: boolean;
}

/** The value of the Approve button in an answer, if any. */
export function approveValue(answer: SlackAnswer): string | undefined {
  const actions = answer.blocks?.find((b) => b.type === "actions");
  return actions?.elements?.find((e) => e.action_id === "approve")?.value;
}

/** One captured outbound POST. */
export interface Outbound {
  url: string;
  body: unknown;
}

/**
 * Records outbound POSTs to the given URL prefixes and answers them `ok`; `next(pred)` resolves
 * when a matching post has arrived (an event, not a sleep).
 */
export class OutboundCapture {
  readonly posts: Outbound[] = [];
  private waiters: Array<{ pred: (o: Outbound) => boolean; resolve: (o: Outbound) => void }> = [];

  record(url: string, body: unknown): void {
    const o = { url, body };
    this.posts.push(o);
    for (const w of [...this.waiters]) {
      if (w.pred(o)) {
        this.waiters = this.waiters.filter((x) => x !== w);
        w.resolve(o);
      }
    }
  }

  next(pred: (o: Outbound) => boolean = () => true): Promise<Outbound> {
    const seen = this.posts.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve) => this.waiters.push({ pred, resolve }));
  }
}

/**
 * Stubs globalThis.fetch (undo with `vi.restoreAllMocks()`) so every outbound POST is recorded in
 * the returned capture and answered 200 `ok`; `check` sees each request's init first (it may assert).
 */
export function captureOutbound(check?: (init: RequestInit | undefined) => void): OutboundCapture {
  const outbound = new OutboundCapture();
  vi.spyOn(globalThis, "fetch").mockImplementation(async (input, init) => {
    const url = input instanceof Request ? input.url : String(input);
    check?.(init);
    outbound.record(url, JSON.parse(String(init?.body ?? "null")));
    return new Response("ok");
  });
  return outbound;
}
