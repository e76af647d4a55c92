// biome-ignore-all lint/performance/useDomNodeTextContent: these tests assert the text as rendered (innerText), not the DOM's text nodes
/**
 * Agents on every side, end to end (issue 25, design §11.1): the real worker in workerd and two
 * real agent processes, `agent-a` and `agent-b`, each with its own simulated cluster and its own
 * key, and a real BIND they both flip records on. The scenarios run in order, as one incident
 * night would: a failover executed by the destination's agent alone; agent-a SIGKILLed and
 * noticed once; agent-b stopped, so an automatic failover into the secondary is blocked
 * `agent-silent` while a manual command and a two-person break-glass still go, with the warning
 * in their answer; and an action addressed to agent-a refused by agent-b (421). The status page
 * is open in Chromium (playwright-core) while agent-a dies, and says so by its own polling.
 * Time is real (workerd has no injectable clock), so heartbeats and silence use second-scale
 * settings.
 */
import { mkdirSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { join } from "node:path";
import type { BrowserContext } from "playwright-core";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { queryRecord } from "../../agent/dns/rfc2136.ts";
import { AGENT_HEADER } from "../../shared/protocol.ts";
import { SIGNATURE_HEADER, sign } from "../../shared/signature.ts";
import type { AuditEvent } from "../../worker/target/target-view.ts";
import { type Chromium, launchChromium, requireChromium } from "../support/chromium.ts";
import { readText } from "../support/request-text.ts";
import { actionRequest } from "../support/test-executors.ts";
import { AGENT_KEYS, DNS, type Stack, startStack, TOKENS, waitFor } from "./stack.ts";

const HOLD_SECONDS = 2;
const SILENT_AFTER_SECONDS = 4;
const SECOND_OPERATOR = "e2e-second-operator-token";

let stack: Stack;
let browser: BrowserContext | undefined;
let chrome: Chromium | undefined;
const slackTexts: { at: number; text: string }[] = [];
let slack: Server | undefined;

beforeAll(async () => {
  requireChromium();
  slack = createServer((req, res) => {
    void readText(req).then((body) => {
      slackTexts.push({ at: Date.now(), text: body });
      res.end("ok");
    });
  });
  await new Promise<void>((resolve) => slack?.listen(0, "127.0.0.1", resolve));
  const address = slack.address();
  const slackUrl = typeof address === "object" && address ? `http://127.0.0.1:${address.port}/hook` : "";
  stack = await startStack({
    agents: "two",
    silentAfterSeconds: SILENT_AFTER_SECONDS,
    heartbeatSeconds: 1,
    workerVars: {
      SLACK_WEBHOOK_URL: slackUrl,
      // Break-glass needs a second operator (design §3a).
      OPERATOR_TOKENS: JSON.stringify({ "second-operator": { token: SECOND_OPERATOR, role: "operator" } }),
    },
    targets: {
      "dr-dns": { kind: "dns-flip", holdSeconds: HOLD_SECONDS },
      "dr-late": { kind: "dns-flip", holdSeconds: HOLD_SECONDS },
      "dr-glass": { kind: "dns-flip", holdSeconds: HOLD_SECONDS, policy: { approval: "required" } },
    },
  });
}, 90_000);

afterAll(async () => {
  await chrome?.close();
  await stack?.stop();
  await new Promise((resolve) => slack?.close(resolve));
}, 30_000);

beforeEach(({ onTestFailed }) => {
  onTestFailed(() => {
    for (const a of Object.values(stack?.agents ?? {}))
      console.error(`${a.name} output (tail):\n${a.output().slice(-3000)}`);
    console.error(`worker output (tail):\n${stack?.worker.output().slice(-4000)}`);
  });
});

interface AgentRow {
  name: string;
  silent: boolean;
  lastHeardAt: string | null;
  mode: string | null;
  leader: string | null;
  serves: Record<string, string[]>;
}

async function agentsList(): Promise<AgentRow[]> {
  const res = await fetch(`${stack.worker.url}/v1/agents`, { headers: { authorization: `Bearer ${TOKENS.operator}` } });
  if (!res.ok) throw new Error(`GET /v1/agents: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { agents: AgentRow[] }).agents;
}
const agentRow = async (name: string) => (await agentsList()).find((a) => a.name === name);
const ofType = (events: AuditEvent[], type: string) => events.filter((e) => e.type === type);

/** The steps an agent's log says it accepted, as `action` ids. */
const accepted = (output: string) =>
  output
    .split("\n")
    .filter((l) => l.includes('"msg":"action accepted"'))
    .map((l) => String((JSON.parse(l) as { action: string }).action));

describe("two agents, each on its side", () => {
  it("both are heard, in sandbox mode, each serving its sides", async () => {
    const rows = await waitFor("both agents heard", async () => {
      const all = await agentsList();
      return all.length === 2 && all.every((a) => a.lastHeardAt !== null && !a.silent) ? all : undefined;
    });
    expect(rows.map((a) => [a.name, a.mode])).toEqual([
      ["agent-a", "sandbox"],
      ["agent-b", "sandbox"],
    ]);
    expect(rows[0]?.serves["dr-dns"]).toEqual(["primary"]);
    expect(rows[1]?.serves["dr-dns"]).toEqual(["secondary"]);
    // Each agent kept the worker's answer and shows it.
    const health = await (await fetch(`${stack.agents["agent-b"]?.url}/healthz`)).json();
    expect(health).toMatchObject({ agent: "agent-b", heartbeat: "ok", serves: { "dr-dns": ["secondary"] } });
  });

  it("primary down → the failover is executed by agent-b exactly once; agent-a receives nothing", async () => {
    const a = stack.agents["agent-a"];
    const b = stack.agents["agent-b"];
    if (!a || !b) throw new Error("two agents expected");
    await stack.alert([{ target: "dr-dns", side: "primary", status: "firing", at: Date.now() }]);
    const view = await waitFor("dr-dns steady on secondary", async () => {
      const v = await stack.view("dr-dns");
      return v.activeSide === "secondary" && v.phase === "steady" && v.action?.status === "succeeded" ? v : undefined;
    });
    const id = view.action?.id ?? "";
    expect(id).toBe("dr-dns:1");
    const report = await b.report(id);
    expect(report).toMatchObject({ actionId: id, status: "succeeded", activeSide: "secondary" });
    expect(accepted(b.output()).filter((x) => x === id)).toHaveLength(1);
    expect(await a.report(id)).toBeUndefined();
    expect(accepted(a.output())).toEqual([]);
    // The record really moved, on the DNS both sides share.
    expect(await queryRecord(stack.bind?.server ?? "", stack.recordOf("dr-dns"), "A")).toEqual([DNS.secondary]);
  });

  it("a request addressed to agent-a is refused by agent-b (421 wrong-agent), and nothing runs", async () => {
    const b = stack.agents["agent-b"];
    if (!b) throw new Error("agent-b expected");
    const body = JSON.stringify(actionRequest("dr-late", 99, { agent: "agent-a", issuedAt: new Date().toISOString() }));
    const res = await fetch(`${b.url}/v1/actions`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        [SIGNATURE_HEADER]: await sign(AGENT_KEYS["agent-b"], body, Math.floor(Date.now() / 1000)),
      },
      body,
    });
    expect(res.status).toBe(421);
    expect(res.headers.get(AGENT_HEADER)).toBe("agent-b");
    expect(await res.json()).toMatchObject({
      type: "urn:turnout:problem:wrong-agent",
      agent: "agent-a",
      self: "agent-b",
    });
    expect(await b.report("dr-late:99")).toBeUndefined();
  });

  it("agent-a SIGKILLed → after silentAfterSeconds GET /v1/agents, the view, the page (Chromium), the audit log and Slack say so, once", async () => {
    const a = stack.agents["agent-a"];
    if (!a) throw new Error("agent-a expected");
    // The status page is open before the kill: it must notice by its own polling, no reload.
    chrome = await launchChromium({ width: 1280, height: 900 });
    browser = chrome.context;
    const page = await browser.newPage();
    const opened = await page.goto(`${stack.worker.url}/?token=${TOKENS.operator}`, { timeout: 15_000 });
    expect(opened?.status()).toBe(200);
    const agentA = page.locator('#agents [data-agent="agent-a"]');
    await expect.poll(() => agentA.getAttribute("class")).toBe("agent agent-heard");

    const killedAt = Date.now();
    await a.kill();
    const row = await waitFor(
      "agent-a silent",
      async () => ((await agentRow("agent-a"))?.silent ? agentRow("agent-a") : undefined),
      30_000,
    );
    // Silent only once silentAfterSeconds have passed since it was last heard, before the kill.
    const lastHeard = Date.parse(row?.lastHeardAt ?? "");
    expect(lastHeard).toBeLessThanOrEqual(killedAt);
    expect(Date.now() - lastHeard).toBeGreaterThanOrEqual(SILENT_AFTER_SECONDS * 1000);
    expect((await agentRow("agent-b"))?.silent).toBe(false);

    // The view says it: dr-dns's primary side is agent-a's, silent; its secondary agent-b's, heard.
    const view = (await stack.view("dr-dns")) as { agents?: Record<string, { name: string; silent: boolean }> };
    expect(view.agents).toEqual({
      primary: { name: "agent-a", silent: true },
      secondary: { name: "agent-b", silent: false },
    });

    // The page says it, by its own polling: the Agents section once, and the cards of its sides.
    await expect
      .poll(() => agentA.getAttribute("class"), { timeout: 15_000, interval: 250 })
      .toBe("agent agent-silent");
    expect(await page.locator("#agents [data-agent]").count()).toBe(2);
    expect(await page.locator("#agents .agent-silent").count()).toBe(1);
    const summary = await page.locator('#agents [data-field="agents-summary"]').innerText();
    expect(summary).toBe("agent-a is SILENT: no automatic failover goes into the sides it serves until heard again.");
    const itemText = await agentA.innerText();
    expect(itemText).toContain("SILENT");
    expect(itemText).toContain(
      `last heard at ${row?.lastHeardAt?.slice(0, 10)} ${row?.lastHeardAt?.slice(11, 19)} UTC`,
    );
    expect(itemText).toMatch(/No automatic failover goes into dr-dns \(primary\)/);
    await expect
      .poll(() => page.locator('[data-target="dr-dns"] [data-side="primary"] [data-field="side-agent"]').innerText(), {
        timeout: 10_000,
        interval: 250,
      })
      .toContain("Agent agent-a is SILENT");
    expect(
      await page.locator('[data-target="dr-dns"] [data-side="secondary"] [data-field="side-agent"]').innerText(),
    ).toBe("Agent: agent-b");
    // Said once on the page: agent-a's silence is one item, not one per target or per poll.
    expect((await page.locator("#agents").innerText()).match(/agent-a is SILENT/g)).toHaveLength(1);
    mkdirSync(join(import.meta.dirname, "../../test-results"), { recursive: true });
    await page.screenshot({
      path: join(import.meta.dirname, "../../test-results/agents-silent-desktop.png"),
      fullPage: true,
      timeout: 10_000,
    });
    await page.close();

    const events = await waitFor("agent.silent audited on dr-dns", async () => {
      const e = await stack.events("dr-dns");
      return ofType(e, "agent.silent").length > 0 ? e : undefined;
    });
    expect(ofType(events, "agent.silent")).toHaveLength(1);
    const notices = await waitFor("one Slack notice naming agent-a", async () => {
      const n = slackTexts.filter((s) => s.at >= killedAt && s.text.includes("agent-a"));
      return n.length > 0 ? n : undefined;
    });
    // Wait past another silence period: the notice is once per transition, not once per target or check.
    await new Promise((r) => setTimeout(r, SILENT_AFTER_SECONDS * 1000));
    expect(slackTexts.filter((s) => s.at >= killedAt && s.text.includes("agent-a"))).toEqual(notices);
    expect(notices).toHaveLength(1);
  });

  it("agent-b stopped → an automatic failover into the secondary is blocked agent-silent; a manual command still dispatches, with the warning", async () => {
    const b = stack.agents["agent-b"];
    if (!b) throw new Error("agent-b expected");
    await b.stop();
    await waitFor("agent-b silent", async () => (await agentRow("agent-b"))?.silent, 30_000);

    await stack.alert([{ target: "dr-late", side: "primary", status: "firing", at: Date.now() }]);
    const blocked = await waitFor("dr-late blocked agent-silent", async () => {
      const v = await stack.view("dr-late");
      return v.blocked === "agent-silent" ? v : undefined;
    });
    expect(blocked.activeSide).toBe("primary");
    expect(blocked.action).toBeFalsy();

    const res = await stack.command("dr-late", "failover", { reason: "agent-b is being restarted" });
    expect(res.status).toBe(200);
    const answer = (await res.json()) as { applied: boolean; warnings?: string[] };
    expect(answer.applied).toBe(true);
    expect(answer.warnings?.join(" ")).toContain("agent-b");

    // The manual action waits for agent-b (it is re-sent, to agent-b only) and runs there once.
    await b.start();
    const done = await waitFor(
      "dr-late steady on secondary",
      async () => {
        const v = await stack.view("dr-late");
        return v.activeSide === "secondary" && v.phase === "steady" && v.action?.status === "succeeded" ? v : undefined;
      },
      40_000,
    );
    const id = done.action?.id ?? "";
    expect(accepted(b.output()).filter((x) => x === id)).toHaveLength(1);
    expect(accepted(stack.agents["agent-a"]?.output() ?? "")).toEqual([]);
  });

  it("with agent-b silent, a two-person break-glass still dispatches, and its answer carries the warning", async () => {
    const b = stack.agents["agent-b"];
    if (!b) throw new Error("agent-b expected");
    await b.stop();
    await waitFor("agent-b silent again", async () => (await agentRow("agent-b"))?.silent, 30_000);
    const asked = await stack.command("dr-glass", "failover", { force: true, reason: "site A is gone" });
    expect(asked.status).toBe(202);
    const request = ((await asked.json()) as { request: { id: string } }).request.id;
    const confirmed = await fetch(`${stack.worker.url}/v1/targets/dr-glass/commands`, {
      method: "POST",
      headers: { authorization: `Bearer ${SECOND_OPERATOR}`, "content-type": "application/json" },
      body: JSON.stringify({ command: "confirm", request }),
    });
    expect(confirmed.status).toBe(200);
    const answer = (await confirmed.json()) as { applied: boolean; warnings?: string[] };
    expect(answer.applied).toBe(true);
    expect(answer.warnings?.join(" ")).toContain("agent-b");
    await b.start();
    const done = await waitFor(
      "dr-glass steady on secondary",
      async () => {
        const v = await stack.view("dr-glass");
        return v.activeSide === "secondary" && v.phase === "steady" && v.action?.status === "succeeded" ? v : undefined;
      },
      40_000,
    );
    expect(await b.report(done.action?.id ?? "")).toMatchObject({ status: "succeeded" });
  });
});
