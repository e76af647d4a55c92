/**
 * The status page's Agents section (design §11.1) in workerd: every agent with whether it is heard
 * or silent (since when), its mode, version, leader and standby replicas, and the sides it
 * serves; each target card names its sides' agents and marks a silent one; `?fragment=agents`
 * is the section alone, for the page's script. Outside text (pod names, versions from
 * heartbeats) is escaped.
 */
import { runDurableObjectAlarm } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import { AgentObject } from "../../worker/agents/agent-object.ts";
import { TEST_CREDENTIALS } from "./support/bindings.ts";
import { useRecordingObject } from "./support/recording-object.ts";
import { agentEnv, fetchWith, heartbeat, signedAgentPost, twoAgentConfig, useConfig } from "./support/two-agents.ts";

const T0 = Date.parse("2026-11-22T03:00:00Z");
const rec = useRecordingObject({ start: T0 });
const config = twoAgentConfig();
afterEach(() => {
  AgentObject.testing = undefined;
});

async function beat(agent: "agent-a" | "agent-b", atMs: number, pod: string, leader: string, version = "1.2.3") {
  rec.clock = atMs;
  const body = { ...heartbeat(agent, atMs, pod, leader), version };
  const res = await fetchWith(
    agentEnv(config),
    await signedAgentPost("/v1/agent/heartbeats", body, agent, agent, atMs),
  );
  expect(res.status).toBe(200);
}

async function page(path = "/"): Promise<string> {
  const res = await fetchWith(
    agentEnv(config),
    new Request(`https://turnout.example${path}`, { headers: { authorization: `Bearer ${TEST_CREDENTIALS.viewer}` } }),
  );
  expect(res.status).toBe(200);
  return res.text();
}

/** The text of one element of the HTML, tags stripped and whitespace collapsed. */
function textOf(html: string, start: RegExp): string {
  const from = html.search(start);
  expect(from).toBeGreaterThanOrEqual(0);
  const tag = /^<(\w+)/.exec(html.slice(from))?.[1] ?? "li";
  const end = html.indexOf(`</${tag}>`, from);
  return html
    .slice(from, end)
    .replace(/<[^>]+>/g, "")
    .replace(/\s+/g, " ")
    .trim();
}

describe("the status page's Agents section", () => {
  it("says which agent is silent since when and what it means, shows standby replicas, and marks the silent agent on each card", async () => {
    useConfig(
      () => config,
      () => rec.clock,
    );
    await beat("agent-a", T0, "agent-a-0", "agent-a-0");
    await beat("agent-b", T0, "agent-b-0", "agent-b-0");
    await beat("agent-b", T0 + 1_000, "agent-b-1", "agent-b-0");
    // agent-b keeps beating; agent-a stops: silent 60 s after T0.
    await beat("agent-b", T0 + 50_000, "agent-b-0", "agent-b-0");
    rec.clock = T0 + 60_000;
    await runDurableObjectAlarm(env.AGENTS.getByName("agent-a"));
    for (const t of ["dr-one", "dr-two", "one-cluster"]) await env.TARGETS.getByName(t).settle();

    const html = await page();
    const section = textOf(html, /<section class="agents"/);
    expect(section).toContain("agent-a is SILENT: no automatic failover goes into the sides it serves");
    const a = textOf(html, /<li class="agent agent-silent" data-agent="agent-a"/);
    expect(a).toContain("SILENT");
    expect(a).toContain("last heard at 2026-11-22 03:00:00 UTC");
    expect(a).toContain(
      "No automatic failover goes into dr-one (primary), dr-two (primary), one-cluster (primary and secondary) until it is heard again; a manual command still goes, with a warning.",
    );
    expect(a).toContain("Mode sandbox; version 1.2.3; leader agent-a-0.");
    const b = textOf(html, /<li class="agent agent-heard" data-agent="agent-b"/);
    expect(b).toContain("heard");
    expect(b).toContain("last heartbeat at 03:00:50 UTC");
    expect(b).toContain("Executes failovers into dr-one (secondary), dr-two (secondary).");
    expect(b).toContain("standby replica agent-b-1 (heard 03:00:01 UTC), shown, not counted");
    // agent-c serves nothing and was never heard.
    const c = textOf(html, /<li class="agent agent-unheard" data-agent="agent-c"/);
    expect(c).toContain("not heard yet");
    expect(c).toContain("Serves no target.");

    // The cards: dr-one's primary names agent-a, marked silent; its secondary agent-b, heard.
    const card = html.slice(html.indexOf('data-target="dr-one"'), html.indexOf('data-target="dr-two"'));
    expect(textOf(card, /<p class="side-agent agent-silent"/)).toBe(
      "⊘ Agent agent-a is SILENT: nothing fails over into this side automatically until it is heard again (see Agents).",
    );
    expect(textOf(card, /<p class="side-agent muted"/)).toBe("Agent: agent-b");

    // The fragment the page's script swaps in: the section alone.
    const fragment = await page("/?fragment=agents");
    expect(fragment.startsWith('<section class="agents"')).toBe(true);
    expect(fragment).not.toContain("data-target=");
    expect(fragment).toContain('data-agent="agent-a"');
  });

  it("escapes what a heartbeat says (its version)", async () => {
    useConfig(
      () => config,
      () => rec.clock,
    );
    await beat("agent-b", T0, "agent-b-0", "agent-b-0", "<img src=x onerror=alert(1)>");
    const html = await page();
    expect(html).not.toContain("<img src=x");
    expect(html).toContain("&lt;img src=x onerror=alert(1)&gt;");
  });
});
