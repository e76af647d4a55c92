/**
 * Agent pages (design §11.4, §11.6): an agent that goes silent triggers PagerDuty and opens an
 * Opsgenie alert once, with key `turnout/agent/<name>` and severity critical, however many
 * targets it serves; heard again, the same key is resolved and closed. The receivers are local
 * HTTP servers that validate each request against the documented schema; the agent's own object
 * is driven by its clock and alarm.
 */
import { runDurableObjectAlarm } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { WorkerConfig } from "../../shared/config.ts";
import { AgentObject } from "../../worker/agents/agent-object.ts";
import { drained, ogActions, pdActions, type Receiver, receiver, STATUS_URL, sinksOf } from "./support/paging.ts";
import { useRecordingObject } from "./support/recording-object.ts";
import { agentEnv, fetchWith, heartbeat, signedAgentPost, twoAgentConfig, useConfig } from "./support/two-agents.ts";

const T0 = Date.parse("2026-11-22T03:00:00Z");
const TARGETS = ["dr-one", "dr-two", "one-cluster"];
const rec = useRecordingObject({ start: T0 });
let r: Receiver;
let config: WorkerConfig;

beforeEach(() => {
  r = receiver("agent-pages");
  config = twoAgentConfig((c) => {
    c.notify = sinksOf(r, { pagerduty: true, opsgenie: true });
    c.statusUrl = STATUS_URL;
  });
  useConfig(
    () => config,
    () => rec.clock,
  );
});
afterEach(() => {
  AgentObject.testing = undefined;
});

async function beat(agent: "agent-a" | "agent-b", atMs: number): Promise<number> {
  rec.clock = atMs;
  const res = await fetchWith(
    agentEnv(config),
    await signedAgentPost("/v1/agent/heartbeats", heartbeat(agent, atMs), agent, agent, atMs),
  );
  await res.body?.cancel();
  for (const t of TARGETS) await drained(t);
  return res.status;
}

async function alarm(agent: string, atMs: number): Promise<void> {
  rec.clock = atMs;
  await runDurableObjectAlarm(env.AGENTS.getByName(agent));
  for (const t of TARGETS) await drained(t);
}

/** What the receivers got about agent-b (agent-a, watched but never heard here, is paged on its own key). */
async function validLog() {
  const log = await r.log();
  for (const x of log) expect({ path: x.path, errors: x.errors }).toEqual({ path: x.path, errors: [] });
  return log.filter((x) => JSON.stringify(x.json ?? null).includes("agent-b") || x.alias === "turnout/agent/agent-b");
}

describe("agent pages", () => {
  it("pages a silent agent once (critical, turnout/agent/<name>) though it serves two targets, and resolves it when heard again", async () => {
    const key = "turnout/agent/agent-b";
    expect(await beat("agent-b", T0)).toBe(200);
    await alarm("agent-b", T0 + 59_000);
    expect(await validLog()).toEqual([]);

    await alarm("agent-b", T0 + 60_000);
    let log = await validLog();
    expect(pdActions(log)).toEqual([["trigger", key]]);
    expect(ogActions(log)).toEqual([["create", key]]);
    const trigger = log.find((x) => x.api === "pagerduty")?.json as {
      payload: { severity: string; summary: string; custom_details: Record<string, unknown> };
      links: unknown;
    };
    expect(trigger.payload.severity).toBe("critical");
    expect(trigger.payload.summary).toContain("agent agent-b is silent");
    expect(trigger.payload.summary).toContain(`not heard since ${new Date(T0).toISOString()}`);
    expect(trigger.payload.summary).toContain("dr-one secondary");
    expect(trigger.payload.summary).toContain("dr-two secondary");
    expect(trigger.payload.custom_details).toMatchObject({
      agent: "agent-b",
      serves: { "dr-one": ["secondary"], "dr-two": ["secondary"] },
    });
    expect(String(trigger.payload.custom_details.what_to_do)).toContain("heartbeats");
    expect(trigger.links).toEqual([{ href: STATUS_URL, text: "turnout status page" }]);
    expect(log.find((x) => x.api === "opsgenie-create")?.json).toMatchObject({ alias: key, priority: "P1" });

    // More alarms while it stays silent page nothing more.
    await alarm("agent-b", T0 + 120_000);
    await alarm("agent-b", T0 + 600_000);
    expect(pdActions(await validLog())).toEqual([["trigger", key]]);

    expect(await beat("agent-b", T0 + 601_000)).toBe(200);
    log = await validLog();
    expect(pdActions(log)).toEqual([
      ["trigger", key],
      ["resolve", key],
    ]);
    expect(ogActions(log)).toEqual([
      ["create", key],
      ["close", key],
    ]);

    // A second silence is a new transition: paged again, under the same key.
    await alarm("agent-b", T0 + 661_000);
    expect(pdActions(await validLog())).toEqual([
      ["trigger", key],
      ["resolve", key],
      ["trigger", key],
    ]);
  });

  it("resolves through the target that paged, after a config edit made another one announce", async () => {
    const key = "turnout/agent/agent-b";
    expect(await beat("agent-b", T0)).toBe(200);
    await alarm("agent-b", T0 + 60_000);
    expect(pdActions(await validLog())).toEqual([["trigger", key]]);
    // dr-one leaves the config: dr-two is now the first target agent-b serves.
    const edited = structuredClone(config);
    delete edited.targets["dr-one"];
    config = edited;
    expect(await beat("agent-b", T0 + 90_000)).toBe(200);
    expect(pdActions(await validLog())).toEqual([
      ["trigger", key],
      ["resolve", key],
    ]);
  });

  it("pages nothing for a silent agent when no pager is configured (Slack still hears it once)", async () => {
    config = twoAgentConfig();
    expect(await beat("agent-b", T0)).toBe(200);
    await alarm("agent-b", T0 + 60_000);
    expect(await validLog()).toEqual([]);
    expect(rec.notes.filter((n) => n.key === "turnout/agent/agent-b")).toHaveLength(1);
  });
});
