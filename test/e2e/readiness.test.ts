import { createServer, type Server } from "node:http";
import { AppsV1Api, CoreV1Api, KubeConfig } from "@kubernetes/client-node";
import type { BrowserContext } from "playwright-core";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { AgentTarget } from "../../shared/config.ts";
import { SIGNATURE_HEADER, sign } from "../../shared/signature.ts";
import type { ReadinessView } from "../../worker/target/readiness-view.ts";
import { shopStep } from "../agent/readiness-sandbox.ts";
import { type Chromium, launchChromium, requireChromium } from "../support/chromium.ts";
import { readText } from "../support/request-text.ts";
import { AGENT_KEYS, type Stack, startStack, TOKENS, type TwoAgentName, waitFor } from "./stack.ts";

const INTERVAL_SECONDS = 10;
/** An evaluation, plus the heartbeat that carries it, plus slack for a loaded machine. */
const ONE_INTERVAL_MS = (INTERVAL_SECONDS + 5) * 1000;

/** A plan of the readiness sandbox's steps (test/agent/readiness-sandbox.ts), by name. */
const planOf = (...names: string[]) => ({ kind: "plan", steps: names.map(shopStep) }) as unknown as AgentTarget;
/** A kube step with expect, and steps that have no checks (wait, approval). */
const PLAN_KUBE = planOf("switch-config", "settle", "go-ahead");
const PLAN_SCALE = planOf("scale-up");
const PLAN_CHECK = planOf("gate");
/** A restart step: its workload must exist (and be patchable). */
const PLAN_RESTART = planOf("restart-app");
/** An http step: never sent by readiness; its endpoint must accept a connection. */
const planHttp = (url: string) =>
  ({
    kind: "plan",
    steps: [
      {
        name: "lb-pool",
        http: {
          method: "PUT",
          url: `${url}/v1/pools/shop`,
          body: { primary: { pool: "dc-1" }, secondary: { pool: "dc-2" } },
        },
      },
    ],
  }) as unknown as AgentTarget;

/** The load balancer API the http step would call: readiness may connect, never send a request. */
let lb: Server | undefined;
let lbPort = 0;
const lbRequests: string[] = [];
async function listenLb(): Promise<void> {
  lb = createServer((req, res) => {
    lbRequests.push(`${req.method} ${req.url}`);
    res.end();
  });
  await new Promise<void>((resolve) => lb?.listen(lbPort, "127.0.0.1", resolve));
  const address = lb.address();
  lbPort = typeof address === "object" && address ? address.port : 0;
}
async function closeLb(): Promise<void> {
  await new Promise((resolve) => lb?.close(resolve));
  lb?.closeAllConnections();
}

async function seedPlanObjects(kubeconfig: string): Promise<void> {
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfig);
  const core = kc.makeApiClient(CoreV1Api);
  const namespace = "shop";
  await core.createNamespace({ body: { metadata: { name: namespace } } });
  for (const [name, data] of [
    ["orders-db", { DATABASE_HOST: "pg-dc1" }],
    ["gate", { open: "yes" }],
  ] as const) {
    await core.createNamespacedConfigMap({ namespace, body: { metadata: { name }, data } });
  }
  for (const name of ["web-secondary", "orders"]) {
    const labels = { app: name };
    await kc.makeApiClient(AppsV1Api).createNamespacedDeployment({
      namespace,
      body: {
        metadata: { name },
        spec: {
          replicas: 1,
          selector: { matchLabels: labels },
          template: { metadata: { labels }, spec: { containers: [{ name: "web", image: "sandbox.invalid/web:1" }] } },
        },
      },
    });
  }
}

let stack: Stack;
let browser: BrowserContext | undefined;
let chrome: Chromium | undefined;
let slack: Server | undefined;
const slackBodies: string[] = [];

beforeAll(async () => {
  requireChromium();
  slack = createServer((req, res) => {
    void readText(req).then((body) => {
      slackBodies.push(body);
      res.end("ok");
    });
  });
  await new Promise<void>((resolve) => slack?.listen(0, "127.0.0.1", resolve));
  const address = slack.address();
  const slackUrl = typeof address === "object" && address ? `http://127.0.0.1:${address.port}/hook` : "";
  await listenLb();
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
      "plan-kube": { kind: "plan", holdSeconds: 3600, plan: PLAN_KUBE },
      "plan-scale": { kind: "plan", holdSeconds: 3600, plan: PLAN_SCALE },
      "plan-check": { kind: "plan", holdSeconds: 3600, plan: PLAN_CHECK },
      "plan-restart": { kind: "plan", holdSeconds: 3600, plan: PLAN_RESTART },
      "plan-http": { kind: "plan", holdSeconds: 3600, plan: planHttp(`http://127.0.0.1:${lbPort}`) },
    },
  });
  // The plans' objects, in the secondary's cluster, as a person would kubectl apply them.
  await seedPlanObjects(stack.agents["agent-b"]?.sandboxKubeconfig ?? "");
  chrome = await launchChromium();
  browser = chrome.context;
}, 120_000);

afterAll(async () => {
  await chrome?.close();
  await stack?.stop();
  await new Promise((resolve) => slack?.close(resolve));
  await closeLb();
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

/** The readiness line of each target's card, from one page load in Chromium. */
async function pageSentences(targets: readonly string[]): Promise<Record<string, string>> {
  const page = await (browser as BrowserContext).newPage();
  try {
    const res = await page.goto(`${stack.worker.url}/?token=${TOKENS.operator}`, { timeout: 15_000 });
    expect(res?.status()).toBe(200);
    const out: Record<string, string> = {};
    for (const target of targets) {
      out[target] =
        (await page.locator(`[data-target="${target}"] [data-field="readiness-sentence"]`).textContent({
          timeout: 10_000,
        })) ?? "";
    }
    return out;
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
  /** The check the view names (a plan's is `<step>:<what>`). */
  check: string;
  /** The agent of the side a failover would go to (its sandbox is what breaks). */
  agent: TwoAgentName;
  breakIt: () => Promise<void>;
  mendIt: () => Promise<void>;
}

/** A case the sandbox breaks and mends itself (`turnout sandbox break|mend <target> <fault>`). */
const faulted = (kind: string, target: string, agent: TwoAgentName, fault: string, check = fault): Case => ({
  kind,
  target,
  check,
  agent,
  breakIt: () => sandbox(agent, "break", target, fault),
  mendIt: () => sandbox(agent, "mend", target, fault),
});

const CASES: Case[] = [
  faulted("route-swap", "ready-route", "agent-a", "saved-spec"),
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
  // Its DNS target's server is stopped too; permissions comes first among its checks.
  faulted("etcd-sync-teardown", "ready-etcd", "agent-b", "permissions"),
  faulted("node-fence", "ready-nodes", "agent-a", "destination-nodes"),
  // agent-b's Role lacks patch for all of these at once: the kube step's object is named first.
  faulted("plan kube step", "plan-kube", "agent-b", "object", "switch-config:object"),
  faulted("plan scale step", "plan-scale", "agent-b", "permissions", "scale-up:permissions"),
  faulted("plan check step", "plan-check", "agent-b", "check", "gate:check"),
  faulted("plan restart step", "plan-restart", "agent-b", "object", "restart-app:object"),
  {
    kind: "plan http step",
    target: "plan-http",
    check: "lb-pool:endpoint",
    agent: "agent-b",
    // The load balancer's API goes down; it comes back on the same port.
    breakIt: closeLb,
    mendIt: listenLb,
  },
];
const TARGETS = CASES.map((c) => c.target);

/** Notices before the break, per target. */
const lostBefore = new Map<string, number>();
const regainedBefore = new Map<string, number>();

describe("readiness goes red and green, for each executor and each breakable plan step kind, all at once", () => {
  it("breaking one thing per target is seen everywhere within an interval and noticed once each", async () => {
    await Promise.all(TARGETS.map((t) => untilState(t, "ready", 60_000)));
    for (const [target, sentence] of Object.entries(await pageSentences(TARGETS))) {
      expect(sentence, target).toBe("Ready to fail over to secondary");
    }
    for (const t of TARGETS) {
      lostBefore.set(t, notices(t, "not ready").length);
      regainedBefore.set(t, notices(t, "ready again").length);
    }

    for (const c of CASES) await c.breakIt();
    await Promise.all(
      CASES.map(async (c) => {
        const red = await waitFor(
          `${c.target} not ready`,
          async () => {
            const r = await readiness(c.target);
            return r?.state === "not-ready" && r.failing?.includes(c.check) ? r : undefined;
          },
          ONE_INTERVAL_MS,
        );
        expect(
          red.checks.find((x) => x.name === c.check),
          c.target,
        ).toMatchObject({ ok: false, destination: true });
        expect(await readyMetric(c.agent, c.target), c.target).toBe(0);
      }),
    );
    const sentences = await pageSentences(TARGETS);
    for (const c of CASES) {
      const sentence = sentences[c.target] ?? "";
      expect(sentence, c.target).toMatch(/^Not ready to fail over to secondary: /);
      expect(sentence, c.target).toContain(`(${c.check})`);
      expect(sentence, c.target).toContain("docs/operations.md#readiness");
    }
    // Two evaluations in a row must agree before Slack hears of it: within a second interval.
    await waitFor(
      "one notice for each target",
      async () => CASES.every((c) => notices(c.target, "not ready").length > (lostBefore.get(c.target) ?? 0)),
      2 * ONE_INTERVAL_MS,
    );
    for (const c of CASES)
      expect(notices(c.target, "not ready"), c.target).toHaveLength((lostBefore.get(c.target) ?? 0) + 1);
  }, 150_000);

  it("mending all of it brings every target back within an interval, with one notice each and no more", async () => {
    for (const c of CASES) await c.mendIt();
    await Promise.all(
      CASES.map(async (c) => {
        await untilState(c.target, "ready", ONE_INTERVAL_MS);
        expect(await readyMetric(c.agent, c.target), c.target).toBe(1);
      }),
    );
    for (const [target, sentence] of Object.entries(await pageSentences(TARGETS))) {
      expect(sentence, target).toBe("Ready to fail over to secondary");
    }
    await waitFor(
      "one regained notice for each target",
      async () => CASES.every((c) => notices(c.target, "ready again").length > (regainedBefore.get(c.target) ?? 0)),
      2 * ONE_INTERVAL_MS,
    );
    // One more evaluation of every target, heard by the worker, says nothing more.
    const seen = new Map<string, string | null | undefined>();
    for (const t of TARGETS) seen.set(t, (await readiness(t))?.at);
    await Promise.all(
      TARGETS.map((t) =>
        waitFor(
          `${t} evaluated again`,
          async () => ((await readiness(t))?.at ?? "") > (seen.get(t) ?? ""),
          ONE_INTERVAL_MS,
        ),
      ),
    );
    for (const c of CASES) {
      expect(notices(c.target, "not ready"), c.target).toHaveLength((lostBefore.get(c.target) ?? 0) + 1);
      expect(notices(c.target, "ready again"), c.target).toHaveLength((regainedBefore.get(c.target) ?? 0) + 1);
    }
    // Every evaluation connected to the http step's endpoint; none sent it a request.
    expect(lbRequests).toEqual([]);
  }, 120_000);
});
