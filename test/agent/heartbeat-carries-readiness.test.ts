/**
 * The heartbeat carries readiness (design §11.1, §11.3), but only once the worker has said which
 * sides it sends this agent: before that the agent evaluates both sides, and a side the worker
 * sends another agent would be refused (403). Driven on a fake clock against a receiver that
 * verifies the signature as the worker does.
 */
import { afterEach, describe, expect, it } from "vitest";
import { createHeartbeats } from "../../agent/heartbeat.ts";
import { silentLogger } from "../../agent/log.ts";
import type { ReadinessReport } from "../../shared/protocol.ts";
import { fakeClock } from "../support/fake-clock.ts";
import { type HeartbeatReceiver, startHeartbeatReceiver } from "../support/heartbeat-receiver.ts";
import { testAgentConfig } from "../support/test-executors.ts";

const KEY_B = "agent-b-key-0123456789abcdef0123456789";
const receivers: HeartbeatReceiver[] = [];
afterEach(async () => {
  for (const r of receivers.splice(0)) await r.close();
});

describe("readiness on the heartbeat", () => {
  it("is left out until the first answer's serves, then carried as the readiness loop has it", async () => {
    const clock = fakeClock();
    const receiver = await startHeartbeatReceiver({ "agent-b": KEY_B }, clock.now);
    receivers.push(receiver);
    receiver.serves = { app: ["secondary"] };
    const config = testAgentConfig(["app"], "http://127.0.0.1:1/v1/agent/reports", {
      name: "agent-b",
      heartbeatUrl: receiver.url,
    });
    const at = new Date(clock.now()).toISOString();
    const latest: ReadinessReport = {
      app: {
        secondary: { ready: false, at, checks: [{ name: "permissions", ok: false, destination: true, detail: "" }] },
      },
    };
    const heartbeats = createHeartbeats({
      config,
      mode: "cluster",
      version: "1.2.3",
      pod: "agent-b-0",
      leader: () => "agent-b-0",
      secret: KEY_B,
      log: silentLogger,
      clock,
      readiness: () => latest,
    });
    await heartbeats.beat();
    expect(receiver.accepted[0]?.heartbeat.readiness).toBeUndefined();
    expect(heartbeats.state().serves).toEqual({ app: ["secondary"] });
    await clock.sleep(15_000);
    await heartbeats.beat();
    expect(receiver.accepted[1]?.heartbeat.readiness).toEqual(latest);
  });
});
