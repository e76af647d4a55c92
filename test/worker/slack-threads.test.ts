/**
 * Notifications through a bot token are threaded per incident (design §5b): the first message of
 * an incident is posted to `chatops.slack.notifyChannel`, every later one replies in its thread,
 * and the message that finds the target settled again closes the incident and is broadcast to
 * the channel. The thread survives the object's eviction. Slack's `chat.postMessage` is a fake
 * behind a stubbed fetch that checks what Slack checks (token, channel) and hands out `ts`s.
 */
import { evictDurableObject } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { ActionRequest } from "../../shared/protocol.ts";
import { slackNotifier } from "../../worker/target/notifier.ts";
import { postAlert } from "./support/post-alert.ts";
import { useRecordingObject } from "./support/recording-object.ts";
import { succeededReport } from "./support/reports.ts";

const T0 = Date.parse("2026-11-22T10:00:00Z");
const API = "https://slack.test/api";
const TOKEN = "xoxb-test-token";
const CHANNEL = "CNOTIFY1";
const STATUS = "https://turnout.example.com/";

interface Posted {
  ts: string;
  channel: string;
  text: string;
  thread_ts?: string;
  reply_broadcast?: boolean;
  blocks: Array<{ type: string }>;
}

/** A minimal chat.postMessage: 200 with `ok` and a fresh `ts`, or `ok: false` with Slack's error code. */
class FakeSlack {
  readonly messages: Posted[] = [];
  readonly refused: string[] = [];
  failNext: string | undefined;
  private seq = 0;

  async handle(url: string, init: RequestInit | undefined): Promise<Response> {
    if (url !== `${API}/chat.postMessage`) return new Response("not found", { status: 404 });
    const headers = new Headers(init?.headers);
    const json = (body: unknown) => Response.json(body);
    if (headers.get("authorization") !== `Bearer ${TOKEN}`) return json({ ok: false, error: "invalid_auth" });
    if (!headers.get("content-type")?.startsWith("application/json"))
      return json({ ok: false, error: "invalid_form_data" });
    const body = JSON.parse(String(init?.body)) as Omit<Posted, "ts">;
    if (this.failNext) {
      const error = this.failNext;
      this.failNext = undefined;
      this.refused.push(error);
      return json({ ok: false, error });
    }
    if (body.channel !== CHANNEL) return json({ ok: false, error: "channel_not_found" });
    if (body.thread_ts && !this.messages.some((m) => m.ts === body.thread_ts && !m.thread_ts)) {
      throw new Error(`thread_ts ${body.thread_ts} is not a root message's ts`);
    }
    this.seq += 1;
    const ts = `1795330000.${String(this.seq).padStart(6, "0")}`;
    this.messages.push({ ...body, ts });
    return json({ ok: true, channel: CHANNEL, ts, message: { type: "message", text: body.text, ts } });
  }

  /** Messages of the thread under `rootTs`, oldest first. */
  replies(rootTs: string): Posted[] {
    return this.messages.filter((m) => m.thread_ts === rootTs);
  }
}

const rec = useRecordingObject({
  start: T0,
  notifier: slackNotifier({ SLACK_BOT_TOKEN: TOKEN, SLACK_API_URL: API }, { statusUrl: STATUS, channel: CHANNEL }),
});
let slack: FakeSlack;

beforeEach(() => {
  slack = new FakeSlack();
  vi.spyOn(globalThis, "fetch").mockImplementation(async (input, init) =>
    slack.handle(input instanceof Request ? input.url : String(input), init),
  );
});
afterEach(() => {
  vi.restoreAllMocks();
});

async function alert(target: string, side: "primary" | "secondary", status: "firing" | "resolved") {
  const res = await postAlert({
    status,
    labels: { alertname: "Decide", target, side },
    startsAt: T0 - 1000,
    endsAt: rec.clock,
    fingerprint: `${target}-${side}`.padEnd(16, "0").slice(0, 16),
  });
  expect(res.status).toBe(200);
  await env.TARGETS.getByName(target).settle();
}

async function succeed(req: ActionRequest): Promise<void> {
  const report = succeededReport(req, rec.clock);
  const stub = env.TARGETS.getByName(req.target);
  expect(await stub.report(req.target, report)).toEqual({ accepted: true });
  await stub.settle();
}

describe("Slack notifications through a bot token", () => {
  it("threads an incident from the first alert to the final report, and broadcasts the outcome", async () => {
    await alert("decide-auto", "primary", "firing");
    expect(slack.messages).toHaveLength(1);
    const root = slack.messages[0] as Posted;
    expect(root).toMatchObject({ channel: CHANNEL });
    expect(root.thread_ts).toBeUndefined();
    expect(root.text).toContain("*decide-auto*: steady → pending");

    await rec.fireAlarm("decide-auto", T0 + 30_000);
    const req = rec.dispatched[0] as ActionRequest;
    await succeed(req);

    const replies = slack.replies(root.ts);
    expect(replies.length).toBeGreaterThanOrEqual(3);
    expect(replies.length).toBe(slack.messages.length - 1);
    // In the order the machine emitted them: the switch starts, the result, the return to steady.
    const order = ["pending → executing", "succeeded: secondary is now active", "executing → steady"];
    const at = order.map((s) => replies.findIndex((m) => m.text.includes(s)));
    expect(at.every((i) => i >= 0)).toBe(true);
    expect([...at].sort((a, b) => a - b)).toEqual(at);
    // Only the message that ends the incident is broadcast to the channel.
    expect(replies.filter((m) => m.reply_broadcast).map((m) => m.text)).toEqual([
      expect.stringContaining("executing → steady"),
    ]);
    expect(replies.at(-1)?.reply_broadcast).toBe(true);

    // The next incident (the new active side goes down) starts a new thread.
    const before = slack.messages.length;
    await alert("decide-auto", "secondary", "firing");
    const next = slack.messages.slice(before);
    expect(next).toHaveLength(1);
    expect(next[0]?.thread_ts).toBeUndefined();
    expect(next[0]?.ts).not.toBe(root.ts);
  });

  it("a recovery during the hold is a two-message thread: the hold, then the broadcast recovery", async () => {
    await alert("decide-auto", "primary", "firing");
    await alert("decide-auto", "primary", "resolved");
    const [root, reply, ...rest] = slack.messages;
    expect(rest).toEqual([]);
    expect(reply).toMatchObject({ thread_ts: root?.ts, reply_broadcast: true });
    expect(reply?.text).toContain("pending → steady");
    expect(rec.dispatched).toEqual([]);
  });

  it("keeps the thread across an eviction of the target's object", async () => {
    await alert("decide-auto", "primary", "firing");
    const root = slack.messages[0] as Posted;
    await evictDurableObject(env.TARGETS.getByName("decide-auto"));
    await alert("decide-auto", "primary", "resolved");
    expect(slack.messages[1]).toMatchObject({ thread_ts: root.ts });
  });

  it("an approval request stays in the incident's thread, with its buttons, until it is answered", async () => {
    await alert("decide-approval", "primary", "firing");
    await rec.fireAlarm("decide-approval", T0 + 30_000);
    const [root, ...replies] = slack.messages;
    const ask = replies.find((m) => m.blocks.some((b) => b.type === "actions"));
    expect(ask).toMatchObject({ thread_ts: root?.ts });
    expect(ask?.reply_broadcast).toBeUndefined();
    const res = await exports.default.fetch("http://w/v1/targets/decide-approval/commands", {
      method: "POST",
      headers: { authorization: "Bearer test-operator-token", "content-type": "application/json" },
      body: JSON.stringify({ command: "cancel", actor: "ops", reason: "not now" }),
    });
    expect(res.status).toBe(200);
    await env.TARGETS.getByName("decide-approval").settle();
    const last = slack.messages.at(-1);
    expect(last).toMatchObject({ thread_ts: root?.ts, reply_broadcast: true });
  });

  it("a refused post is logged and opens no thread: the next message is a root again", async () => {
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    slack.failNext = "ratelimited";
    await alert("decide-auto", "primary", "firing");
    expect(slack.refused).toEqual(["ratelimited"]);
    expect(warn.mock.calls.map((c) => String(c[0]))).toEqual([expect.stringContaining('"error":"ratelimited"')]);
    await alert("decide-auto", "primary", "resolved");
    expect(slack.messages).toHaveLength(1);
    expect(slack.messages[0]?.thread_ts).toBeUndefined();
  });
});

describe("slackNotifier's choice of channel", () => {
  it("uses the webhook without a bot token or without a channel, and nothing when neither is set", async () => {
    const calls: string[] = [];
    vi.spyOn(globalThis, "fetch").mockImplementation(async (input) => {
      calls.push(input instanceof Request ? input.url : String(input));
      return Response.json({ ok: true, ts: "1.000001" });
    });
    const n = { target: "t", text: "t: hello", kind: "phase" };
    const hook = "https://hooks.slack.test/services/T/B/x";
    await slackNotifier({ SLACK_WEBHOOK_URL: hook, SLACK_BOT_TOKEN: TOKEN }).notify(n);
    await slackNotifier({ SLACK_WEBHOOK_URL: hook }, { channel: CHANNEL }).notify(n);
    await slackNotifier({}, { channel: CHANNEL }).notify(n);
    await slackNotifier({ SLACK_WEBHOOK_URL: hook, SLACK_BOT_TOKEN: TOKEN }, { channel: CHANNEL }).notify(n);
    expect(calls).toEqual([hook, hook, "https://slack.com/api/chat.postMessage"]);
  });
});
