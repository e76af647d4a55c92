/**
 * The probe of rule 17 in workerd (design §11.1): before an automatic failover is blocked because
 * its destination agent is silent, the target's object asks that agent once with a `GET /healthz`
 * signed with the agent's own key. Here the agent is a stand-in over real HTTP
 * (test/support/agent-healthz-stub.ts); the object's probe seam only hands the real
 * `probeAgent` the two-agent keys, which the test worker's bindings lack. An answer counts as
 * heard and the failover goes at once; no answer blocks it `agent-silent`.
 */
import { runDurableObjectAlarm } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { WorkerConfig } from "../../shared/config.ts";
import { verify } from "../../shared/signature.ts";
import { AgentObject } from "../../worker/agents/agent-object.ts";
import { probeAgent } from "../../worker/agents/agent-probe.ts";
import { TargetObject } from "../../worker/target/target-object.ts";
import { type StubAgent, stubAgent } from "./support/agent-healthz.ts";
import { signals } from "./support/paging.ts";
import { useRecordingObject } from "./support/recording-object.ts";
import {
  agentEnv,
  fetchWith,
  heartbeat,
  KEYS,
  signedAgentPost,
  twoAgentConfig,
  useConfig,
} from "./support/two-agents.ts";

const T0 = Date.parse("2026-11-22T03:00:00Z");
const TARGET = "dr-one";
const rec = useRecordingObject({ start: T0 });
let config: WorkerConfig;
let agentB: StubAgent;

beforeEach(() => {
  agentB = stubAgent("agent-b");
  config = twoAgentConfig((c) => {
    const b = c.agents?.["agent-b"];
    if (b) b.url = agentB.url;
  });
  useConfig(
    () => config,
    () => rec.clock,
  );
  if (TargetObject.testing) {
    TargetObject.testing.prober = (agent) => probeAgent(agentEnv(config), config, agent, rec.clock);
  }
});
afterEach(() => {
  AgentObject.testing = undefined;
});

/** agent-b heard at T0, then silent at T0 + 60 s (its object's alarm), told to the targets it serves. */
async function agentBSilent(): Promise<void> {
  rec.clock = T0;
  const res = await fetchWith(
    agentEnv(config),
    await signedAgentPost("/v1/agent/heartbeats", heartbeat("agent-b", T0), "agent-b", "agent-b", T0),
  );
  expect(res.status).toBe(200);
  rec.clock = T0 + 60_000;
  await runDurableObjectAlarm(env.AGENTS.getByName("agent-b"));
  await env.TARGETS.getByName(TARGET).settle();
  expect((await env.AGENTS.getByName("agent-b").info("agent-b")).silent).toBe(true);
}

/** The primary goes down at T0 + 60 s and its 30 s hold expires (the object's alarm at T0 + 90 s). */
async function primaryDownPastHold(): Promise<void> {
  rec.clock = T0 + 60_000;
  await signals(rec, TARGET, "primary", "firing");
  await rec.fireAlarm(TARGET, T0 + 90_000);
  await env.TARGETS.getByName(TARGET).settle();
}

async function eventTypes(): Promise<string[]> {
  return (await env.TARGETS.getByName(TARGET).events(0, 1000)).events.map((e) => e.type);
}

describe("the probe of a silent destination agent", () => {
  it("counts an answer to the signed GET /healthz as heard, and the failover goes at once to that agent", async () => {
    await agentB.mode("up");
    await agentBSilent();
    await primaryDownPastHold();

    // One probe, signed over the path with agent-b's key (not agent-a's) at the object's time.
    const probes = await agentB.probes();
    expect(probes.map((p) => [p.method, p.path])).toEqual([["GET", "/healthz"]]);
    const signature = probes[0]?.headers["turnout-signature"];
    const at = (T0 + 90_000) / 1000;
    expect(await verify([KEYS["agent-b"]], signature, "/healthz", at)).toMatchObject({ ok: true });
    expect(await verify([KEYS["agent-a"]], signature, "/healthz", at)).toMatchObject({ ok: false });

    // Heard: dispatched to agent-b within the same alarm, with no new hold and no block.
    expect(rec.dispatched.map((d) => [d.kind, d.to, d.agent])).toEqual([["failover", "secondary", "agent-b"]]);
    const types = await eventTypes();
    expect(types).toEqual(expect.arrayContaining(["agent.probed", "agent.probe-answered", "agent.returned"]));
    expect(types).not.toContain("failover.blocked");
    const info = await env.AGENTS.getByName("agent-b").info("agent-b");
    expect(info).toMatchObject({ silent: false, lastHeardAt: new Date(T0 + 90_000).toISOString() });
  });

  it("blocks agent-silent when the agent does not answer, probes once per hold, and goes when it is heard again", async () => {
    await agentBSilent();
    await primaryDownPastHold();

    expect((await agentB.probes()).map((p) => p.path)).toEqual(["/healthz"]);
    expect(rec.dispatched).toEqual([]);
    const state = await env.TARGETS.getByName(TARGET).state();
    expect(state?.machine).toMatchObject({ phase: "pending", blocked: "agent-silent" });
    expect(await eventTypes()).toEqual(
      expect.arrayContaining(["agent.probed", "agent.probe-unanswered", "failover.blocked"]),
    );
    expect((await env.AGENTS.getByName("agent-b").info("agent-b")).silent).toBe(true);

    // Later alarms neither probe again nor dispatch.
    await rec.fireAlarm(TARGET, T0 + 400_000);
    expect(await agentB.probes()).toHaveLength(1);
    expect(rec.dispatched).toEqual([]);

    // Its heartbeat returns: the blocked decision is taken at once.
    rec.clock = T0 + 410_000;
    const res = await fetchWith(
      agentEnv(config),
      await signedAgentPost("/v1/agent/heartbeats", heartbeat("agent-b", rec.clock), "agent-b", "agent-b", rec.clock),
    );
    expect(res.status).toBe(200);
    await env.TARGETS.getByName(TARGET).settle();
    expect(rec.dispatched.map((d) => [d.to, d.agent])).toEqual([["secondary", "agent-b"]]);
  });
});
