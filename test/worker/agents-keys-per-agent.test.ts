/**
 * Keys per agent (design §11.1): the key is chosen by `Turnout-Agent` and checked before parsing.
 * A report for agent-b's action signed with agent-a's key is 403, audited `report.refused`, and
 * changes nothing; a heartbeat naming agent-b signed with agent-a's key is 401; two agents sharing
 * a key make the config invalid (named, never shown). Today's single-agent config and
 * `TURNOUT_AGENT_SECRET` work unchanged.
 */
import { env, exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { SIGNATURE_HEADER, sign } from "../../shared/signature.ts";
import type { Env } from "../../worker/env.ts";
import { TEST_CREDENTIALS } from "./support/bindings.ts";
import { useRecordingObject } from "./support/recording-object.ts";
import { succeededReport } from "./support/reports.ts";
import {
  agentEnv,
  fetchWith,
  heartbeat,
  KEYS,
  signedAgentPost,
  twoAgentConfig,
  useConfig,
} from "./support/two-agents.ts";

const START = Math.floor(Date.now() / 1000) * 1000;
const rec = useRecordingObject({ start: START });

async function failoverToAgentB() {
  const config = twoAgentConfig();
  useConfig(
    () => config,
    () => rec.clock,
  );
  const stub = env.TARGETS.getByName("dr-one");
  const result = await stub.command("dr-one", { command: "failover", actor: "alice" });
  await stub.settle();
  expect(result.applied).toBe(true);
  const [request] = rec.dispatched;
  if (!request) throw new Error("nothing dispatched");
  expect(request.agent).toBe("agent-b");
  return { config, stub, request };
}

describe("reports are verified with the key of the agent they name", () => {
  it("refuses agent-b's action reported with agent-a's key: 403, audited, nothing changes", async () => {
    const { config, stub, request } = await failoverToAgentB();
    const before = await stub.state();
    const report = succeededReport(request, rec.clock);
    const res = await fetchWith(
      agentEnv(config),
      await signedAgentPost("/v1/agent/reports", report, "agent-a", "agent-a", Date.now()),
    );
    expect(res.status).toBe(403);
    expect(res.headers.get("content-type")).toContain("application/problem+json");
    const after = await stub.state();
    expect(after?.machine.activeSide).toBe("primary");
    expect(after?.machine.phase).toBe(before?.machine.phase);
    expect(after?.machine.action).toEqual(before?.machine.action);
    const events = (await stub.events(0, 1000)).events;
    const refused = events.filter((e) => e.type === "report.refused");
    expect(refused).toHaveLength(1);
    expect(refused[0]?.detail).toMatchObject({ agent: "agent-a", dispatchedTo: "agent-b" });

    // The same report from agent-b, with its own key, is the agent's word.
    const ok = await fetchWith(
      agentEnv(config),
      await signedAgentPost("/v1/agent/reports", report, "agent-b", "agent-b", Date.now()),
    );
    expect(ok.status).toBe(200);
    expect((await stub.state())?.machine.activeSide).toBe("secondary");
  });

  it("answers 401 for a report signed with another key than the named agent's, or naming no known agent", async () => {
    const { config, request } = await failoverToAgentB();
    const report = succeededReport(request, rec.clock);
    const e = agentEnv(config);
    // agent-a's key, claiming to be agent-b.
    expect(
      (await fetchWith(e, await signedAgentPost("/v1/agent/reports", report, "agent-a", "agent-b", Date.now()))).status,
    ).toBe(401);
    // A name nobody has a key for, and a header that is no agent name.
    expect(
      (await fetchWith(e, await signedAgentPost("/v1/agent/reports", report, "agent-b", "agent-z", Date.now()))).status,
    ).toBe(401);
    expect(
      (await fetchWith(e, await signedAgentPost("/v1/agent/reports", report, "agent-b", "Not A Name", Date.now())))
        .status,
    ).toBe(401);
  });
});

describe("heartbeats are verified with the key of the agent they name", () => {
  it("answers 401 for a heartbeat naming agent-b signed with agent-a's key, whatever the header says", async () => {
    const config = twoAgentConfig();
    useConfig(
      () => config,
      () => rec.clock,
    );
    const e = agentEnv(config);
    const body = heartbeat("agent-b", rec.clock);
    const asA = await fetchWith(
      e,
      await signedAgentPost("/v1/agent/heartbeats", body, "agent-a", "agent-a", rec.clock),
    );
    expect(asA.status).toBe(401);
    expect(((await asA.json()) as { detail: string }).detail).toContain("agent-b");
    const claimsB = await fetchWith(
      e,
      await signedAgentPost("/v1/agent/heartbeats", body, "agent-a", "agent-b", rec.clock),
    );
    expect(claimsB.status).toBe(401);
    const info = await env.AGENTS.getByName("agent-b").info("agent-b");
    expect(info.lastHeardAt).toBeNull();

    const own = await fetchWith(
      e,
      await signedAgentPost("/v1/agent/heartbeats", body, "agent-b", "agent-b", rec.clock),
    );
    expect(own.status).toBe(200);
    expect(await own.json()).toMatchObject({ serves: { "dr-one": ["secondary"], "dr-two": ["secondary"] } });
  });

  it("answers 400 naming the fields of a verified but malformed heartbeat", async () => {
    const config = twoAgentConfig();
    useConfig(
      () => config,
      () => rec.clock,
    );
    const res = await fetchWith(
      agentEnv(config),
      await signedAgentPost(
        "/v1/agent/heartbeats",
        { agent: "agent-a", mode: "moon" },
        "agent-a",
        "agent-a",
        rec.clock,
      ),
    );
    expect(res.status).toBe(400);
    const body = (await res.json()) as { errors: { path: string }[] };
    expect(body.errors.map((x) => x.path)).toEqual(expect.arrayContaining(["mode", "pod", "at"]));
  });
});

describe("the keys themselves", () => {
  it("makes two agents sharing a key an invalid config, naming the agents and never the key", async () => {
    const config = twoAgentConfig();
    const shared: Env = {
      ...agentEnv(config),
      TURNOUT_AGENT_SECRETS: JSON.stringify({ ...KEYS, "agent-c": KEYS["agent-a"] }),
    };
    const res = await fetchWith(shared, new Request("http://w/healthz"));
    const text = await res.text();
    expect(JSON.parse(text)).toMatchObject({ ok: false, config: "invalid" });
    expect(text).toContain("agent-c");
    expect(text).toContain("agent-a");
    expect(text).not.toContain(KEYS["agent-a"]);
    const short = await fetchWith(
      { ...shared, TURNOUT_AGENT_SECRETS: JSON.stringify({ "agent-a": "too-short" }) },
      new Request("http://w/healthz"),
    );
    const shortText = await short.text();
    expect(shortText).toContain("TURNOUT_AGENT_SECRETS.agent-a");
    expect(shortText).not.toContain("too-short");
  });

  it("keeps today's single-agent config and TURNOUT_AGENT_SECRET working unchanged (no header, the legacy key)", async () => {
    // The worker project's own config is a single-agent one: `agent`, no `agents`, one shared secret.
    const stub = env.TARGETS.getByName("bg-a");
    expect((await stub.command("bg-a", { command: "failover", actor: "alice" })).applied).toBe(true);
    await stub.settle();
    const [request] = rec.dispatched;
    if (!request) throw new Error("nothing dispatched");
    expect(request.agent).toBe("default");
    const raw = JSON.stringify(succeededReport(request, rec.clock));
    const res = await exports.default.fetch("http://w/v1/agent/reports", {
      method: "POST",
      headers: {
        "content-type": "application/json",
        [SIGNATURE_HEADER]: await sign(TEST_CREDENTIALS.agentSecret, raw, Math.floor(Date.now() / 1000)),
      },
      body: raw,
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ accepted: true });
    expect((await stub.state())?.machine.activeSide).toBe("secondary");
    const health = await exports.default.fetch("http://w/healthz");
    expect(await health.json()).toEqual({ ok: true, config: "valid" });
  });
});
