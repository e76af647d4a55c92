/**
 * Placement (design §11.1, §11.6) inside the real Durable Object: an action goes to the agent of
 * the side it goes to, is recorded with it at commit, and every re-send and a `revert` go to that
 * recorded agent even after a config edit; no new action goes to another agent while the last one
 * is not final (a confirmed break-glass may, and says so); a 421 `wrong-agent` is final.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { useRecordingObject } from "./support/recording-object.ts";
import { twoAgentConfig, useConfig } from "./support/two-agents.ts";

const T0 = Date.parse("2026-11-22T10:00:00Z");
const rec = useRecordingObject({ start: T0 });
const TARGET = "dr-one";

async function types(): Promise<string[]> {
  return (await env.TARGETS.getByName(TARGET).events(0, 1000)).events.map((e) => e.type);
}

describe("the agent recorded on the action", () => {
  it("re-sends to the recorded agent after a config edit moves the side to another agent", async () => {
    let config = twoAgentConfig();
    useConfig(
      () => config,
      () => rec.clock,
    );
    const stub = env.TARGETS.getByName(TARGET);
    expect((await stub.command(TARGET, { command: "failover", actor: "alice" })).applied).toBe(true);
    await stub.settle();
    expect(rec.dispatched.map((r) => r.agent)).toEqual(["agent-b"]);

    // Mid-action, the secondary side is given to agent-c.
    config = twoAgentConfig((c) => {
      const t = c.targets[TARGET];
      if (t) t.sides.secondary.agent = "agent-c";
    });
    // No report: the action times out and is re-dispatched (same id), twice.
    await rec.fireAlarm(TARGET, T0 + 600_000);
    await rec.fireAlarm(TARGET, T0 + 1_200_000);
    expect(rec.dispatched.length).toBeGreaterThanOrEqual(3);
    expect(new Set(rec.dispatched.map((r) => r.id)).size).toBe(1);
    expect(rec.dispatched.every((r) => r.agent === "agent-b")).toBe(true);
    const changed = (await stub.events(0, 1000)).events.find((e) => e.type === "config.changed");
    expect(changed?.detail).toMatchObject({ actionAgent: "agent-b", agents: { secondary: "agent-c" } });
    expect((await stub.view(TARGET)).action?.agent).toBe("agent-b");
  });

  it("sends a revert to the agent that ran the failed action, not to the side's agent", async () => {
    let config = twoAgentConfig();
    useConfig(
      () => config,
      () => rec.clock,
    );
    const stub = env.TARGETS.getByName(TARGET);
    await stub.command(TARGET, { command: "failover", actor: "alice" });
    await stub.settle();
    const [first] = rec.dispatched;
    if (!first) throw new Error("nothing dispatched");
    await stub.report(
      TARGET,
      {
        actionId: first.id,
        target: TARGET,
        status: "failed",
        dryRun: false,
        steps: [{ name: "switch", status: "failed" }],
        error: { code: "step-failed", message: "half done" },
        at: new Date(rec.clock).toISOString(),
      },
      "agent-b",
    );
    config = twoAgentConfig((c) => {
      const t = c.targets[TARGET];
      if (t) t.sides.secondary.agent = "agent-c";
    });
    rec.dispatched = [];
    const revert = await stub.command(TARGET, { command: "revert", actor: "alice" });
    await stub.settle();
    expect(revert.applied).toBe(true);
    // Toward primary (agent-a's side), yet undone by agent-b, which did the half.
    expect(rec.dispatched.map((r) => [r.to, r.agent])).toEqual([["primary", "agent-b"]]);
  });
});

describe("no second agent while an action is unfinished", () => {
  /**
   * agent-b never reports on a failover (the worker gives up, but agent-b may still be switching),
   * then the config gives the secondary side to agent-c.
   */
  async function timedOut() {
    let config = twoAgentConfig((c) => {
      const t = c.targets[TARGET];
      if (t) t.policy.dispatchRetries = 0;
    });
    useConfig(
      () => config,
      () => rec.clock,
    );
    const stub = env.TARGETS.getByName(TARGET);
    await stub.command(TARGET, { command: "failover", actor: "alice" });
    await stub.settle();
    await rec.fireAlarm(TARGET, T0 + 600_000);
    expect((await stub.view(TARGET)).phase).toBe("failed");
    expect((await stub.command(TARGET, { command: "cancel", actor: "alice" })).applied).toBe(true);
    config = twoAgentConfig((c) => {
      const t = c.targets[TARGET];
      if (t) {
        t.policy.dispatchRetries = 0;
        t.sides.secondary.agent = "agent-c";
      }
    });
    rec.dispatched = [];
    return stub;
  }

  it("refuses a manual failover to agent-c while agent-b's action has no final report", async () => {
    const stub = await timedOut();
    const refused = await stub.command(TARGET, { command: "failover", actor: "alice" });
    expect(refused.applied).toBe(false);
    expect(refused.rejected).toMatch(/agent-b.*no final report.*agent-c.*break-glass/);
    expect(rec.dispatched).toEqual([]);
  });

  it("lets a confirmed break-glass send it to agent-c, and the answer says so", async () => {
    const stub = await timedOut();
    const nonce = "0123456789abcdef0123456789abcdef";
    await stub.requestBreakGlass(TARGET, {
      nonce,
      command: "failover",
      requesterId: "alice",
      requester: "alice",
      reason: "agent-b's cluster is gone",
      via: "api",
    });
    const out = await stub.resolveBreakGlass(TARGET, { nonce, decision: "approve", actorId: "bob", actor: "bob" });
    await stub.settle();
    expect(out.outcome).toBe("executed");
    expect(out.outcome === "executed" ? out.warnings : undefined).toEqual([
      expect.stringMatching(/break-glass.*agent-b/),
    ]);
    expect(rec.dispatched.map((r) => r.agent)).toEqual(["agent-c"]);
  });

  it("lets a late final report from agent-b settle it, after which agent-c may get an action", async () => {
    const stub = await timedOut();
    await stub.report(
      TARGET,
      {
        actionId: `${TARGET}:1`,
        target: TARGET,
        status: "failed",
        dryRun: false,
        steps: [],
        at: new Date(rec.clock).toISOString(),
      },
      "agent-b",
    );
    const ok = await stub.command(TARGET, { command: "failover", actor: "alice" });
    await stub.settle();
    expect(ok.applied).toBe(true);
    expect(rec.dispatched.map((r) => r.agent)).toEqual(["agent-c"]);
  });
});

describe("421 wrong-agent", () => {
  it("fails the action at once, never retried, and notifies", async () => {
    useConfig(
      () => twoAgentConfig(),
      () => rec.clock,
    );
    rec.nextAttempt = {
      ok: false,
      error: "the agent at http://127.0.0.1:8789 is not agent-b (421 wrong-agent)",
      final: true,
      code: "wrong-agent",
    };
    const stub = env.TARGETS.getByName(TARGET);
    await stub.command(TARGET, { command: "failover", actor: "alice" });
    await stub.settle();
    const view = await stub.view(TARGET);
    expect(view.phase).toBe("failed");
    expect(view.action?.error?.code).toBe("wrong-agent");
    await rec.fireAlarm(TARGET, T0 + 3_600_000);
    expect(rec.dispatched).toHaveLength(1);
    expect(rec.notes.some((n) => n.text.includes("FAILED") && n.text.includes("421"))).toBe(true);
    expect(await types()).not.toContain("action.redelivered");
  });
});
