/**
 * `POST /v1/slack/commands` in workerd: the signature is checked on the raw body before anything
 * else, `ssl_check` probes pass unsigned, and every `/turnout` command answers Block Kit JSON with
 * its happy path and its refusals (unauthorized user, wrong channel, typo, unknown target, 409).
 */
import { env, exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { ActionReport } from "../../shared/protocol.ts";
import { HELP_TEXT } from "../../worker/http/slack/parse.ts";
import { answerWithin, postToResponseUrl, slackTesting } from "../../worker/http/slack/respond.ts";
import type { SlackMessage } from "../../worker/target/slack-blocks.ts";
import sslCheckBody from "../fixtures/slack/slack-ssl-check-boltjs.txt?raw";
import testConfig from "../fixtures/worker-test-config.json" with { type: "json" };
import {
  ALICE,
  BOB,
  MALLORY,
  RESPONSE_PREFIX,
  type SlackAnswer,
  signedPost,
  slashBody,
} from "../slack/slack-client.ts";
import { postAlert } from "./support/post-alert.ts";
import { useRecordingObject } from "./support/recording-object.ts";
import { fetcher, useSlackRoutes } from "./support/slack-routes.ts";

const T0 = Date.parse("2026-11-22T10:00:00Z");
const rec = useRecordingObject({ start: T0 });
const slack = useSlackRoutes();

/** slack-c's primary fires (alert `fingerprint`): the target is pending, inside its hold. */
async function slackCPrimaryDown(fingerprint: string): Promise<void> {
  const ingest = await postAlert({
    labels: { alertname: "Slack", target: "slack-c", side: "primary" },
    startsAt: T0 - 1000,
    fingerprint,
  });
  expect(ingest.status).toBe(200);
  expect((await env.TARGETS.getByName("slack-c").view("slack-c")).phase).toBe("pending");
}

async function slash(text: string, user = ALICE, channel = { id: "COPS", name: "ops" }): Promise<SlackAnswer> {
  const res = await signedPost(fetcher, "/v1/slack/commands", slashBody(text, user, channel));
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toMatch(/^application\/json/);
  return (await res.json()) as SlackAnswer;
}

async function settle(target: string): Promise<void> {
  await env.TARGETS.getByName(target).settle();
}

describe("Slack signature at the route", () => {
  const garbage = "%%%not=a&&form%ZZ body \u0000";

  async function problem(res: Response): Promise<{ status: number; detail: string; reason: string }> {
    expect(res.status).toBe(401);
    expect(res.headers.get("content-type")).toBe("application/problem+json");
    return (await res.json()) as { status: number; detail: string; reason: string };
  }

  it.each([
    ["a missing signature", "missing", { "x-slack-request-timestamp": "1" }],
    ["no headers at all", "missing", {}],
    ["a malformed signature", "malformed", { "x-slack-request-timestamp": "1", "x-slack-signature": "v1=abc" }],
  ])("answers 401 for %s, even when the body cannot be parsed", async (_n, reason, headers) => {
    for (const path of ["/v1/slack/commands", "/v1/slack/interactions"]) {
      const res = await exports.default.fetch(`http://w${path}`, { method: "POST", headers, body: garbage });
      expect(await problem(res)).toMatchObject({ status: 401, reason });
    }
  });

  it("answers 401 for a wrong secret, a tampered body, a stale and a future timestamp", async () => {
    const now = Math.floor(Date.now() / 1000);
    const body = slashBody("failover slack-a");
    const cases: Array<[string, Promise<Response>]> = [
      ["mismatch", signedPost(fetcher, "/v1/slack/commands", body, { secret: "not-the-secret" })],
      ["stale", signedPost(fetcher, "/v1/slack/commands", body, { timestamp: now - 301 })],
      ["future", signedPost(fetcher, "/v1/slack/commands", body, { timestamp: now + 360 })],
      ["mismatch", signedPost(fetcher, "/v1/slack/interactions", garbage, { secret: "not-the-secret" })],
    ];
    for (const [reason, res] of cases) {
      const p = await problem(await res);
      expect(p.reason).toBe(reason);
      expect(p.detail).toMatch(/X-Slack/);
    }
    // Tampered: a valid signature over one body, another body sent.
    const ts = String(now);
    const { signSlackRequest } = await import("../../worker/http/slack/signature.ts");
    const sig = await signSlackRequest("test-slack-secret", now, body);
    const tampered = await exports.default.fetch("http://w/v1/slack/commands", {
      method: "POST",
      headers: { "x-slack-request-timestamp": ts, "x-slack-signature": sig },
      body: body.replace("slack-a", "slack-b"),
    });
    expect((await problem(tampered)).reason).toBe("mismatch");
    expect(rec.dispatched).toHaveLength(0);
  });

  it("answers Slack's unsigned ssl_check probe 200, but nothing else that merely contains ssl_check", async () => {
    const probe = await exports.default.fetch("http://w/v1/slack/commands", { method: "POST", body: sslCheckBody });
    expect(probe.status).toBe(200);
    const sneaky = `${sslCheckBody}&${slashBody("failover slack-a")}`;
    const res = await exports.default.fetch("http://w/v1/slack/commands", { method: "POST", body: sneaky });
    expect(res.status).toBe(401);
    expect(rec.dispatched).toHaveLength(0);
  });

  it("answers 400 naming the missing fields of a signed body that is not a slash command", async () => {
    const res = await signedPost(fetcher, "/v1/slack/commands", "text=status");
    expect(res.status).toBe(400);
    const body = (await res.json()) as { errors: Array<{ path: string }> };
    expect(body.errors.map((e) => e.path)).toEqual(expect.arrayContaining(["body.user_id", "body.channel_id"]));
  });
});

describe("/turnout commands", () => {
  it("help (and an empty command) answers the help text, ephemeral", async () => {
    for (const text of ["help", ""]) {
      const a = await slash(text, MALLORY);
      expect(a).toMatchObject({ response_type: "ephemeral", text: HELP_TEXT });
    }
  });

  it("status renders every target's phase and active side, for anyone", async () => {
    await slash("failover slack-a");
    const a = await slash("status", MALLORY, { id: "CRANDOM", name: "random" });
    expect(a.response_type).toBe("ephemeral");
    for (const name of Object.keys(testConfig.targets)) expect(a.text).toContain(`*${name}*`);
    expect(a.text).toContain("*slack-a* — active *primary*, phase `executing`");
    expect(a.text).toContain("*slack-b* — active *primary*, phase `steady`");
    expect(a.text).toContain("*quorum-two* — active *secondary*");
    expect(JSON.stringify(a.blocks)).toContain("https://turnout.example.com/");
    const one = await slash("status slack-a", MALLORY);
    expect(one.blocks?.filter((b) => b.type === "section")).toHaveLength(1);
  });

  it("a typo gets a suggestion, an unknown target the closest name; nothing is dispatched", async () => {
    expect((await slash("failovr slack-a")).text).toContain("did you mean `failover`?");
    const unknown = await slash("failover slack-aa");
    expect(unknown).toMatchObject({ response_type: "ephemeral" });
    expect(unknown.text).toContain("unknown target `slack-aa`; did you mean `slack-a`?");
    expect((await slash("status slakc-b")).text).toContain("did you mean `slack-b`?");
    expect(rec.dispatched).toHaveLength(0);
  });

  it("failover by an allowed user dispatches, in channel, with the Slack user as the audited actor", async () => {
    const a = await slash("failover slack-a gw-a is dead");
    expect(a.response_type).toBe("in_channel");
    expect(a.text).toContain("<@UALICE> ran `failover slack-a` (gw-a is dead): accepted");
    expect(a.text).toContain("failover `slack-a:1` primary → secondary");
    await settle("slack-a");
    expect(rec.dispatched).toEqual([
      expect.objectContaining({
        id: "slack-a:1",
        kind: "failover",
        to: "secondary",
        force: false,
        reason: "gw-a is dead",
      }),
    ]);
    const events = (await env.TARGETS.getByName("slack-a").events(0, 50)).events;
    expect(events.find((e) => e.type === "command.accepted")?.detail).toMatchObject({
      command: "failover",
      actor: "slack:UALICE(alice)",
      reason: "gw-a is dead",
    });
  });

  it("refuses mutating commands from users outside allowedUsers, ephemeral, with why", async () => {
    for (const text of ["failover slack-a", "pause slack-a", "drill slack-a", "failover slack-a force now"]) {
      const a = await slash(text, MALLORY);
      expect(a.response_type).toBe("ephemeral");
      expect(a.text).toContain("refused");
      expect(a.text).toContain("chatops.slack.allowedUsers");
      expect(a.text).toContain("UMALLORY");
    }
    await settle("slack-a");
    expect(rec.dispatched).toHaveLength(0);
    expect((await env.TARGETS.getByName("slack-a").events(0, 50)).events).toHaveLength(0);
  });

  it("refuses mutating commands outside allowedChannels, judged by channel id, never by name", async () => {
    const a = await slash("pause slack-a", ALICE, { id: "CRANDOM", name: "random" });
    expect(a.response_type).toBe("ephemeral");
    expect(a.text).toContain("chatops.slack.allowedChannels");
    expect(a.text).toContain("<#COPS>");
    // A channel renamed to an allowed channel's name (or a new one taking it) gains nothing.
    const renamed = await slash("pause slack-a", ALICE, { id: "CIMPOSTER", name: "ops" });
    expect(renamed.response_type).toBe("ephemeral");
    expect((await env.TARGETS.getByName("slack-a").view("slack-a")).paused).toBe(false);
    const byId = await slash("pause slack-a", ALICE, { id: "CINCIDENT", name: "incident-room" });
    expect(byId.response_type).toBe("in_channel");
    expect((await env.TARGETS.getByName("slack-a").view("slack-a")).paused).toBe(true);
  });

  it("failback by an allowed user, once the other side is active, dispatches the switch home", async () => {
    await slash("failover slack-b");
    await settle("slack-b");
    const stub = env.TARGETS.getByName("slack-b");
    await stub.report("slack-b", {
      actionId: "slack-b:1",
      target: "slack-b",
      status: "succeeded",
      activeSide: "secondary",
      dryRun: false,
      steps: [],
      at: new Date(T0).toISOString(),
    });
    const a = await slash("failback slack-b primary is healthy again", BOB);
    expect(a.response_type).toBe("in_channel");
    expect(a.text).toContain("<@UBOB> ran `failback slack-b` (primary is healthy again): accepted");
    await settle("slack-b");
    expect(rec.dispatched.at(-1)).toMatchObject({
      id: "slack-b:2",
      kind: "failback",
      from: "secondary",
      to: "primary",
    });
  });

  it("shows a 409 from the object as an ephemeral explanation", async () => {
    const a = await slash("failback slack-b");
    expect(a.response_type).toBe("ephemeral");
    expect(a.text).toContain("`failback slack-b` was refused by the target: failback: primary is already active");
    expect(a.text).toContain("active *primary*, phase `steady`");
  });

  it("pause, resume, drill, cancel, approve and retry: happy path and the object's refusal", async () => {
    expect((await slash("pause slack-c")).text).toContain("accepted");
    expect((await slash("pause slack-c")).text).toContain("target is already paused");
    expect((await slash("resume slack-c")).text).toContain("accepted");
    expect((await slash("resume slack-c")).text).toContain("target is not paused");

    const drill = await slash("drill slack-d");
    expect(drill.text).toContain("accepted");
    await settle("slack-d");
    expect(rec.dispatched.at(-1)).toMatchObject({ id: "slack-d:1", kind: "drill", dryRun: true });
    expect((await slash("drill slack-d")).text).toContain("refused by the target");

    expect((await slash("cancel slack-e")).text).toContain("nothing to cancel");
    expect((await slash("approve slack-e")).text).toContain("nothing awaits approval");
    expect((await slash("retry slack-e")).text).toContain("nothing to retry");

    // retry: a failed failover is dispatched again under a new id.
    await slash("failover slack-e");
    await settle("slack-e");
    const failed: ActionReport = {
      actionId: "slack-e:1",
      target: "slack-e",
      status: "failed",
      dryRun: false,
      steps: [{ name: "switch", status: "failed" }],
      error: { code: "boom", message: "route did not converge" },
      at: new Date(T0).toISOString(),
    };
    await env.TARGETS.getByName("slack-e").report("slack-e", failed);
    expect((await env.TARGETS.getByName("slack-e").view("slack-e")).phase).toBe("failed");
    const retry = await slash("retry slack-e");
    expect(retry.text).toContain("accepted");
    await settle("slack-e");
    expect(rec.dispatched.at(-1)).toMatchObject({ id: "slack-e:2", kind: "failover", to: "secondary" });

    // cancel: a pending failover (primary down, inside the hold) is dismissed.
    await slackCPrimaryDown("slackc0000000001");
    const cancel = await slash("cancel slack-c");
    expect(cancel.text).toContain("accepted");
    expect(cancel.text).toContain("phase `steady`");
  });
});

describe("/turnout revert and clear reach the target's object", () => {
  it("clear forgets a firing signal, audited with the Slack user; revert with nothing to revert is refused", async () => {
    await slackCPrimaryDown("slackc0000000002");
    const cleared = await slash("clear slack-c am:slackc0000000002 stuck after maintenance");
    expect(cleared.response_type).toBe("in_channel");
    const events = (await env.TARGETS.getByName("slack-c").events(0, 100)).events;
    expect(events.find((e) => e.type === "signal.cleared")?.detail).toMatchObject({
      key: "am:slackc0000000002",
      actor: "slack:UALICE(alice)",
      reason: "stuck after maintenance",
    });
    const unknown = await slash("clear slack-c am:nothing-like-it");
    expect(unknown).toMatchObject({ response_type: "ephemeral" });
    expect(unknown.text).toContain("no stored signal with key am:nothing-like-it");
    const revert = await slash("revert slack-b");
    expect(revert).toMatchObject({ response_type: "ephemeral" });
    expect(revert.text).toContain("nothing to revert");
  });
});

describe("the 3 s acknowledgement", () => {
  it("answers the object's message when it is in time", async () => {
    const later: SlackMessage[] = [];
    const answer = await answerWithin(
      Promise.resolve({ response_type: "in_channel", text: "done" }),
      { response_type: "ephemeral", text: "working on it" },
      async (m) => void later.push(m),
      () => {},
    );
    expect(answer.text).toBe("done");
    expect(later).toEqual([]);
  });

  it("when the object is slower than the deadline, acknowledges at once and posts the answer to response_url later", async () => {
    slackTesting.ackDeadlineMs = 0;
    let finish: (m: SlackMessage) => void = () => {};
    const slow = new Promise<SlackMessage>((resolve) => {
      finish = resolve;
    });
    const background: Promise<unknown>[] = [];
    const answer = await answerWithin(
      slow,
      { response_type: "ephemeral", text: "working on it" },
      (m) => postToResponseUrl(env, `${RESPONSE_PREFIX}commands/1/xyz`, m),
      (p) => void background.push(p),
    );
    expect(answer.text).toBe("working on it");
    expect(slack.outbound().posts).toHaveLength(0);
    finish({ response_type: "in_channel", text: "accepted" });
    await Promise.all(background);
    expect(slack.outbound().posts).toEqual([
      { url: `${RESPONSE_PREFIX}commands/1/xyz`, body: { response_type: "in_channel", text: "accepted" } },
    ]);
  });
});

describe("response_url follow-ups", () => {
  it("go only to the allowed prefix (https://hooks.slack.com/ in production)", async () => {
    await postToResponseUrl(env, "https://evil.example/steal", { response_type: "ephemeral", text: "x" });
    await postToResponseUrl(env, `${RESPONSE_PREFIX}ok`, { response_type: "ephemeral", text: "y" });
    expect(slack.outbound().posts.map((p) => p.url)).toEqual([`${RESPONSE_PREFIX}ok`]);
    delete slackTesting.responseUrlPrefix;
    await postToResponseUrl(env, `${RESPONSE_PREFIX}no`, { response_type: "ephemeral", text: "z" });
    await postToResponseUrl(env, "https://hooks.slack.com/commands/T/1/x", { response_type: "ephemeral", text: "w" });
    expect(slack.outbound().posts.map((p) => p.url)).toEqual([
      `${RESPONSE_PREFIX}ok`,
      "https://hooks.slack.com/commands/T/1/x",
    ]);
    // The SLACK_RESPONSE_URL_PREFIX var overrides the prefix (local runs against a fake Slack).
    await postToResponseUrl({ ...env, SLACK_RESPONSE_URL_PREFIX: "http://127.0.0.1:9/" }, "http://127.0.0.1:9/r", {
      response_type: "ephemeral",
      text: "v",
    });
    expect(slack.outbound().posts.at(-1)?.url).toBe("http://127.0.0.1:9/r");
  });
});
