/**
 * Readiness end to end (issue 27, design §11.3): the real worker in workerd, two real agents
 * (`agent-a`, `agent-b`) in the sandbox, a real BIND and a real etcd pair. For each executor one
 * thing is broken as the sandbox breaks it (a verb removed from the agent's Role, the DNS server
 * stopped, the incoming node group NotReady, a foreign saved spec); within an interval the view's
 * `readiness` is not ready with that check named and the agent's `turnout_target_ready` is 0, the
 * status page (Chromium) says it in words, and Slack gets one notice once two evaluations agreed;
 * mending it brings all of them back, with one notice. `readiness.intervalSeconds` is the
 * schema's minimum, 10 s; time is real (workerd has no injectable clock).
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BrowserContext, chromium } from "playwright-core";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { SIGNATURE_HEADER, sign } from "../../shared/signature.ts";
import type { ReadinessView } from "../../worker/target/readiness-view.ts";
import { readText } from "../support/request-text.ts";
import { AGENT_KEYS, type Stack, startStack, TOKENS, type TwoAgentName, waitFor } from "./stack.ts";

const INTERVAL_SECONDS = 10;
/** An evaluation, plus the heartbeat that carries it, plus slack for a loaded machine. */
const ONE_INTERVAL_MS = (INTERVAL_SECONDS + 5) * 1000;
const CHROMIUM = "/usr/bin/chromium";

let stack: Stack;
let browser: BrowserContext | undefined;
let profile: string | undefined;
let slack: Server | undefined;
const slackBodies: string[] = [];

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: run \`npm run setup\``);
  slack = createServer((req, res) => {
    void readText(req).then((body) => {
      slackBodies.push(body);
      res.end("ok");
    });
  });
  await new Promise<void>((resolve) => slack?.listen(0, "127.0.0.1", resolve));
  const address = slack.address();
  const slackUrl = typeof address === "object" && address ? `http://127.0.0.1:${address.port}/hook` : "";
  stack = await startStack({
    agents: "two",
    heartbeatSeconds: 1,
    readinessIntervalSeconds: INTERVAL_SECONDS,
    workerVars: { SLACK_WEBHOOK_URL: slackUrl },
    // Long holds: nothing here fails over; readiness is about the failover that could happen.
    targets: {
      "ready-route": { kind: "route-swap", holdSeconds: 3600 },
      "ready-dns": { kind: "dns-flip", holdSeconds: 3600 },
      "ready-etcd": { kind: "etcd-sync-teardown", holdSeconds: 3600, dns: "ready-dns" },
      "ready-nodes": { kind: "node-fence", holdSeconds: 3600 },
    },
  });
  profile = mkdtempSync(join(tmpdir(), "turnout-chromium-"));
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    timeout: 30_000,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
  });
}, 120_000);

afterAll(async () => {
  await browser?.close().catch(() => undefined);
  await stack?.stop();
  await new Promise((resolve) => slack?.close(resolve));
  if (profile) rmSync(profile, { recursive: true, force: true });
}, 30_000);

beforeEach(({ onTestFailed }) => {
  onTestFailed(() => {
    for (const a of Object.values(stack?.agents ?? {}))
      console.error(`${a.name} output (tail):\n${a.output().slice(-3000)}`);
    console.error(`worker output (tail):\n${stack?.worker.output().slice(-4000)}`);
  });
});

async function readiness(target: string): Promise<ReadinessView | undefined> {
  return (await stack.view(target)).readiness;
}

/** `turnout_target_ready{target,to="secondary"}` on the agent's /metrics. */
async function readyMetric(agent: TwoAgentName, target: string): Promise<number | undefined> {
  const text = await (await fetch(`${stack.agents[agent]?.url}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`turnout_target_ready{target="${target}",to="secondary"}`));
  return line === undefined ? undefined : Number(line.split(" ").at(-1));
}

/** The readiness line of the target's card in Chromium. */
async function pageSentence(target: string): Promise<string> {
  const page = await (browser as BrowserContext).newPage();
  try {
    const res = await page.goto(`${stack.worker.url}/?token=${TOKENS.operator}`, { timeout: 15_000 });
    expect(res?.status()).toBe(200);
    return (
      (await page.locator(`[data-target="${target}"] [data-field="readiness-sentence"]`).textContent({
        timeout: 10_000,
      })) ?? ""
    );
  } finally {
    await page.close();
  }
}

/** `POST /v1/sandbox/<verb>` on the destination's agent, signed with its key (what `turnout sandbox` sends). */
async function sandbox(agent: TwoAgentName, verb: "break" | "mend", target: string, check: string): Promise<void> {
  const body = JSON.stringify({ target, check, side: "secondary" });
  const res = await fetch(`${stack.agents[agent]?.url}/v1/sandbox/${verb}`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      [SIGNATURE_HEADER]: await sign(AGENT_KEYS[agent], body, Math.floor(Date.now() / 1000)),
    },
    body,
  });
  expect(res.status, await res.clone().text()).toBe(200);
}

/** Slack messages name the target in bold: `*ready-dns*: not ready to fail over to secondary: …`. */
const notices = (target: string, words: string) =>
  slackBodies.filter((b) => b.includes(`*${target}*: ${words} to fail over to secondary`));

/** Waits until the target's readiness is `state`; a timeout says what it was instead. */
async function untilState(target: string, state: ReadinessView["state"], timeoutMs: number): Promise<ReadinessView> {
  let last: ReadinessView | undefined;
  try {
    return await waitFor(
      `${target} ${state}`,
      async () => {
        last = await readiness(target);
        return last?.state === state ? last : undefined;
      },
      timeoutMs,
    );
  } catch (err) {
    throw new Error(`${String(err)}; last readiness: ${JSON.stringify(last)}`);
  }
}

interface Case {
  kind: string;
  target: string;
  check: string;
  /** The agent of the side a failover would go to (its sandbox is what breaks). */
  agent: TwoAgentName;
  breakIt: () => Promise<void>;
  mendIt: () => Promise<void>;
}

const CASES: Case[] = [
  {
    kind: "route-swap",
    target: "ready-route",
    check: "saved-spec",
    agent: "agent-a",
    breakIt: () => sandbox("agent-a", "break", "ready-route", "saved-spec"),
    mendIt: () => sandbox("agent-a", "mend", "ready-route", "saved-spec"),
  },
  {
    kind: "dns-flip",
    target: "ready-dns",
    check: "dns-server",
    agent: "agent-b",
    // The stack started this BIND, not the agent's sandbox: stopped and continued as the sandbox does its own.
    breakIt: async () => {
      process.kill(stack.bind?.pid ?? 0, "SIGSTOP");
    },
    mendIt: async () => {
      process.kill(stack.bind?.pid ?? 0, "SIGCONT");
    },
  },
  {
    kind: "etcd-sync-teardown",
    target: "ready-etcd",
    check: "permissions",
    agent: "agent-b",
    breakIt: () => sandbox("agent-b", "break", "ready-etcd", "permissions"),
    mendIt: () => sandbox("agent-b", "mend", "ready-etcd", "permissions"),
  },
  {
    kind: "node-fence",
    target: "ready-nodes",
    check: "destination-nodes",
    agent: "agent-a",
    breakIt: () => sandbox("agent-a", "break", "ready-nodes", "destination-nodes"),
    mendIt: () => sandbox("agent-a", "mend", "ready-nodes", "destination-nodes"),
  },
];

describe("readiness goes red and green, for each executor", () => {
  for (const c of CASES) {
    it(`${c.kind}: breaking ${c.check} is seen everywhere within an interval and noticed once; mending it brings all back`, async () => {
      await untilState(c.target, "ready", 60_000);
      expect(await pageSentence(c.target)).toBe("Ready to fail over to secondary");
      const before = notices(c.target, "not ready").length;

      await c.breakIt();
      const red = await waitFor(
        `${c.target} not ready`,
        async () => {
          const r = await readiness(c.target);
          return r?.state === "not-ready" && r.failing?.includes(c.check) ? r : undefined;
        },
        ONE_INTERVAL_MS,
      );
      expect(red.checks.find((x) => x.name === c.check)).toMatchObject({ ok: false, destination: true });
      expect(await readyMetric(c.agent, c.target)).toBe(0);
      const sentence = await pageSentence(c.target);
      expect(sentence).toMatch(/^Not ready to fail over to secondary: /);
      expect(sentence).toContain(`(${c.check})`);
      expect(sentence).toContain("docs/operations.md#readiness");
      // Two evaluations in a row must agree before Slack hears of it: within a second interval.
      await waitFor(
        `one notice for ${c.target}`,
        async () => notices(c.target, "not ready").length > before,
        2 * ONE_INTERVAL_MS,
      );
      expect(notices(c.target, "not ready")).toHaveLength(before + 1);

      const regainedBefore = notices(c.target, "ready again").length;
      await c.mendIt();
      await untilState(c.target, "ready", ONE_INTERVAL_MS);
      expect(await readyMetric(c.agent, c.target)).toBe(1);
      expect(await pageSentence(c.target)).toBe("Ready to fail over to secondary");
      await waitFor(
        `one regained notice for ${c.target}`,
        async () => notices(c.target, "ready again").length > regainedBefore,
        2 * ONE_INTERVAL_MS,
      );
      // A further round says nothing more.
      await new Promise((r) => setTimeout(r, ONE_INTERVAL_MS));
      expect(notices(c.target, "not ready")).toHaveLength(before + 1);
      expect(notices(c.target, "ready again")).toHaveLength(regainedBefore + 1);
    }, 150_000);
  }
});
