/**
 * A plan's approval step in Slack, in workerd (design §11.2, §5b): when the agent reports the
 * step `waiting`, the real notifier posts it once with its message (escaped) and an Approve
 * button; an allowed user's click forwards the approval to the agent with the clicking user as
 * identity (`slack:<user>`) and replaces the message; a second click is refused, as are a user
 * outside `allowedUsers` and a button of an older action.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { ActionRequest } from "../../shared/protocol.ts";
import { slackNotifier } from "../../worker/target/notifier.ts";
import { decodeButtonValue, encodeButtonValue } from "../../worker/target/slack-button-value.ts";
import {
  ALICE,
  approveValue,
  BOB,
  clickBody,
  MALLORY,
  type SlackAnswer,
  type SlackPerson,
  signedPost,
} from "../slack/slack-client.ts";
import { runningReport, waitingSteps } from "./support/plan-agent.ts";
import { useRecordingObject } from "./support/recording-object.ts";
import { fetcher, useSlackRoutes } from "./support/slack-routes.ts";

const T0 = Date.parse("2026-11-22T10:00:00Z");
const WEBHOOK = "https://hooks.slack.test/services/T0001/B0001/secret";
const APPROVALS = "http://127.0.0.1:8788/v1/actions/plan-a:1/approvals";
const rec = useRecordingObject({
  start: T0,
  notifier: slackNotifier({ SLACK_WEBHOOK_URL: WEBHOOK }, { statusUrl: "https://turnout.example.com/" }),
});
const slack = useSlackRoutes();

async function click(action: "approve" | "cancel", value: string, user: SlackPerson): Promise<SlackAnswer> {
  const res = await signedPost(fetcher, "/v1/slack/interactions", clickBody(action, value, user));
  expect(res.status).toBe(200);
  return (await res.json()) as SlackAnswer;
}

/** plan-a fails over and its plan reports the approval step waiting; returns the posted button's value. */
async function waitingInSlack(): Promise<{ req: ActionRequest; value: string; posted: SlackAnswer }> {
  const stub = env.TARGETS.getByName("plan-a");
  expect((await stub.command("plan-a", { command: "failover", actor: "operator" })).applied).toBe(true);
  await stub.settle();
  const req = rec.dispatched.at(-1);
  if (!req) throw new Error("nothing dispatched");
  rec.clock = T0 + 5000;
  await stub.report("plan-a", runningReport(req, rec.clock, waitingSteps(rec.clock, T0 + 905_000)));
  await stub.settle();
  const posted = (await slack.outbound().next((o) => o.url === WEBHOOK && JSON.stringify(o.body).includes("Approve")))
    .body as SlackAnswer;
  return { req, value: approveValue(posted) ?? "", posted };
}

const forwards = () => slack.outbound().posts.filter((p) => p.url === APPROVALS);

describe("a plan's approval step in Slack", () => {
  it("is posted once with its message, escaped, and an Approve button for that step of that action", async () => {
    const { value, posted } = await waitingInSlack();
    expect(decodeButtonValue(value)).toEqual({ v: 1, k: "step", t: "plan-a", a: "plan-a:1", s: "approve-shift" });
    const text = JSON.stringify(posted.blocks);
    expect(text).toContain("*approve-shift* waits for approval until 2026-11-22T10:15:05.000Z");
    expect(text).toContain("Shift the HTTPRoute weights to &lt;secondary&gt;?");
    expect(text).not.toContain("<secondary>");
    expect(posted.text).toContain("step approve-shift of plan-a:1 waits for approval");
    // The agent's re-sent report while it waits posts nothing new.
    const stub = env.TARGETS.getByName("plan-a");
    const req = rec.dispatched[0];
    if (!req) throw new Error("nothing dispatched");
    rec.clock = T0 + 65_000;
    await stub.report("plan-a", runningReport(req, rec.clock, waitingSteps(rec.clock, T0 + 905_000)));
    await stub.settle();
    const buttons = slack.outbound().posts.filter((p) => p.url === WEBHOOK && approveValue(p.body as SlackAnswer));
    expect(buttons).toHaveLength(1);
  });

  it("an allowed user's click approves the step as slack:<user>; a second click and an outsider's are refused", async () => {
    const { value } = await waitingInSlack();
    const outsider = await click("approve", value, MALLORY);
    expect(outsider.text).toContain("refused");
    expect(forwards()).toHaveLength(0);

    const ok = await click("approve", value, BOB);
    expect(ok).toMatchObject({ response_type: "in_channel", replace_original: true });
    expect(ok.text).toContain("step *approve-shift* of `plan-a:1` approved by slack:UBOB(bob)");
    expect(forwards().map((p) => p.body)).toEqual([
      { actionId: "plan-a:1", step: "approve-shift", by: "slack:UBOB(bob)" },
    ]);
    const events = (await env.TARGETS.getByName("plan-a").events(0, 1000)).events;
    expect(events.filter((e) => e.type === "approval.step-approved")).toMatchObject([
      { detail: { step: "approve-shift", by: "slack:UBOB(bob)" } },
    ]);

    const again = await click("approve", value, ALICE);
    expect(again).toMatchObject({ replace_original: false });
    expect(again.text).toContain("already approved by slack:UBOB(bob)");
    expect(forwards()).toHaveLength(1);
  });

  it("a button of an older action, or Cancel, changes nothing", async () => {
    await waitingInSlack();
    const old = encodeButtonValue({ v: 1, k: "step", t: "plan-a", a: "plan-a:0", s: "approve-shift" });
    expect((await click("approve", old, BOB)).text).toContain(
      "the button is for plan-a:0, but the current action is plan-a:1",
    );
    const current = encodeButtonValue({ v: 1, k: "step", t: "plan-a", a: "plan-a:1", s: "approve-shift" });
    expect((await click("cancel", current, BOB)).text).toContain("a plan step has no cancel");
    expect(forwards()).toHaveLength(0);
  });
});
