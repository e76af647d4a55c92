/**
 * `--agent-silent <agent>@<from>/<to>` (design §11.1 rule 17, §11.6): the replay feeds the
 * agent's silence and return to decide() with their times, answers the probe as a silent agent
 * does (no answer), and the summary counts the `agent-silent` blocks. The failover into the
 * silent agent's side goes the moment it is heard again; a silence of the other side's agent
 * blocks nothing. Then the same through `npm run simulate` as a user runs it.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { validateWorkerConfig } from "../../shared/config.ts";
import { type AgentSilence, parseAgentSilence } from "../../worker/simulate/agent-silences.ts";
import { simulate } from "../../worker/simulate/engine.ts";
import { parseWebhookLines } from "../../worker/simulate/inputs.ts";
import { AS_CONFIGURED } from "../../worker/simulate/variants.ts";
import { type JsonResult, runSimulate } from "./run-cli.ts";

const T = (s: number) => new Date(Date.UTC(2026, 10, 2, 3, 0, s)).toISOString();
const ms = (s: number) => Date.parse(T(s));

const RAW_CONFIG = {
  agents: {
    "agent-a": { url: "http://127.0.0.1:8788", silentAfterSeconds: 60 },
    "agent-b": { url: "http://127.0.0.1:8789", silentAfterSeconds: 60 },
  },
  targets: {
    dr: {
      sides: {
        primary: { matchers: ['alertname="Down"', 'side="p"'], agent: "agent-a" },
        secondary: { matchers: ['alertname="Down"', 'side="s"'], agent: "agent-b" },
      },
      policy: { holdSeconds: 30 },
    },
  },
};

function config() {
  const v = validateWorkerConfig(RAW_CONFIG);
  if (!v.ok) throw new Error(JSON.stringify(v.problems));
  return v.value;
}

/** The primary down from 0 s, still firing (re-sent) at 900 s. */
const LINES = [0, 900].map((at) =>
  JSON.stringify({
    at: T(at),
    source: "alertmanager",
    body: {
      version: "4",
      alerts: [
        {
          status: "firing",
          labels: { alertname: "Down", side: "p" },
          startsAt: T(0),
          endsAt: "0001-01-01T00:00:00Z",
        },
      ],
    },
  }),
);

function run(silences: AgentSilence[]) {
  const { inputs, problems } = parseWebhookLines(LINES.join("\n"), "in");
  expect(problems).toEqual([]);
  const result = simulate(inputs, {
    config: config(),
    variants: [AS_CONFIGURED],
    actionSeconds: 5,
    agentSilences: silences,
  });
  const [variant] = result.variants;
  const [target] = variant?.targets ?? [];
  if (!variant || !target) throw new Error("no result");
  return { summary: variant.summary, events: target.events, final: target.final };
}

describe("agent silences in the replay", () => {
  it("blocks the failover into a silent agent's side, counts it, and fails over the moment it is heard again", () => {
    const { summary, events, final } = run([{ agent: "agent-b", from: ms(-120), to: ms(600) }]);
    expect(summary.blocked["agent-silent"]).toBe(1);
    expect(summary.failovers).toBe(1);
    const at = (type: string) => events.filter((e) => e.type === type).map((e) => e.at);
    // The hold ends at 30 s: probed once, no answer, blocked.
    expect(at("agent.probed")).toEqual([ms(30)]);
    expect(at("agent.probe-unanswered")).toEqual([ms(30)]);
    expect(at("failover.blocked")).toEqual([ms(30)]);
    // Heard again at 600 s: dispatched at once, to agent-b, without a new hold.
    // Silent before the replay starts (its first input): told at the start, with its own time.
    expect(at("agent.silent")).toEqual([ms(0)]);
    expect(events.find((e) => e.type === "agent.silent")?.detail).toMatchObject({
      agent: "agent-b",
      sides: ["secondary"],
      at: T(-120),
      lastHeardAt: T(-180),
    });
    expect(at("agent.returned")).toEqual([ms(600)]);
    const dispatched = events.filter((e) => e.type === "action.dispatched");
    expect(dispatched.map((e) => [e.at, e.detail.to, e.detail.agent])).toEqual([[ms(600), "secondary", "agent-b"]]);
    // Down and blocked from 30 s to 600 s.
    expect(summary.downMs.blocked).toBe(570_000);
    expect(final.activeSide).toBe("secondary");
  });

  it("fails over after the hold with no silence, and a silence of the primary's agent blocks nothing", () => {
    for (const silences of [[], [{ agent: "agent-a", from: ms(-120), to: ms(600) }]]) {
      const { summary, events } = run(silences);
      expect(summary.blocked["agent-silent"]).toBe(0);
      expect(events.filter((e) => e.type === "action.dispatched").map((e) => e.at)).toEqual([ms(30)]);
      expect(events.some((e) => e.type === "agent.probed")).toBe(false);
    }
  });

  it("treats overlapping silences of one agent as one: heard only when the last one ends", () => {
    const { summary, events } = run([
      { agent: "agent-b", from: ms(-120), to: ms(300) },
      { agent: "agent-b", from: ms(200), to: ms(700) },
    ]);
    expect(summary.blocked["agent-silent"]).toBe(1);
    expect(events.filter((e) => e.type === "action.dispatched").map((e) => e.at)).toEqual([ms(700)]);
  });

  it("parses <agent>@<from>/<to> with ISO and relative times, and names what is wrong", () => {
    const now = ms(3600);
    expect(parseAgentSilence(`agent-b@${T(0)}/${T(60)}`, config(), now)).toEqual({
      ok: true,
      silence: { agent: "agent-b", from: ms(0), to: ms(60) },
    });
    expect(parseAgentSilence("agent-b@-2h/now", config(), now)).toEqual({
      ok: true,
      silence: { agent: "agent-b", from: now - 7_200_000, to: now },
    });
    const bad = (text: string) => {
      const p = parseAgentSilence(text, config(), now);
      return p.ok ? "" : p.message;
    };
    expect(bad("agent-z@-2h/now")).toContain('no agent "agent-z" in the config (its agents: agent-a, agent-b)');
    expect(bad("agent-b@now/-2h")).toContain("the start must be before the end");
    expect(bad("agent-b@yesterday/now")).toContain('the start "yesterday" is not a time');
    expect(bad("agent-b")).toContain("expected <agent>@<from>/<to>");
  });
});

describe("npm run simulate -- --agent-silent", () => {
  const dir = mkdtempSync(join(tmpdir(), "turnout-sim-agent-"));
  const configFile = join(dir, "config.json");
  const input = join(dir, "night.ndjson");
  writeFileSync(configFile, JSON.stringify(RAW_CONFIG));
  writeFileSync(input, `${LINES.join("\n")}\n`);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("counts agent-silent blocks in the summary (text and JSON)", async () => {
    const silent = `agent-b@${T(-120)}/${T(600)}`;
    const json = await runSimulate(["--config", configFile, "--webhooks", input, "--agent-silent", silent, "--json"]);
    expect(json.stderr).toBe("");
    expect(json.code).toBe(0);
    const result = JSON.parse(json.stdout) as JsonResult;
    expect(result.variants[0]?.summary).toMatchObject({ failovers: 1, blocked: { "agent-silent": 1 } });
    const text = await runSimulate(["--config", configFile, "--webhooks", input, "--agent-silent", silent]);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain("agent-silent 1");
    expect(text.stdout).toContain("agent-b");
  });

  it("exits 2 and names the problem for an agent the config lacks", async () => {
    const r = await runSimulate(["--config", configFile, "--webhooks", input, "--agent-silent", "agent-z@-2h/now"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('no agent "agent-z" in the config');
  });
});
