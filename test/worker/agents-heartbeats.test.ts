/**
 * Heartbeats and liveness (design §11.1, §11.6) in workerd: the agent is heard at the heartbeat's
 * signed time by its leader only; a replayed heartbeat does not keep a dead agent heard; the
 * agent's own object notices silence with its alarm, audits it on every target it serves and
 * notifies once per transition (`turnout/agent/<name>`); heartbeats are not shed under a storm;
 * `agents.<name>.mode` must match; `GET /v1/agents` shows all of it to viewers.
 */
import { runDurableObjectAlarm } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import { AgentObject } from "../../worker/agents/agent-object.ts";
import { TEST_CREDENTIALS } from "./support/bindings.ts";
import { useRecordingObject } from "./support/recording-object.ts";
import { agentEnv, fetchWith, heartbeat, signedAgentPost, twoAgentConfig, useConfig } from "./support/two-agents.ts";

const T0 = Date.parse("2026-11-22T10:00:00Z");
const rec = useRecordingObject({ start: T0 });
afterEach(() => {
  AgentObject.testing = undefined;
});

const config = twoAgentConfig();
const e = () => agentEnv(config);

async function beat(agent: "agent-a" | "agent-b", atMs: number, pod?: string, leader?: string | null, mode?: string) {
  const body = heartbeat(agent, atMs, pod, leader === undefined ? (pod ?? `${agent}-0`) : leader, mode);
  return fetchWith(e(), await signedAgentPost("/v1/agent/heartbeats", body, agent, agent, atMs));
}

async function silenceAlarm(agent: string, atMs: number): Promise<void> {
  rec.clock = atMs;
  await runDurableObjectAlarm(env.AGENTS.getByName(agent));
  for (const t of ["dr-one", "dr-two", "one-cluster"]) await env.TARGETS.getByName(t).settle();
}

async function eventTypes(target: string): Promise<string[]> {
  return (await env.TARGETS.getByName(target).events(0, 1000)).events.map((x) => x.type);
}

describe("heard", () => {
  it("counts the leader at the heartbeat's signed time and shows standby replicas without counting them", async () => {
    useConfig(
      () => config,
      () => rec.clock,
    );
    rec.clock = T0 + 5_000;
    // Signed 5 s before its receipt: heard at the signed time, never later.
    const res = await fetchWith(
      e(),
      await signedAgentPost("/v1/agent/heartbeats", heartbeat("agent-b", T0), "agent-b", "agent-b", T0),
    );
    expect(res.status).toBe(200);
    const standby = await beat("agent-b", T0 + 30_000, "agent-b-1", "agent-b-0");
    expect(await standby.json()).toMatchObject({ heard: "standby" });
    const info = await env.AGENTS.getByName("agent-b").info("agent-b");
    expect(info.lastHeardAt).toBe(new Date(T0).toISOString());
    expect(info.pods.map((p) => [p.pod, p.leader])).toEqual([
      ["agent-b-0", true],
      ["agent-b-1", false],
    ]);
    // Only standby heartbeats since: silent 60 s after max(the leader's last one, watching
    // started), and watching started at the first receipt, T0 + 5 s.
    await silenceAlarm("agent-b", T0 + 64_000);
    expect((await env.AGENTS.getByName("agent-b").info("agent-b")).silent).toBe(false);
    await silenceAlarm("agent-b", T0 + 65_000);
    expect((await env.AGENTS.getByName("agent-b").info("agent-b")).silent).toBe(true);
  });

  it("ignores a replayed heartbeat, so it cannot keep a dead agent heard", async () => {
    useConfig(
      () => config,
      () => rec.clock,
    );
    rec.clock = T0;
    const request = await signedAgentPost("/v1/agent/heartbeats", heartbeat("agent-b", T0), "agent-b", "agent-b", T0);
    const replay = request.clone();
    expect(await (await fetchWith(e(), request)).json()).toMatchObject({ heard: "heard" });
    // The agent dies; an attacker re-sends its last heartbeat inside the 300 s signature window.
    rec.clock = T0 + 50_000;
    expect(await (await fetchWith(e(), replay)).json()).toMatchObject({ heard: "replay" });
    await silenceAlarm("agent-b", T0 + 60_000);
    const info = await env.AGENTS.getByName("agent-b").info("agent-b");
    expect(info.silent).toBe(true);
    expect(info.lastHeardAt).toBe(new Date(T0).toISOString());
  });
});

describe("silent and returned", () => {
  it("audits the transition on every target the agent serves and notifies once per agent, not per target", async () => {
    useConfig(
      () => config,
      () => rec.clock,
    );
    await beat("agent-b", T0);
    await silenceAlarm("agent-b", T0 + 30_000);
    expect((await env.AGENTS.getByName("agent-b").info("agent-b")).silent).toBe(false);
    await silenceAlarm("agent-b", T0 + 60_000);
    expect(await eventTypes("dr-one")).toContain("agent.silent");
    expect(await eventTypes("dr-two")).toContain("agent.silent");
    // one-cluster is agent-a's alone: nothing to say there.
    expect(await eventTypes("one-cluster")).not.toContain("agent.silent");
    const silentNotes = rec.notes.filter((n) => n.key === "turnout/agent/agent-b");
    expect(silentNotes).toHaveLength(1);
    expect(silentNotes[0]?.text).toContain("agent-b is SILENT");
    const view = await env.TARGETS.getByName("dr-one").view("dr-one");
    expect(view.agents?.secondary).toEqual({ name: "agent-b", silent: true });

    // A second alarm run changes nothing and says nothing.
    await silenceAlarm("agent-b", T0 + 120_000);
    expect(rec.notes.filter((n) => n.key === "turnout/agent/agent-b")).toHaveLength(1);

    rec.clock = T0 + 130_000;
    expect((await beat("agent-b", T0 + 130_000)).status).toBe(200);
    for (const t of ["dr-one", "dr-two"]) await env.TARGETS.getByName(t).settle();
    expect(await eventTypes("dr-two")).toContain("agent.returned");
    const notes = rec.notes.filter((n) => n.key === "turnout/agent/agent-b");
    expect(notes.map((n) => n.text)).toEqual([
      expect.stringContaining("SILENT"),
      expect.stringContaining("heard again"),
    ]);
    expect((await env.TARGETS.getByName("dr-one").view("dr-one")).agents?.secondary.silent).toBe(false);
  });

  it("counts silence from when watching started for an agent never heard", async () => {
    useConfig(
      () => config,
      () => rec.clock,
    );
    rec.clock = T0;
    await env.AGENTS.getByName("agent-a").watch("agent-a");
    await silenceAlarm("agent-a", T0 + 59_000);
    expect((await env.AGENTS.getByName("agent-a").info("agent-a")).silent).toBe(false);
    await silenceAlarm("agent-a", T0 + 60_000);
    const info = await env.AGENTS.getByName("agent-a").info("agent-a");
    expect(info).toMatchObject({ silent: true, lastHeardAt: null });
  });
});

describe("never shed, and checked against the config", () => {
  it("answers every heartbeat of a storm with 200, none with 503", async () => {
    useConfig(
      () => config,
      () => rec.clock,
    );
    rec.clock = T0;
    const requests = await Promise.all(
      Array.from({ length: 60 }, (_, i) =>
        signedAgentPost(
          "/v1/agent/heartbeats",
          heartbeat("agent-a", T0, `agent-a-${i}`, "agent-a-0"),
          "agent-a",
          "agent-a",
          T0,
        ),
      ),
    );
    const statuses = await Promise.all(requests.map(async (r) => (await fetchWith(e(), r)).status));
    expect(statuses.filter((s) => s !== 200)).toEqual([]);
    expect((await env.AGENTS.getByName("agent-a").info("agent-a")).pods).toHaveLength(60);
  });

  it("shows an agent whose heartbeat's mode is not agents.<name>.mode as not ready (agent-mode)", async () => {
    useConfig(
      () => config,
      () => rec.clock,
    );
    await beat("agent-a", T0, undefined, undefined, "cluster");
    const info = await env.AGENTS.getByName("agent-a").info("agent-a");
    expect(info).toMatchObject({ mode: "cluster", expectedMode: "sandbox", notReady: "agent-mode" });
    await beat("agent-a", T0 + 15_000, undefined, undefined, "sandbox");
    expect((await env.AGENTS.getByName("agent-a").info("agent-a")).notReady).toBeNull();
  });

  it("lists every agent to a viewer on GET /v1/agents, and nothing without a credential", async () => {
    useConfig(
      () => config,
      () => rec.clock,
    );
    await beat("agent-b", T0);
    const none = await fetchWith(e(), new Request("http://w/v1/agents"));
    expect(none.status).toBe(401);
    const res = await fetchWith(
      e(),
      new Request("http://w/v1/agents", { headers: { authorization: `Bearer ${TEST_CREDENTIALS.viewer}` } }),
    );
    expect(res.status).toBe(200);
    const { agents } = (await res.json()) as { agents: Record<string, unknown>[] };
    expect(agents.map((a) => a.name)).toEqual(["agent-a", "agent-b", "agent-c"]);
    expect(agents[1]).toMatchObject({
      name: "agent-b",
      lastHeardAt: new Date(T0).toISOString(),
      silent: false,
      version: "1.2.3",
      mode: "sandbox",
      leader: "agent-b-0",
      serves: { "dr-one": ["secondary"], "dr-two": ["secondary"] },
    });
  });
});
