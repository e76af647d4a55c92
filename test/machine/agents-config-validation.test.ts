/**
 * The worker config's agents (design §11.1, §11.6): `agents` with its defaults, `sides.<side>.agent`,
 * the single `agent` as `default`; both keys, or a side naming an unknown agent, is invalid with
 * `path: message`.
 */
import { describe, expect, it } from "vitest";
import { agentsOf, servedBy, sideAgent, validateWorkerConfig } from "../../shared/config.ts";

const side = (agent?: string) => ({ matchers: ['a="1"'], ...(agent ? { agent } : {}) });
const target = (primary?: string, secondary?: string) => ({
  sides: { primary: side(primary), secondary: side(secondary) },
  policy: {},
});

describe("agents in the worker config", () => {
  it("fills each agent's defaults and sends each side to its agent", () => {
    const r = validateWorkerConfig({
      agents: { "agent-a": { url: "http://a:8788" }, "agent-b": { url: "http://b:8789", mode: "sandbox" } },
      targets: { t: target("agent-a", "agent-b"), u: target("agent-a", "agent-a") },
    });
    if (!r.ok) throw new Error(JSON.stringify(r.problems));
    expect(agentsOf(r.value)["agent-a"]).toMatchObject({
      transport: "direct",
      silentAfterSeconds: 60,
      mode: "cluster",
    });
    expect(agentsOf(r.value)["agent-b"]?.mode).toBe("sandbox");
    const t = r.value.targets.t;
    if (!t) throw new Error("no t");
    expect([sideAgent(t, "primary"), sideAgent(t, "secondary")]).toEqual(["agent-a", "agent-b"]);
    expect(servedBy(r.value, "agent-a")).toEqual({ t: ["primary"], u: ["primary", "secondary"] });
    expect(servedBy(r.value, "agent-b")).toEqual({ t: ["secondary"] });
  });

  it("keeps the single `agent` key valid as the agent named default", () => {
    const r = validateWorkerConfig({ agent: { url: "http://a:8788" }, targets: { t: target() } });
    if (!r.ok) throw new Error(JSON.stringify(r.problems));
    expect(Object.keys(agentsOf(r.value))).toEqual(["default"]);
    expect(servedBy(r.value, "default")).toEqual({ t: ["primary", "secondary"] });
  });

  it("refuses both agent and agents, and a side naming an unknown agent, naming the path", () => {
    const both = validateWorkerConfig({
      agent: { url: "http://a:8788" },
      agents: { "agent-a": { url: "http://a:8788" } },
      targets: { t: target("agent-a", "agent-a") },
    });
    expect(both.ok ? [] : both.problems.map((p) => p.path)).toContain("agents");
    const unknown = validateWorkerConfig({
      agents: { "agent-a": { url: "http://a:8788" } },
      targets: { t: target("agent-a", "agent-x") },
    });
    expect(unknown.ok).toBe(false);
    expect(unknown.ok ? [] : unknown.problems).toEqual([
      { path: "targets.t.sides.secondary.agent", message: expect.stringContaining('"agent-x"') },
    ]);
    // A side that names no agent means `default`, which `agents` must then have.
    const noDefault = validateWorkerConfig({
      agents: { "agent-a": { url: "http://a:8788" } },
      targets: { t: target() },
    });
    expect(noDefault.ok ? [] : noDefault.problems.map((p) => p.path)).toEqual([
      "targets.t.sides.primary.agent",
      "targets.t.sides.secondary.agent",
    ]);
  });

  it("requires publicUrl when any agent goes through QStash", () => {
    const r = validateWorkerConfig({
      agents: { "agent-a": { url: "http://a:8788", transport: "qstash" } },
      targets: { t: target("agent-a", "agent-a") },
    });
    expect(r.ok ? [] : r.problems.map((p) => p.path)).toEqual(["publicUrl"]);
  });
});
