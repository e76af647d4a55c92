/**
 * The two-person rule through `POST /v1/slack/commands` and `POST /v1/slack/interactions` in
 * workerd: `/turnout failover <t> force <reason>` only posts Approve / Cancel buttons; the
 * requester's own click is refused, a second allowed user's click executes exactly one forced
 * action, a repeated or stale click changes nothing. Approval requests of `approval: required`
 * targets come with the same buttons and are answered by them.
 */
import { runDurableObjectAlarm } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { slackNotifier } from "../../worker/target/notifier.ts";
import { decodeButtonValue } from "../../worker/target/slack-button-value.ts";
import {
  ALICE,
  approveValue,
  BOB,
  clickBody,
  MALLORY,
  RESPONSE_PREFIX,
  type SlackAnswer,
  type SlackPerson,
  signedPost,
  slashBody,
} from "../slack/slack-client.ts";
import { postAlert } from "./support/post-alert.ts";
import { useRecordingObject } from "./support/recording-object.ts";
import { fetcher, useSlackRoutes } from "./support/slack-routes.ts";

const T0 = Date.parse("2026-11-22T10:00:00Z");
const WEBHOOK = "https://hooks.slack.test/services/T0001/B0001/secret";
// The real notifier, posting to a webhook URL whose requests the fetch stub captures.
const rec = useRecordingObject({
  start: T0,
  notifier: slackNotifier({ SLACK_WEBHOOK_URL: WEBHOOK }, { statusUrl: "https://turnout.example.com/" }),
});
const slack = useSlackRoutes();

async function slash(text: string, user: SlackPerson = ALICE): Promise<SlackAnswer> {
  const res = await signedPost(fetcher, "/v1/slack/commands", slashBody(text, user));
  expect(res.status).toBe(200);
  return (await res.json()) as SlackAnswer;
}

async function click(action: "approve" | "cancel", value: string, user: SlackPerson): Promise<SlackAnswer> {
  const res = await signedPost(fetcher, "/v1/slack/interactions", clickBody(action, value, user));
  expect(res.status).toBe(200);
  return (await res.json()) as SlackAnswer;
}

async function settle(target: string): Promise<void> {
  await env.TARGETS.getByName(target).settle();
}

async function alert(target: string, side: "primary" | "secondary", fingerprint: string): Promise<void> {
  const res = await postAlert({ labels: { alertname: "Slack", target, side }, startsAt: T0 - 1000, fingerprint });
  expect(res.status).toBe(200);
}

async function forceRequest(target = "slack-a"): Promise<string> {
  const a = await slash(`failover ${target} force primary DC on fire`);
  expect(a.response_type).toBe("in_channel");
  const value = approveValue(a);
  expect(value).toBeDefined();
  return value ?? "";
}

describe("break-glass through Slack", () => {
  it("a forced failover posts an approval message with buttons and does not execute", async () => {
    const a = await slash("failover slack-a force primary DC on fire");
    expect(a.response_type).toBe("in_channel");
    expect(a.text).toContain("<@UALICE> wants a FORCED `failover` of *slack-a*");
    expect(a.text).toContain("Reason: primary DC on fire");
    const value = decodeButtonValue(approveValue(a) ?? "");
    expect(value).toMatchObject({ k: "break-glass", t: "slack-a", c: "failover", r: "UALICE", e: 0, p: "steady" });
    expect(value?.k === "break-glass" && value.n).toMatch(/^[0-9a-f]{32}$/);
    await settle("slack-a");
    expect(rec.dispatched).toHaveLength(0);
  });

  it("refuses the requester's own approval; a second allowed user's click executes exactly one forced action", async () => {
    await alert("slack-a", "secondary", "slacka2000000001"); // secondary down: only force may switch to it
    const plain = await slash("failover slack-a");
    expect(plain.text).toContain("secondary is down");
    const value = await forceRequest();

    const own = await click("approve", value, ALICE);
    expect(own).toMatchObject({ response_type: "ephemeral", replace_original: false });
    expect(own.text).toContain("a second person must approve");
    const ownFollowUp = await slack.outbound().next((o) => o.url.startsWith(`${RESPONSE_PREFIX}actions/`));
    expect(ownFollowUp.body).toMatchObject({ response_type: "ephemeral", replace_original: false });

    const outsider = await click("approve", value, MALLORY);
    expect(outsider.text).toContain("chatops.slack.allowedUsers");
    await settle("slack-a");
    expect(rec.dispatched).toHaveLength(0);

    const approved = await click("approve", value, BOB);
    expect(approved).toMatchObject({ response_type: "in_channel", replace_original: true });
    expect(approved.text).toContain("requested by slack:UALICE(alice), approved by slack:UBOB(bob)");
    expect(approveValue(approved)).toBeUndefined(); // the buttons are gone from the message
    await settle("slack-a");
    expect(rec.dispatched).toEqual([
      expect.objectContaining({ id: "slack-a:1", kind: "failover", to: "secondary", force: true }),
    ]);

    const events = (await env.TARGETS.getByName("slack-a").events(0, 100)).events;
    const types = events.map((e) => e.type);
    expect(types).toEqual(
      expect.arrayContaining(["breakglass.requested", "breakglass.approved", "command.accepted", "command.forced"]),
    );
    expect(events.find((e) => e.type === "breakglass.requested")?.detail).toMatchObject({
      requester: "slack:UALICE(alice)",
    });
    expect(events.find((e) => e.type === "command.forced")?.detail).toMatchObject({ actor: "slack:UBOB(bob)" });
    const accepted = events.filter((e) => e.type === "command.accepted");
    expect(accepted.at(-1)?.detail).toMatchObject({ actor: "slack:UBOB(bob)", force: true });
    expect(JSON.stringify(accepted.at(-1)?.detail)).toContain("slack:UALICE(alice)");

    // The same button again: already done, nothing changes.
    const again = await click("approve", value, BOB);
    expect(again.response_type).toBe("ephemeral");
    expect(again.text).toContain("already done");
    await settle("slack-a");
    expect(rec.dispatched).toHaveLength(1);
    expect((await env.TARGETS.getByName("slack-a").events(0, 100)).events).toHaveLength(events.length);
  });

  it("a stale button (the target's epoch moved) answers with an explanation and changes nothing", async () => {
    const value = await forceRequest();
    expect((await slash("failover slack-a routine")).text).toContain("accepted"); // epoch 0 → 1
    await settle("slack-a");
    expect(rec.dispatched).toHaveLength(1);
    const stale = await click("approve", value, BOB);
    expect(stale.response_type).toBe("ephemeral");
    expect(stale.text).toContain("stale request");
    expect(stale.text).toContain("epoch 0 then, 1 now");
    await settle("slack-a");
    expect(rec.dispatched).toHaveLength(1);
  });

  it("Cancel closes the request for everyone; Approve after it is 'already done'", async () => {
    const value = await forceRequest();
    const cancelled = await click("cancel", value, ALICE);
    expect(cancelled).toMatchObject({ response_type: "in_channel", replace_original: true });
    expect(cancelled.text).toContain("cancelled by slack:UALICE(alice)");
    const late = await click("approve", value, BOB);
    expect(late.text).toContain("already done");
    await settle("slack-a");
    expect(rec.dispatched).toHaveLength(0);
  });

  it("a button that is not turnout's, or names an unknown target, changes nothing", async () => {
    expect((await click("approve", "not-json", BOB)).text).toContain("not one turnout understands");
    const forged = JSON.stringify({ v: 1, k: "approval", t: "nope", e: 0, d: T0 });
    expect((await click("approve", forged, BOB)).text).toContain("no longer configured");
    expect(rec.dispatched).toHaveLength(0);
  });

  it("acknowledges other interaction types with an empty 200 and does nothing", async () => {
    const body = new URLSearchParams({ payload: JSON.stringify({ type: "shortcut", callback_id: "x" }) }).toString();
    const res = await signedPost(fetcher, "/v1/slack/interactions", body);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("");
  });

  it("answers a signed interaction with a malformed payload 400 naming the fields", async () => {
    const res = await signedPost(
      fetcher,
      "/v1/slack/interactions",
      new URLSearchParams({ payload: JSON.stringify({ type: "block_actions", actions: [] }) }).toString(),
    );
    expect(res.status).toBe(400);
    const body = (await res.json()) as { errors: Array<{ path: string }> };
    expect(body.errors.map((e) => e.path)).toEqual(expect.arrayContaining(["body.payload.user"]));
  });
});

describe("approval requests of approval: required targets", () => {
  async function awaitingApproval(): Promise<string> {
    await alert("slack-approval", "primary", "slackap000000001");
    rec.clock = T0 + 30_000;
    const stub = env.TARGETS.getByName("slack-approval");
    await runDurableObjectAlarm(stub);
    await stub.settle();
    expect((await stub.view("slack-approval")).phase).toBe("awaiting_approval");
    const posted = await slack.outbound().next((o) => o.url === WEBHOOK && JSON.stringify(o.body).includes("Approve"));
    const body = posted.body as SlackAnswer;
    expect(body.text).toContain("*slack-approval*: approve failover primary → secondary?");
    const value = approveValue(body);
    expect(decodeButtonValue(value ?? "")).toMatchObject({ k: "approval", t: "slack-approval", e: 0 });
    return value ?? "";
  }

  it("are posted with Approve / Cancel buttons, and an allowed user's Approve dispatches once", async () => {
    const value = await awaitingApproval();
    const outsider = await click("approve", value, MALLORY);
    expect(outsider.text).toContain("refused");
    const ok = await click("approve", value, BOB);
    expect(ok).toMatchObject({ response_type: "in_channel", replace_original: true });
    expect(ok.text).toContain("approved by slack:UBOB(bob)");
    await settle("slack-approval");
    expect(rec.dispatched).toEqual([
      expect.objectContaining({ id: "slack-approval:1", kind: "failover", force: false }),
    ]);
    const again = await click("approve", value, ALICE);
    expect(again.text).toContain("stale button");
    await settle("slack-approval");
    expect(rec.dispatched).toHaveLength(1);
  });

  it("can also be approved with /turnout approve <target>", async () => {
    await awaitingApproval();
    const a = await slash("approve slack-approval", BOB);
    expect(a.response_type).toBe("in_channel");
    expect(a.text).toContain("<@UBOB> ran `approve slack-approval`: accepted");
    await settle("slack-approval");
    expect(rec.dispatched).toEqual([expect.objectContaining({ id: "slack-approval:1", kind: "failover" })]);
  });

  it("Cancel dismisses the request; a button of an older request cannot answer a newer one", async () => {
    const value = await awaitingApproval();
    const cancelled = await click("cancel", value, ALICE);
    expect(cancelled.text).toContain("cancelled by slack:UALICE(alice)");
    expect((await env.TARGETS.getByName("slack-approval").view("slack-approval")).phase).toBe("steady");
    const old = JSON.stringify({ ...JSON.parse(value), d: T0 });
    expect((await click("approve", old, BOB)).text).toContain("stale button");
    await settle("slack-approval");
    expect(rec.dispatched).toHaveLength(0);
  });
});
