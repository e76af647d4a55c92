/**
 * Heartbeats (design §11.1): each one is a signed POST of HeartbeatSchema to the worker's
 * `/v1/agent/heartbeats`, named with `Turnout-Agent` and signed with this agent's own key, sent by
 * the Lease holder and by every standby replica (which names the holder's pod as `leader`), and
 * the answer's `serves` is kept and shown in `/healthz`. Driven on a fake clock: nothing sleeps.
 */
import { afterEach, describe, expect, it } from "vitest";
import { canonicalJson, createHeartbeats, leaderPod, targetDigests } from "../../agent/heartbeat.ts";
import { alwaysLeader } from "../../agent/leadership.ts";
import { silentLogger } from "../../agent/log.ts";
import { createAgentApp } from "../../agent/server.ts";
import { AgentConfigSchema, agentHeartbeatUrl } from "../../shared/config.ts";
import { AGENT_HEADER } from "../../shared/protocol.ts";
import { fakeClock } from "../support/fake-clock.ts";
import { type HeartbeatReceiver, startHeartbeatReceiver } from "../support/heartbeat-receiver.ts";
import { stubLeadership, testAgentConfig } from "../support/test-executors.ts";

const KEY_B = "agent-b-key-0123456789abcdef0123456789";
const receivers: HeartbeatReceiver[] = [];
afterEach(async () => {
  for (const r of receivers.splice(0)) await r.close();
});

async function setup(options: { leader?: () => string | null; pod?: string } = {}) {
  const clock = fakeClock();
  const receiver = await startHeartbeatReceiver({ "agent-b": KEY_B }, clock.now);
  receivers.push(receiver);
  const config = testAgentConfig(["app", "db"], "http://127.0.0.1:1/v1/agent/reports", {
    name: "agent-b",
    heartbeatUrl: receiver.url,
  });
  const heartbeats = createHeartbeats({
    config,
    mode: "cluster",
    version: "1.2.3",
    pod: options.pod ?? "turnout-agent-7d9f-abcde",
    leader: options.leader ?? (() => options.pod ?? "turnout-agent-7d9f-abcde"),
    secret: KEY_B,
    log: silentLogger,
    clock,
  });
  return { clock, receiver, config, heartbeats };
}

describe("one heartbeat", () => {
  it("carries every field of §11.1, is signed at its `at` with the agent's key, and is accepted", async () => {
    const { clock, receiver, config, heartbeats } = await setup();
    const next = await heartbeats.beat();
    expect(next).toBe(15_000);
    expect(receiver.statuses).toEqual([200]);
    const [got] = receiver.accepted;
    expect(got?.agent).toBe("agent-b");
    expect(got?.t).toBe(Math.floor(clock.now() / 1000));
    expect(got?.heartbeat).toEqual({
      agent: "agent-b",
      version: "1.2.3",
      mode: "cluster",
      pod: "turnout-agent-7d9f-abcde",
      leader: "turnout-agent-7d9f-abcde",
      at: new Date(clock.now()).toISOString(),
      targets: targetDigests(config.targets),
    });
    expect(Object.keys(got?.heartbeat.targets ?? {})).toEqual(["app", "db"]);
    for (const digest of Object.values(got?.heartbeat.targets ?? {})) expect(digest).toMatch(/^[0-9a-f]{64}$/);
    expect(heartbeats.state()).toMatchObject({ status: "ok", lastOkAt: got?.heartbeat.at });
  });

  it("a heartbeat signed with another agent's key is refused by the worker and never counted", async () => {
    const clock = fakeClock();
    const receiver = await startHeartbeatReceiver(
      { "agent-a": "agent-a-key-0123456789abcdef01234567", "agent-b": KEY_B },
      clock.now,
    );
    receivers.push(receiver);
    const config = testAgentConfig(["app"], "http://127.0.0.1:1/v1/agent/reports", {
      name: "agent-b",
      heartbeatUrl: receiver.url,
    });
    const stolen = createHeartbeats({
      config,
      mode: "cluster",
      version: "x",
      pod: "p",
      leader: () => "p",
      secret: "agent-a-key-0123456789abcdef01234567",
      log: silentLogger,
      clock,
    });
    await stolen.beat();
    expect(receiver.statuses).toEqual([401]);
    expect(receiver.accepted).toEqual([]);
    expect(stolen.state().status).toBe("refused");
  });
});

/** The same value with every object's keys in reverse order. */
function reversedKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(reversedKeys);
  if (value === null || typeof value !== "object") return value;
  return Object.fromEntries(
    Object.entries(value)
      .reverse()
      .map(([k, v]) => [k, reversedKeys(v)]),
  );
}

describe("the targets' digests", () => {
  const base = testAgentConfig(["app"], "http://127.0.0.1:1/v1/agent/reports");
  const app = base.targets.app;

  it("are the same for the same config whatever its key order, and differ when a setting does", () => {
    const reordered = reversedKeys(app);
    const again = AgentConfigSchema.parse({ reportUrl: base.reportUrl, targets: { app: reordered } });
    expect(canonicalJson(reordered)).not.toBe(JSON.stringify(reordered));
    expect(targetDigests(again.targets)).toEqual(targetDigests(base.targets));
    const changed = AgentConfigSchema.parse({
      reportUrl: base.reportUrl,
      targets: { app: { ...app, values: { primary: ["192.0.2.1"], secondary: ["192.0.2.99"] } } },
    });
    expect(targetDigests(changed.targets).app).not.toBe(targetDigests(base.targets).app);
  });

  it("count defaults: an explicit default and an omitted key are the same config", () => {
    const explicit = AgentConfigSchema.parse({
      reportUrl: base.reportUrl,
      targets: { app: { ...app, record: { ...(app?.kind === "dns-flip" ? app.record : {}), ttl: 60 } } },
    });
    expect(targetDigests(explicit.targets)).toEqual(targetDigests(base.targets));
  });
});

describe("config", () => {
  it("name defaults to `default`, heartbeatSeconds to 15, heartbeatUrl to reportUrl's origin", () => {
    const config = AgentConfigSchema.parse({ reportUrl: "https://turnout.example/v1/agent/reports", targets: {} });
    expect(config.name).toBe("default");
    expect(config.heartbeatSeconds).toBe(15);
    expect(agentHeartbeatUrl(config)).toBe("https://turnout.example/v1/agent/heartbeats");
    expect(agentHeartbeatUrl({ ...config, heartbeatUrl: "https://other.example/hb" })).toBe("https://other.example/hb");
  });

  it("a name that is not a DNS label is invalid, naming the field", () => {
    const result = AgentConfigSchema.safeParse({ reportUrl: "https://t.example/r", name: "Agent A", targets: {} });
    expect(result.success).toBe(false);
    expect(result.error?.issues[0]?.path).toEqual(["name"]);
  });
});

describe("standby replicas", () => {
  it("name the Lease holder's pod as leader (its identity without the random suffix), or null", () => {
    expect(leaderPod(alwaysLeader, "pod-1")).toBe("pod-1");
    expect(leaderPod(stubLeadership(false, "turnout-agent-7d9f-xk2p1-a1b2c3"), "pod-2")).toBe(
      "turnout-agent-7d9f-xk2p1",
    );
    const nobody = { ...stubLeadership(false), state: () => ({ leader: false, detail: "starting" }) };
    expect(leaderPod(nobody, "pod-2")).toBeNull();
  });

  it("send heartbeats too, marked by a leader that is not their pod", async () => {
    const { receiver, heartbeats } = await setup({ pod: "replica-2", leader: () => "replica-1" });
    await heartbeats.beat();
    expect(receiver.accepted[0]?.heartbeat).toMatchObject({ pod: "replica-2", leader: "replica-1" });
  });
});

describe("the answer's serves", () => {
  it("is kept and shown in /healthz, which names the agent", async () => {
    const { receiver, config, heartbeats } = await setup();
    receiver.serves = { app: ["secondary"], db: ["primary", "secondary"] };
    await heartbeats.beat();
    expect(heartbeats.state().serves).toEqual(receiver.serves);
    const app = createAgentApp({
      config,
      mode: "in-cluster",
      version: "1.2.3",
      readiness: async () => ({ ready: true, detail: "leader" }),
      heartbeat: () => heartbeats.state(),
    });
    const res = await app.request("/healthz");
    expect(res.headers.get(AGENT_HEADER)).toBe("agent-b");
    expect(await res.json()).toMatchObject({ agent: "agent-b", heartbeat: "ok", serves: receiver.serves });
  });

  it("an older worker's answer without serves still counts as heard and keeps the previous serves", async () => {
    const { receiver, heartbeats } = await setup();
    receiver.serves = { app: ["secondary"] };
    await heartbeats.beat();
    (receiver as { serves: unknown }).serves = undefined;
    await heartbeats.beat();
    expect(heartbeats.state()).toMatchObject({ status: "ok", serves: { app: ["secondary"] } });
  });
});
