/**
 * Notifications in workerd (design §5b): the TargetObject posts one Slack webhook message per
 * event through the real `slackNotifier`; the outbound requests are captured by stubbing
 * globalThis.fetch. Failover start, success (with step durations) and failure are each posted
 * with the target, the sides, the cause and the status page link.
 */
import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { ActionReport, ActionRequest } from "../../shared/protocol.ts";
import { slackNotifier } from "../../worker/target/notifier.ts";
import { captureOutbound, type Outbound, type OutboundCapture } from "../slack/slack-client.ts";
import { useRecordingObject } from "./support/recording-object.ts";

const T0 = Date.parse("2026-11-22T10:00:00Z");
const WEBHOOK = "https://hooks.slack.test/services/T0001/B0001/secret";
const STATUS = "https://turnout.example.com/";
const rec = useRecordingObject({
  start: T0,
  notifier: slackNotifier({ SLACK_WEBHOOK_URL: WEBHOOK }, { statusUrl: STATUS }),
});
let outbound: OutboundCapture;

beforeEach(() => {
  outbound = captureOutbound((init) => {
    expect(init?.method).toBe("POST");
    expect(new Headers(init?.headers).get("content-type")).toBe("application/json");
  });
});
afterEach(async () => {
  vi.restoreAllMocks();
});

const texts = (posts: Outbound[]) => posts.map((p) => (p.body as { text: string }).text);

async function startFailover(target: string): Promise<ActionRequest> {
  const stub = env.TARGETS.getByName(target);
  const r = await stub.command(target, { command: "failover", actor: "slack:UALICE(alice)", reason: "gw-a dead" });
  expect(r.applied).toBe(true);
  await stub.settle();
  const req = rec.dispatched.at(-1);
  if (!req) throw new Error("nothing dispatched");
  return req;
}

function report(req: ActionRequest, status: "succeeded" | "failed"): ActionReport {
  return {
    actionId: req.id,
    target: req.target,
    status,
    ...(status === "succeeded" ? { activeSide: req.to } : {}),
    dryRun: false,
    steps: [
      {
        name: "delete-primary-route",
        status: "succeeded",
        startedAt: "2026-11-22T10:00:01.000Z",
        finishedAt: "2026-11-22T10:00:03.400Z",
      },
      {
        name: "dns-flip",
        status: status === "succeeded" ? "succeeded" : "failed",
        startedAt: "2026-11-22T10:00:03.400Z",
        finishedAt: "2026-11-22T10:00:15.000Z",
      },
    ],
    ...(status === "failed" ? { error: { code: "dns", message: "SERVFAIL from the primary server" } } : {}),
    at: new Date(T0 + 15_000).toISOString(),
  };
}

describe("Slack notifications", () => {
  it("posts the failover start: action dispatched and phase change, with sides, cause and the status link", async () => {
    await startFailover("slack-a");
    const posts = outbound.posts.filter((p) => p.url === WEBHOOK);
    expect(posts).toHaveLength(2);
    const dispatchedText = texts(posts).find((t) => t.startsWith(":gear:")) ?? "";
    const phaseText = texts(posts).find((t) => t.startsWith(":arrows_counterclockwise:")) ?? "";
    expect(dispatchedText).toContain(
      ":gear: *slack-a*: failover primary → secondary dispatched as slack-a:1 (manual: gw-a dead)",
    );
    expect(dispatchedText).toContain("cause: manual by slack:UALICE(alice) — gw-a dead");
    expect(dispatchedText).toContain(`<${STATUS}|Status page>`);
    expect(phaseText).toContain("*slack-a*: steady → executing");
    expect(phaseText).toContain("active *primary*, phase `executing`");
    // The target is named once, not twice ("slack-a: slack-a: …").
    for (const t of texts(posts)) expect(t).not.toContain("slack-a: slack-a");
  });

  it("posts the success with each step's duration and the new active side", async () => {
    const req = await startFailover("slack-b");
    const before = outbound.posts.length;
    const stub = env.TARGETS.getByName("slack-b");
    expect(await stub.report("slack-b", report(req, "succeeded"))).toEqual({ accepted: true });
    await stub.settle();
    const posted = texts(outbound.posts.slice(before));
    expect(posted).toHaveLength(2);
    const success = posted.find((t) => t.includes("succeeded: secondary is now active")) ?? "";
    expect(success).toContain("*slack-b*: failover slack-b:1 succeeded");
    expect(success).toContain("• delete-primary-route: succeeded (2.4 s)");
    expect(success).toContain("• dns-flip: succeeded (12 s)");
    expect(success).toContain("active *secondary*");
    expect(success).toContain("cause: manual by slack:UALICE(alice) — gw-a dead");
    expect(posted.some((t) => t.includes("executing → steady"))).toBe(true);
  });

  it("posts the failure with the error, the failed step and the side still active", async () => {
    const req = await startFailover("slack-c");
    const before = outbound.posts.length;
    const stub = env.TARGETS.getByName("slack-c");
    await stub.report("slack-c", report(req, "failed"));
    await stub.settle();
    const posted = texts(outbound.posts.slice(before));
    const failure = posted.find((t) => t.includes("FAILED")) ?? "";
    expect(failure).toContain("*slack-c*: failover slack-c:1 to secondary FAILED: SERVFAIL from the primary server");
    expect(failure).toContain("• dns-flip: failed (12 s)");
    expect(failure).toContain("active *primary*, phase `failed`");
    expect(posted.some((t) => t.includes("executing → failed"))).toBe(true);
    for (const p of outbound.posts) expect(p.url).toBe(WEBHOOK);
  });
});
