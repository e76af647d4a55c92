/**
 * Readiness in workerd (design §11.1, §11.3, §11.6): the heartbeat carries it; the worker keeps
 * the latest per target and side from the agent that serves that side, shows the side a failover
 * would go to in the view, says a change once after two evaluations agree, and with
 * `policy.requireReady` blocks an automatic failover `not-ready`. Readiness for a side the sender
 * does not serve is 403 and audited; readiness none or older than two intervals is unknown.
 */
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import type { ReadinessCheck, SideReadiness } from "../../shared/protocol.ts";
import { AgentObject } from "../../worker/agents/agent-object.ts";
import type { Delivery } from "../../worker/engine/signals.ts";
import { drained, pdActions, receiver, sinksOf } from "./support/paging.ts";
import { useRecordingObject } from "./support/recording-object.ts";
import { agentEnv, fetchWith, signedAgentPost, twoAgentConfig, useConfig } from "./support/two-agents.ts";

const T0 = Date.parse("2026-11-22T10:00:00Z");
const INTERVAL_S = 60;
const rec = useRecordingObject({ start: T0 });
afterEach(() => {
  AgentObject.testing = undefined;
});

let config = twoAgentConfig((c) => {
  c.readiness.intervalSeconds = INTERVAL_S;
});
const DIGEST = "a".repeat(64);

const permissions = (ok: boolean): ReadinessCheck => ({
  name: "permissions",
  ok,
  destination: true,
  detail: ok ? "every write allowed" : "the agent may not patch deployments/web",
});
const sourceEtcd: ReadinessCheck = { name: "etcd-source", ok: false, destination: false, detail: "no answer" };

function side(ok: boolean, atMs: number, extra: Partial<SideReadiness> = {}): SideReadiness {
  return { ready: ok, at: new Date(atMs).toISOString(), checks: [permissions(ok), sourceEtcd], ...extra };
}

interface Beat {
  agent?: "agent-a" | "agent-b";
  readiness?: Record<string, Partial<Record<"primary" | "secondary", SideReadiness>>>;
  targets?: Record<string, string>;
  mode?: "sandbox" | "cluster";
}

/** A leader heartbeat of agent-b (secondary sides) at `atMs`, signed at that time. */
async function beat(atMs: number, b: Beat = {}): Promise<Response> {
  const agent = b.agent ?? "agent-b";
  rec.clock = atMs;
  const body = {
    agent,
    version: "1.2.3",
    mode: b.mode ?? "sandbox",
    pod: `${agent}-0`,
    leader: `${agent}-0`,
    at: new Date(atMs).toISOString(),
    targets: b.targets ?? { "dr-one": DIGEST, "dr-two": DIGEST },
    ...(b.readiness ? { readiness: b.readiness } : {}),
  };
  const res = await fetchWith(
    agentEnv(config),
    await signedAgentPost("/v1/agent/heartbeats", body, agent, agent, atMs),
  );
  await env.TARGETS.getByName("dr-one").settle();
  return res;
}

/** agent-b evaluates dr-one toward secondary at `atMs` and says so on its heartbeat. */
const evaluate = (atMs: number, ok: boolean, extra: Partial<SideReadiness> = {}) =>
  beat(atMs, { readiness: { "dr-one": { secondary: side(ok, atMs, extra) } } });

const view = () => env.TARGETS.getByName("dr-one").view("dr-one");
const readinessNotes = () => rec.notes.filter((n) => /ready/.test(n.text) && !/→/.test(n.text));
const types = async () => (await env.TARGETS.getByName("dr-one").events(0, 1000)).events.map((e) => e.type);

function use(edit: (c: ReturnType<typeof twoAgentConfig>) => void = () => {}): void {
  config = twoAgentConfig((c) => {
    c.readiness.intervalSeconds = INTERVAL_S;
    edit(c);
  });
  useConfig(
    () => config,
    () => rec.clock,
  );
}

describe("the view's readiness", () => {
  it("shows the side a failover would go to, with the failing destination check named and advisory ones shown", async () => {
    use();
    expect((await evaluate(T0, false)).status).toBe(200);
    const r = (await view()).readiness;
    expect(r).toMatchObject({ to: "secondary", agent: "agent-b", state: "not-ready", failing: ["permissions"] });
    expect(r?.checks.map((c) => [c.name, c.ok, c.destination])).toEqual([
      ["permissions", false, true],
      ["etcd-source", false, false],
    ]);
    // The advisory check fails too, and still decides nothing.
    await evaluate(T0 + 60_000, true);
    expect((await view()).readiness).toMatchObject({ state: "ready", at: new Date(T0 + 60_000).toISOString() });
    expect((await view()).readiness?.failing).toBeUndefined();
  });

  it("is unknown with none, and unknown again once older than two intervals: shown, blocking nothing", async () => {
    use((c) => {
      const t = c.targets["dr-one"];
      if (t) t.policy.requireReady = true;
    });
    expect((await view()).readiness).toMatchObject({ state: "unknown", unknown: "none", at: null });
    await evaluate(T0, false);
    rec.clock = T0 + 2 * INTERVAL_S * 1000;
    expect((await view()).readiness?.state).toBe("not-ready");
    rec.clock = T0 + 2 * INTERVAL_S * 1000 + 1;
    expect((await view()).readiness).toMatchObject({ state: "unknown", unknown: "stale", failing: ["permissions"] });
    // The primary goes down now: unknown readiness blocks nothing.
    await primaryDown(rec.clock);
    await rec.fireAlarm("dr-one", rec.clock + 30_000);
    expect(rec.dispatched.map((d) => [d.to, d.agent])).toEqual([["secondary", "agent-b"]]);
  });

  it("takes a side only from the agent that serves it, and refuses readiness for another side with 403, audited", async () => {
    use();
    // agent-a serves dr-one's primary only: its word on secondary is refused.
    const res = await beat(T0, {
      agent: "agent-a",
      readiness: { "dr-one": { primary: side(true, T0), secondary: side(true, T0) } },
    });
    expect(res.status).toBe(403);
    expect(res.headers.get("content-type")).toContain("application/problem+json");
    const problem = (await res.json()) as { detail: string; serves: Record<string, string[]> };
    expect(problem.detail).toContain("dr-one secondary");
    expect(problem.serves["dr-one"]).toEqual(["primary"]);
    const refused = (await env.TARGETS.getByName("dr-one").events(0, 100)).events.find(
      (e) => e.type === "report.refused",
    );
    expect(refused?.detail).toMatchObject({
      kind: "readiness",
      agent: "agent-a",
      sides: ["secondary"],
      servedBy: { secondary: "agent-b" },
    });
    expect((await view()).readiness?.state).toBe("unknown");
    // Its liveness was still recorded: the heartbeat is authentic.
    expect((await env.AGENTS.getByName("agent-a").info("agent-a")).lastHeardAt).toBe(new Date(T0).toISOString());
  });

  it("makes the side not ready when its agent lacks the target, or runs in another mode; differing copies are shown", async () => {
    use();
    await beat(T0, { targets: { "dr-two": DIGEST } });
    expect((await view()).readiness).toMatchObject({ state: "not-ready", failing: ["agent-lacks-target"] });
    await beat(T0 + 60_000, { mode: "cluster", readiness: { "dr-one": { secondary: side(true, T0 + 60_000) } } });
    expect((await view()).readiness).toMatchObject({ state: "not-ready", failing: ["agent-mode"] });
    await evaluate(T0 + 120_000, true);
    expect((await view()).readiness?.state).toBe("ready");
    await beat(T0 + 130_000, { agent: "agent-a", targets: { "dr-one": "b".repeat(64), "dr-two": DIGEST } });
    expect((await view()).readiness?.configDiffers).toEqual({ "agent-a": "b".repeat(64), "agent-b": DIGEST });
  });
});

describe("notices", () => {
  it("says not ready once after two evaluations agree, and ready again once, with the readiness key", async () => {
    use();
    await evaluate(T0, true);
    await evaluate(T0 + 60_000, false);
    expect(readinessNotes()).toEqual([]);
    await evaluate(T0 + 120_000, false);
    await evaluate(T0 + 180_000, false);
    expect(readinessNotes().map((n) => [n.text, n.key])).toEqual([
      [
        "dr-one: not ready to fail over to secondary: permissions failing (two evaluations in a row)",
        "turnout/dr-one/readiness",
      ],
    ]);
    // Heartbeats between rounds carry the same evaluation: nothing new is told or said.
    await beat(T0 + 195_000, { readiness: { "dr-one": { secondary: side(false, T0 + 180_000) } } });
    await evaluate(T0 + 240_000, true);
    await evaluate(T0 + 300_000, true);
    expect(readinessNotes().map((n) => n.text)).toEqual([
      "dr-one: not ready to fail over to secondary: permissions failing (two evaluations in a row)",
      "dr-one: ready again to fail over to secondary",
    ]);
    const t = await types();
    expect(t.filter((x) => x === "readiness.lost")).toHaveLength(1);
    expect(t.filter((x) => x === "readiness.regained")).toHaveLength(1);
  });
});

describe("the pager", () => {
  it("triggers once on lost and resolves once on regained, key turnout/<target>/readiness, kind readiness, severity warning", async () => {
    const r = receiver("readiness");
    use((c) => {
      c.notify = sinksOf(r, { pagerduty: true });
    });
    await evaluate(T0, false);
    await evaluate(T0 + 60_000, false);
    await evaluate(T0 + 120_000, false);
    await drained("dr-one");
    await evaluate(T0 + 180_000, true);
    await evaluate(T0 + 240_000, true);
    await drained("dr-one");
    const log = await r.log();
    for (const x of log) expect({ path: x.path, errors: x.errors }).toEqual({ path: x.path, errors: [] });
    // agent-a, silent all along here, has its own page (turnout/agent/agent-a).
    expect(pdActions(log).filter(([, key]) => key.startsWith("turnout/dr-one/"))).toEqual([
      ["trigger", "turnout/dr-one/readiness"],
      ["resolve", "turnout/dr-one/readiness"],
    ]);
    const trigger = log.find(
      (x) => x.api === "pagerduty" && (x.json as { dedup_key?: string }).dedup_key === "turnout/dr-one/readiness",
    )?.json as {
      payload: { severity: string; summary: string; class: string };
    };
    expect(trigger.payload).toMatchObject({
      severity: "warning",
      class: "readiness",
      summary: "dr-one: not ready to fail over to secondary: permissions failing (two evaluations in a row)",
    });
  });
});

function primaryDown(atMs: number): Promise<unknown> {
  const delivery: Delivery = {
    side: "primary",
    signal: {
      source: "alertmanager",
      key: "am:down",
      incident: "am:down@start",
      status: "firing",
      soft: false,
      labels: { alertname: "Down" },
      annotations: {},
      at: atMs,
      receivedAt: atMs,
    },
  };
  return env.TARGETS.getByName("dr-one").ingest({
    target: "dr-one",
    receivedAt: atMs,
    deliveries: [delivery],
    warnings: [],
  });
}

describe("policy.requireReady in the object", () => {
  it("blocks not-ready when the destination was not ready at the start of the hold; a manual command still goes", async () => {
    use((c) => {
      const t = c.targets["dr-one"];
      if (t) t.policy.requireReady = true;
    });
    await evaluate(T0, false);
    await primaryDown(T0 + 1_000);
    await rec.fireAlarm("dr-one", T0 + 31_000);
    const v = await view();
    expect(v.phase).toBe("pending");
    expect(v.blocked).toBe("not-ready");
    expect(rec.dispatched).toEqual([]);
    expect(rec.notes.some((n) => n.text.includes("secondary was not ready when the hold started"))).toBe(true);
    const manual = await env.TARGETS.getByName("dr-one").command("dr-one", { command: "failover", actor: "alice" });
    expect(manual.applied).toBe(true);
    expect(manual.warnings).toEqual(["secondary is not ready (permissions failing); the action is dispatched anyway"]);
    expect(rec.dispatched.map((d) => [d.to, d.agent])).toEqual([["secondary", "agent-b"]]);
  });
});
