/**
 * The status page in a real browser (design §5b): Debian's Chromium, driven by playwright-core,
 * against the real worker in workerd (`wrangler dev`) and a tiny fake agent over real HTTP with
 * real Turnout-Signatures. Without the token the page is a 401 with no target data; with
 * `/?token=` once the browser holds the session cookie, and the card follows an incident from
 * `steady` through `executing` to `steady` on `secondary` by its own polling (no reloads).
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BrowserContext, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ActionReport, type ActionRequest, ActionRequestSchema } from "../../shared/protocol.ts";
import { sign, verify } from "../../shared/signature.ts";
import { alertmanagerBody } from "../support/alertmanager-body.ts";
import { readText } from "../support/request-text.ts";
import { startWorker, type WorkerProcess } from "../support/worker-process.ts";

const CHROMIUM = "/usr/bin/chromium";
const TOKEN = "browser-operator-token";
const AM_TOKEN = "browser-am-token";
const AGENT_SECRET = "browser-agent-secret";
const TARGET = "browser-gw";
const DRILL_TARGET = "browser-drill";
const DRILL_CRON = "0 3 * * 1";
const root = join(import.meta.dirname, "../..");

/** A fake agent: accepts `POST /v1/actions` (202) and reports success once the test releases it. */
interface FakeAgent {
  url: string;
  received: ActionRequest[];
  /** Resolves with the next accepted request. */
  nextRequest(): Promise<ActionRequest>;
  stop(): Promise<void>;
}

async function startFakeAgent(): Promise<FakeAgent> {
  const received: ActionRequest[] = [];
  const waiters: ((r: ActionRequest) => void)[] = [];
  const server: Server = createServer((req, res) => {
    void (async () => {
      const raw = await readText(req);
      if (req.method !== "POST" || req.url !== "/v1/actions") {
        res.writeHead(404).end();
        return;
      }
      const header = req.headers["turnout-signature"];
      const check = await verify([AGENT_SECRET], typeof header === "string" ? header : null, raw, Date.now() / 1000);
      if (!check.ok) {
        res.writeHead(401).end();
        return;
      }
      const request = ActionRequestSchema.parse(JSON.parse(raw));
      const duplicate = received.some((r) => r.id === request.id);
      if (!duplicate) {
        received.push(request);
        waiters.shift()?.(request);
      }
      res.writeHead(duplicate ? 200 : 202, { "content-type": "application/json" });
      res.end(JSON.stringify({ id: request.id, status: "accepted" }));
    })().catch(() => {
      res.writeHead(400).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    received,
    nextRequest: () => new Promise((resolve) => waiters.push(resolve)),
    stop: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** Posts a signed succeeded report for `request` to the worker, as the agent does. */
async function reportSucceeded(workerUrl: string, request: ActionRequest): Promise<void> {
  const now = Date.now();
  const report: ActionReport = {
    actionId: request.id,
    target: request.target,
    status: "succeeded",
    activeSide: request.to,
    dryRun: request.dryRun,
    steps: [
      {
        name: "preflight",
        status: "succeeded",
        startedAt: new Date(now - 1200).toISOString(),
        finishedAt: new Date(now - 900).toISOString(),
      },
      {
        name: "switch-route",
        status: "succeeded",
        startedAt: new Date(now - 900).toISOString(),
        finishedAt: new Date(now).toISOString(),
      },
    ],
    at: new Date(now).toISOString(),
  };
  const raw = JSON.stringify(report);
  const res = await fetch(`${workerUrl}/v1/agent/reports`, {
    method: "POST",
    headers: { "content-type": "application/json", "Turnout-Signature": await sign(AGENT_SECRET, raw, now / 1000) },
    body: raw,
  });
  expect(res.status).toBe(200);
}

async function fireAlert(workerUrl: string): Promise<void> {
  const res = await fetch(`${workerUrl}/v1/alertmanager`, {
    method: "POST",
    headers: { authorization: `Bearer ${AM_TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify(
      alertmanagerBody({
        labels: { alertname: "BrowserGatewayDown", side: "primary" },
        startsAt: Date.now() - 1000,
        fingerprint: "b0b0b0b0b0b0b0b0",
      }),
    ),
  });
  expect(res.status).toBe(200);
}

let agent: FakeAgent | undefined;
let worker: WorkerProcess | undefined;
let browser: BrowserContext | undefined;
let profile: string | undefined;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: run \`npm run setup\` (it installs Debian's chromium)`);
  }
  agent = await startFakeAgent();
  const config = {
    agent: { url: agent.url, transport: "direct" },
    targets: {
      [TARGET]: {
        sides: {
          primary: { matchers: ['alertname="BrowserGatewayDown"', 'side="primary"'] },
          secondary: { matchers: ['alertname="BrowserGatewayDown"', 'side="secondary"'] },
        },
        // No hold: the incident starts executing as soon as the alert lands.
        policy: { holdSeconds: 0 },
      },
      [DRILL_TARGET]: {
        sides: {
          primary: { matchers: ['alertname="BrowserDrillDown"', 'side="primary"'] },
          secondary: { matchers: ['alertname="BrowserDrillDown"', 'side="secondary"'] },
        },
        // wrangler.toml's cron trigger: the scheduled drill below runs through it.
        drill: { cron: DRILL_CRON, mode: "dry-run" },
      },
    },
  };
  worker = await startWorker({
    vars: {
      TURNOUT_CONFIG: JSON.stringify(config),
      OPERATOR_TOKEN: TOKEN,
      ALERTMANAGER_TOKEN: AM_TOKEN,
      TURNOUT_AGENT_SECRET: AGENT_SECRET,
    },
  });
  profile = mkdtempSync(join(tmpdir(), "turnout-chromium-"));
  // The fresh profile directory is passed as the persistent context's user data dir.
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    timeout: 30_000,
    viewport: { width: 390, height: 844 },
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}, 90_000);

afterAll(async () => {
  await browser?.close().catch(() => undefined);
  await worker?.stop();
  await agent?.stop();
  if (profile) rmSync(profile, { recursive: true, force: true });
}, 30_000);

function card(page: Page) {
  return page.locator(`[data-target="${TARGET}"]`);
}

describe("status page in Chromium", () => {
  it("without the token answers 401 and shows no target data", async () => {
    const context = browser as BrowserContext;
    await context.clearCookies();
    const page = await context.newPage();
    try {
      const res = await page.goto(`${worker?.url}/`, { timeout: 15_000 });
      expect(res?.status()).toBe(401);
      const html = await page.content();
      expect(html).toContain("Sign in required");
      expect(html).not.toContain(TARGET);
      expect(html).not.toContain(DRILL_TARGET);
      const wrong = await page.goto(`${worker?.url}/?token=not-the-token`, { timeout: 15_000 });
      expect(wrong?.status()).toBe(401);
      expect(await context.cookies()).toEqual([]);
      expect(await page.content()).not.toContain(TARGET);
    } finally {
      await page.close();
    }
  }, 40_000);

  it("logs in with ?token= once and follows an incident from steady to executing to steady on secondary", async () => {
    const w = worker as WorkerProcess;
    const a = agent as FakeAgent;
    const context = browser as BrowserContext;
    await context.clearCookies();
    const page = await context.newPage();
    const pageErrors: string[] = [];
    page.on("pageerror", (e) => pageErrors.push(String(e)));
    try {
      const res = await page.goto(`${w.url}/?token=${TOKEN}`, { timeout: 15_000 });
      expect(res?.status()).toBe(200);
      // The 303 took the token out of the address bar.
      expect(new URL(page.url()).search).toBe("");
      const cookies = await context.cookies();
      expect(cookies).toEqual([
        expect.objectContaining({ name: "__Host-turnout_session", httpOnly: true, secure: true, sameSite: "Strict" }),
      ]);
      expect(cookies[0]?.value).not.toContain(TOKEN);
      expect(await page.getByRole("heading", { level: 1 }).textContent()).toBe("turnout status");
      // Landmarks and a card heading per target; readable at a phone's width without sideways scrolling.
      for (const role of ["banner", "main", "contentinfo"] as const) expect(await page.getByRole(role).count()).toBe(1);
      expect(await page.getByRole("heading", { level: 2, name: TARGET }).count()).toBe(1);
      expect(await page.getByRole("status").count()).toBe(1);
      expect(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth)).toBe(true);
      const phase = card(page).locator('[data-field="phase"]');
      const active = card(page).locator('[data-field="activeSide"]');
      expect(await phase.textContent()).toBe("steady");
      expect(await active.textContent()).toBe("primary");

      const requested = a.nextRequest();
      await fireAlert(w.url);
      const request = await Promise.race([
        requested,
        new Promise<never>((_, reject) =>
          setTimeout(() => reject(new Error("no action reached the fake agent in 15 s")), 15_000),
        ),
      ]);
      expect(request).toMatchObject({
        target: TARGET,
        kind: "failover",
        from: "primary",
        to: "secondary",
        dryRun: false,
      });

      // The page's own polling (no reload) shows the action executing…
      await page.waitForFunction(
        (t) => document.querySelector(`[data-target="${t}"] [data-field="phase"]`)?.textContent === "executing",
        TARGET,
        { timeout: 15_000 },
      );
      await reportSucceeded(w.url, request);
      // …and then steady on secondary.
      await page.waitForFunction(
        (t) => {
          const c = document.querySelector(`[data-target="${t}"]`);
          return (
            c?.querySelector('[data-field="phase"]')?.textContent === "steady" &&
            c?.querySelector('[data-field="activeSide"]')?.textContent === "secondary"
          );
        },
        TARGET,
        { timeout: 15_000 },
      );
      expect(await card(page).locator('[data-field="action"]').textContent()).toContain("succeeded");
      // The changed card was re-rendered in place: the step timeline with durations and the events.
      await page.waitForFunction(
        (t) =>
          /switch-route: succeeded, 0\.9 s/.test(
            document.querySelector(`[data-target="${t}"] .steps`)?.textContent ?? "",
          ),
        TARGET,
        { timeout: 10_000 },
      );
      const text = (await card(page).textContent()) ?? "";
      expect(text).toContain("secondary (active)");
      expect(text).toContain("action.succeeded");
      expect(await page.locator("#refresh-status").textContent()).toMatch(/^Updated /);
      expect(pageErrors).toEqual([]);
      mkdirSync(join(root, "test-results"), { recursive: true });
      await page.screenshot({ path: join(root, "test-results/status-page.png"), fullPage: true, timeout: 10_000 });
    } finally {
      await page.close();
    }
  }, 60_000);

  it("a cron trigger in workerd runs the scheduled dry-run drill, and the page shows its result", async () => {
    const w = worker as WorkerProcess;
    const a = agent as FakeAgent;
    const context = browser as BrowserContext;
    const page = await context.newPage();
    try {
      await page.goto(`${w.url}/?token=${TOKEN}`, { timeout: 15_000 });
      const requested = a.nextRequest();
      // wrangler 4 dev serves Miniflare's `/cdn-cgi/handler/scheduled?cron=` trigger route without
      // --test-scheduled (seen in cloudflare/workers-sdk#9882; the older `/__scheduled` needs the flag).
      const fired = await fetch(`${w.url}/cdn-cgi/handler/scheduled?cron=${encodeURIComponent(DRILL_CRON)}`);
      expect(fired.status).toBe(200);
      const request = await Promise.race([
        requested,
        new Promise<never>((_, reject) =>
          setTimeout(() => reject(new Error("no drill reached the fake agent in 15 s")), 15_000),
        ),
      ]);
      expect(request).toMatchObject({ target: DRILL_TARGET, kind: "drill", dryRun: true });
      await reportSucceeded(w.url, request);
      await page.waitForFunction(
        (t) => /dry-run drill completed/.test(document.querySelector(`[data-target="${t}"]`)?.textContent ?? ""),
        DRILL_TARGET,
        { timeout: 15_000 },
      );
      const text = (await page.locator(`[data-target="${DRILL_TARGET}"]`).textContent()) ?? "";
      expect(text).toMatch(/recovery drill \d+\.\d s/);
      expect(text).toContain("drill.completed");
      expect(await page.locator(`[data-target="${DRILL_TARGET}"] [data-field="activeSide"]`).textContent()).toBe(
        "primary",
      );
    } finally {
      await page.close();
    }
  }, 60_000);
});
