/**
 * `formatNotification` and `slackNotifier` (unit, in workerd): one concise message per event (target once,
 * sides, cause, step durations, status link), approval buttons only while a request awaits, and
 * the webhook POST (captured through a stubbed fetch) is best effort.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import {
  formatNotification,
  type Notification,
  type NotificationContext,
  slackNotifier,
  stepDuration,
} from "../../worker/target/notifier.ts";
import { decodeButtonValue } from "../../worker/target/slack-button-value.ts";

afterEach(() => {
  vi.restoreAllMocks();
});

const context: NotificationContext = {
  activeSide: "primary",
  phase: "awaiting_approval",
  epoch: 3,
  drill: false,
  approval: { kind: "failover", to: "secondary", reason: "primary down for 30 s", deadline: 1_800_000_000_000 },
  action: null,
};

describe("formatNotification", () => {
  it("names the target once and links the status page", () => {
    const m = formatNotification(
      { target: "gw", kind: "phase", text: "gw: steady → pending: primary down" },
      "https://s/",
    );
    expect(m.text).toBe(":arrows_counterclockwise: *gw*: steady → pending: primary down\n<https://s/|Status page>");
  });

  it("adds Approve / Cancel buttons to an approval request that still awaits, identified by its deadline", () => {
    const n: Notification = {
      target: "gw",
      kind: "approval",
      text: "gw: approve failover primary → secondary?",
      context,
    };
    const m = formatNotification(n);
    expect(m.text).toContain("failover primary → secondary; cause: primary down for 30 s");
    const actions = m.blocks.find((b) => (b as { type: string }).type === "actions") as {
      elements: Array<{ action_id: string; value: string }>;
    };
    expect(actions.elements.map((e) => e.action_id)).toEqual(["approve", "cancel"]);
    expect(decodeButtonValue(actions.elements[0]?.value ?? "")).toEqual({
      v: 1,
      k: "approval",
      t: "gw",
      e: 3,
      d: 1_800_000_000_000,
    });
    // An expired request (phase back to steady) has no buttons.
    const expired = formatNotification({ ...n, context: { ...context, phase: "steady", approval: null } });
    expect(expired.blocks.some((b) => (b as { type: string }).type === "actions")).toBe(false);
  });

  it("lists the action's steps with their durations", () => {
    expect(stepDuration({ name: "a", status: "succeeded" })).toBe("?");
    expect(
      stepDuration({
        name: "a",
        status: "succeeded",
        startedAt: "2026-01-01T00:00:00Z",
        finishedAt: "2026-01-01T00:01:05Z",
      }),
    ).toBe("65 s");
  });
});

describe("slackNotifier", () => {
  it("POSTs the formatted message as JSON to SLACK_WEBHOOK_URL", async () => {
    const calls: Array<{ url: string; body: unknown }> = [];
    vi.spyOn(globalThis, "fetch").mockImplementation(async (input, init) => {
      calls.push({ url: String(input), body: JSON.parse(String(init?.body)) });
      return new Response("ok");
    });
    await slackNotifier(
      { SLACK_WEBHOOK_URL: "https://hooks.slack.com/services/X" },
      { statusUrl: "https://s/" },
    ).notify({
      target: "gw",
      kind: "alert",
      text: "gw: both sides down",
    });
    expect(calls).toEqual([
      {
        url: "https://hooks.slack.com/services/X",
        body: expect.objectContaining({ text: ":rotating_light: *gw*: both sides down\n<https://s/|Status page>" }),
      },
    ]);
  });

  it("does nothing without a webhook, and never throws when Slack refuses or the network fails", async () => {
    const spy = vi.spyOn(globalThis, "fetch").mockResolvedValueOnce(new Response("no", { status: 404 }));
    vi.spyOn(console, "warn").mockImplementation(() => {});
    await slackNotifier({}).notify({ target: "gw", kind: "phase", text: "x" });
    expect(spy).not.toHaveBeenCalled();
    const notifier = slackNotifier({ SLACK_WEBHOOK_URL: "https://hooks.slack.com/services/X" });
    await expect(notifier.notify({ target: "gw", kind: "phase", text: "x" })).resolves.toBeUndefined();
    spy.mockRejectedValueOnce(new Error("network down"));
    await expect(notifier.notify({ target: "gw", kind: "phase", text: "x" })).resolves.toBeUndefined();
    expect(spy).toHaveBeenCalledTimes(2);
  });

  it("gives up on a post Slack never answers after timeoutMs, logs it, and the next one goes out", async () => {
    const spy = vi.spyOn(globalThis, "fetch").mockImplementationOnce(
      (_input, init) =>
        new Promise((_resolve, reject) => {
          init?.signal?.addEventListener("abort", () => reject(init.signal?.reason));
        }),
    );
    spy.mockResolvedValueOnce(new Response("ok"));
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    const notifier = slackNotifier({ SLACK_WEBHOOK_URL: "https://hooks.slack.com/services/X" }, { timeoutMs: 30 });
    await notifier.notify({ target: "gw", kind: "phase", text: "first" });
    expect(warn.mock.calls.map((c) => String(c[0]))).toEqual([
      expect.stringContaining("no answer from Slack within 30 ms"),
    ]);
    await notifier.notify({ target: "gw", kind: "phase", text: "second" });
    expect(spy).toHaveBeenCalledTimes(2);
    expect(warn).toHaveBeenCalledTimes(1);
  });
});
