// biome-ignore-all lint/performance/useDomNodeTextContent: these tests assert the text as rendered (innerText), not the DOM's text nodes
/**
 * The status page in a real browser (design §5b): Debian's Chromium, driven by playwright-core,
 * against the real worker in workerd (`wrangler dev`) and a tiny fake agent over real HTTP with
 * real Turnout-Signatures. Without the token the page is a 401 with no target data; with
 * `/?token=` once the browser holds the session cookie, and the card follows an incident from
 * `steady` through `executing` to `steady` on `secondary` by its own polling (no reloads).
 *
 * Then one target per state the operator must read at 3 a.m. (steady, pending with a countdown,
 * blocked by flapping, awaiting approval approved from the page, executing with live step bars,
 * failed with revert offered, three past incidents, stale data): each asserts the sentence as
 * the browser renders it and saves screenshots at desktop and phone widths under test-results/.
 */
import { mkdirSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { join } from "node:path";
import type { BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ActionReport, type ActionRequest, ActionRequestSchema } from "../../shared/protocol.ts";
import { sign, verify } from "../../shared/signature.ts";
import { alertmanagerBody, postAlertmanager } from "../support/alertmanager-body.ts";
import { type Chromium, launchChromium, requireChromium } from "../support/chromium.ts";
import { readText } from "../support/request-text.ts";
import { credentialVars, workerCredentials } from "../support/worker-credentials.ts";
import { startWorker, type WorkerProcess } from "../support/worker-process.ts";

const CREDENTIALS = workerCredentials("browser");
const { operator: TOKEN, viewer: VIEWER_TOKEN, alertmanager: AM_TOKEN, agentSecret: AGENT_SECRET } = CREDENTIALS;
const TARGET = "browser-gw";
const DRILL_TARGET = "browser-drill";
const DRILL_CRON = "0 3 * * 1";
/** One target per state, each with its own alert name. */
const ST = {
  steady: "st-steady",
  pending: "st-pending",
  flap: "st-flap",
  approve: "st-approve",
  exec: "st-exec",
  history: "st-history",
} as const;
const DESKTOP = { width: 1280, height: 900 };
const PHONE = { width: 390, height: 844 };
const root = join(import.meta.dirname, "../..");

/** A fake agent: accepts `POST /v1/actions` (202) and reports success once the test releases it. */
interface FakeAgent {
  url: string;
  received: ActionRequest[];
  /** Resolves with the next accepted request (for `target`, when given). */
  nextRequest(target?: string): Promise<ActionRequest>;
  stop(): Promise<void>;
}

async function startFakeAgent(): Promise<FakeAgent> {
  const received: ActionRequest[] = [];
  const waiters: { target: string | undefined; resolve: (r: ActionRequest) => void }[] = [];
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
        // A failed test's waiter for another target never steals this request.
        const i = waiters.findIndex((w) => w.target === undefined || w.target === request.target);
        if (i >= 0) waiters.splice(i, 1)[0]?.resolve(request);
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
    nextRequest: (target) => new Promise((resolve) => waiters.push({ target, resolve })),
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

/** Posts a signed report for `request` (running, succeeded or failed) with these steps. */
async function report(
  workerUrl: string,
  request: ActionRequest,
  status: ActionReport["status"],
  steps: ActionReport["steps"],
  error?: ActionReport["error"],
): Promise<void> {
  const now = Date.now();
  const body: ActionReport = {
    actionId: request.id,
    target: request.target,
    status,
    ...(status === "succeeded" ? { activeSide: request.to } : {}),
    dryRun: request.dryRun,
    steps,
    ...(error ? { error } : {}),
    at: new Date(now).toISOString(),
  };
  const raw = JSON.stringify(body);
  const res = await fetch(`${workerUrl}/v1/agent/reports`, {
    method: "POST",
    headers: { "content-type": "application/json", "Turnout-Signature": await sign(AGENT_SECRET, raw, now / 1000) },
    body: raw,
  });
  expect(res.status).toBe(200);
}

const ago = (ms: number) => new Date(Date.now() - ms).toISOString();
/** The fake agent's work: steps it reports as done took this long in real time. */
const agentWork = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Posts one Alertmanager alert for a state target's side (firing, or resolved at `at`). */
async function alertFor(
  workerUrl: string,
  target: string,
  side: "primary" | "secondary",
  status: "firing" | "resolved",
  at: number,
  fingerprint: string,
): Promise<void> {
  const res = await postAlertmanager(
    workerUrl,
    AM_TOKEN,
    alertmanagerBody({
      labels: { alertname: target, side },
      startsAt: status === "firing" ? at : at - 1000,
      ...(status === "resolved" ? { status, endsAt: at } : {}),
      fingerprint,
    }),
  );
  expect(res.status).toBe(200);
}

/** Resolves with the next action the fake agent accepts, or fails after 15 s. */
function nextAction(a: FakeAgent, target: string, what: string): Promise<ActionRequest> {
  const requested = a.nextRequest(target);
  return Promise.race([
    requested,
    new Promise<never>((_, reject) =>
      setTimeout(() => reject(new Error(`no ${what} reached the fake agent in 15 s`)), 15_000),
    ),
  ]);
}

async function fireAlert(workerUrl: string): Promise<void> {
  const res = await postAlertmanager(
    workerUrl,
    AM_TOKEN,
    alertmanagerBody({
      labels: { alertname: "BrowserGatewayDown", side: "primary" },
      startsAt: Date.now() - 1000,
      fingerprint: "b0b0b0b0b0b0b0b0",
    }),
  );
  expect(res.status).toBe(200);
}

function stateTarget(alertname: string, policy: Record<string, unknown>) {
  return {
    sides: {
      primary: { matchers: [`alertname="${alertname}"`, 'side="primary"'] },
      secondary: { matchers: [`alertname="${alertname}"`, 'side="secondary"'] },
    },
    policy,
  };
}

let agent: FakeAgent | undefined;
let worker: WorkerProcess | undefined;
let browser: BrowserContext | undefined;
let chrome: Chromium | undefined;

beforeAll(async () => {
  requireChromium();
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
      [ST.steady]: stateTarget(ST.steady, {}),
      // Holds long enough that no action starts while the suite runs.
      [ST.pending]: stateTarget(ST.pending, { holdSeconds: 600 }),
      [ST.flap]: stateTarget(ST.flap, { holdSeconds: 600, flap: { windowSeconds: 600, maxTransitions: 2 } }),
      [ST.approve]: stateTarget(ST.approve, { holdSeconds: 0, approval: "required" }),
      [ST.exec]: stateTarget(ST.exec, { holdSeconds: 0 }),
      // Three incidents back to back: no cooldown, budget or flapping in the way.
      [ST.history]: stateTarget(ST.history, {
        holdSeconds: 0,
        cooldownSeconds: 0,
        maxAutoActionsPerDay: 10,
        flap: { windowSeconds: 600, maxTransitions: 50 },
      }),
    },
  };
  worker = await startWorker({
    vars: {
      TURNOUT_CONFIG: JSON.stringify(config),
      ...credentialVars(CREDENTIALS, "night"),
    },
  });
  chrome = await launchChromium({ width: 390, height: 844 });
  browser = chrome.context;
}, 90_000);

afterAll(async () => {
  await chrome?.close();
  await worker?.stop();
  await agent?.stop();
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
      expect(text).toMatch(/final report: browser-gw:\d+ succeeded/);
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
      expect(text).toMatch(/dry-run completed, recovery \d+\.\d s/);
      expect(await page.locator(`[data-target="${DRILL_TARGET}"] [data-field="activeSide"]`).textContent()).toBe(
        "primary",
      );
    } finally {
      await page.close();
    }
  }, 60_000);
});

/** The sentence of a target's card as the browser renders it (visible text). */
async function sentence(page: Page, target: string): Promise<string> {
  const el = page.locator(`[data-target="${target}"] [data-field="sentence"]`);
  expect(await el.isVisible()).toBe(true);
  return (await el.innerText()).replace(/^\S+\s+/, ""); // the leading symbol only repeats the words
}

/** Waits until the target's visible sentence matches `re` (the page's own polling, no reload). */
async function waitSentence(page: Page, target: string, re: RegExp, timeout = 15_000): Promise<string> {
  await page.waitForFunction(
    ([t, source]) => {
      const el = document.querySelector(`[data-target="${t}"] [data-field="sentence"]`);
      // The leading symbol only repeats the words.
      return el instanceof HTMLElement && new RegExp(source as string).test(el.innerText.replace(/^\S+\s+/, ""));
    },
    [target, re.source] as const,
    { timeout },
  );
  return sentence(page, target);
}

/** Saves the target's card at desktop and phone widths; the phone never scrolls sideways. */
async function shoot(page: Page, target: string, name: string): Promise<void> {
  mkdirSync(join(root, "test-results"), { recursive: true });
  for (const [label, size] of [
    ["desktop", DESKTOP],
    ["phone", PHONE],
  ] as const) {
    await page.setViewportSize(size);
    await page
      .locator(`[data-target="${target}"]`)
      .screenshot({ path: join(root, `test-results/status-${name}-${label}.png`), timeout: 10_000 });
    expect(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth)).toBe(true);
  }
  await page.setViewportSize(DESKTOP);
}

async function operatorPage(): Promise<Page> {
  const w = worker as WorkerProcess;
  const context = browser as BrowserContext;
  await context.clearCookies();
  const page = await context.newPage();
  await page.setViewportSize(DESKTOP);
  const res = await page.goto(`${w.url}/?token=${TOKEN}`, { timeout: 15_000 });
  expect(res?.status()).toBe(200);
  return page;
}

describe("status page states in Chromium", () => {
  it("steady: the sentence says so; a viewer's session shows no buttons", async () => {
    const w = worker as WorkerProcess;
    const context = browser as BrowserContext;
    const page = await operatorPage();
    try {
      expect(await sentence(page, ST.steady)).toBe("steady on primary; both sides up");
      expect(await page.getByRole("button", { name: `Pause: ${ST.steady}` }).isVisible()).toBe(true);
      await shoot(page, ST.steady, "steady");
      await context.clearCookies();
      await page.goto(`${w.url}/?token=${VIEWER_TOKEN}`, { timeout: 15_000 });
      expect(await sentence(page, ST.steady)).toBe("steady on primary; both sides up");
      expect(await page.getByRole("button").count()).toBe(0);
    } finally {
      await page.close();
    }
  }, 60_000);

  it("pending: how long the side is down and a countdown to the failover that ticks", async () => {
    const w = worker as WorkerProcess;
    const page = await operatorPage();
    try {
      await alertFor(w.url, ST.pending, "primary", "firing", Date.now() - 1000, "0e0e0e0e0e0e0e01");
      const first = await waitSentence(page, ST.pending, /^pending:/);
      expect(first).toMatch(
        /^pending: primary down for \d+ s \(alertmanager\); failover to secondary in (\d+) min (\d+) s unless it recovers$/,
      );
      const left = (text: string) => {
        const m = /in (\d+) min (\d+) s/.exec(text);
        return Number(m?.[1]) * 60 + Number(m?.[2]);
      };
      // The countdown ticks in the browser between polls.
      await page.waitForTimeout(2_100);
      const later = await sentence(page, ST.pending);
      expect(left(first) - left(later)).toBeGreaterThanOrEqual(2);
      expect(await page.getByRole("button", { name: `Cancel: ${ST.pending}` }).isVisible()).toBe(true);
      await shoot(page, ST.pending, "pending");
    } finally {
      await page.close();
    }
  }, 60_000);

  it("blocked (flapping): since when, and when automatic action resumes", async () => {
    const w = worker as WorkerProcess;
    const page = await operatorPage();
    try {
      const t = Date.now();
      // down, up, down: three changes of the active side, more than maxTransitions 2.
      await alertFor(w.url, ST.flap, "primary", "firing", t - 5000, "0f0f0f0f0f0f0f01");
      await alertFor(w.url, ST.flap, "primary", "resolved", t - 4000, "0f0f0f0f0f0f0f01");
      await alertFor(w.url, ST.flap, "primary", "firing", t - 3000, "0f0f0f0f0f0f0f01");
      const text = await waitSentence(page, ST.flap, /^blocked: flapping/);
      const hhmm = new Date().toISOString().slice(11, 16);
      expect(text).toMatch(
        /^blocked: flapping since \d\d:\d\d UTC; automatic action resumes after 10 stable minutes; primary down for \d+ s \(alertmanager\)$/,
      );
      expect(text.slice(24, 29) <= hhmm).toBe(true);
      // The timeline tells the same story as sentences.
      expect(await page.locator(`[data-target="${ST.flap}"] .timeline`).innerText()).toContain("flapping: 3 changes");
      await shoot(page, ST.flap, "blocked-flapping");
    } finally {
      await page.close();
    }
  }, 60_000);

  it("awaiting approval: the deadline in words, and an operator approves from the page", async () => {
    const w = worker as WorkerProcess;
    const a = agent as FakeAgent;
    const page = await operatorPage();
    const pageErrors: string[] = [];
    page.on("pageerror", (e) => pageErrors.push(String(e)));
    try {
      await alertFor(w.url, ST.approve, "primary", "firing", Date.now() - 1000, "0a0a0a0a0a0a0a01");
      const text = await waitSentence(page, ST.approve, /^awaiting approval:/);
      expect(text).toMatch(
        /^awaiting approval: failover primary → secondary; an operator approves or cancels by \d\d:\d\d UTC \(in 1[45] min( \d+ s)?\), else it expires and nothing switches$/,
      );
      await shoot(page, ST.approve, "awaiting-approval");
      const dispatched = nextAction(a, ST.approve, "approved failover");
      await page.getByRole("button", { name: `Approve failover: ${ST.approve}` }).click();
      // The confirmation step: a modal dialog that says what will happen, with a labelled reason.
      const dialog = page.getByRole("dialog");
      expect(await dialog.isVisible()).toBe(true);
      expect(await dialog.innerText()).toContain(
        `Approve the failover primary → secondary of ${ST.approve}? It executes at once.`,
      );
      await page.getByLabel("Reason (optional, audited)").fill("standby checked");
      mkdirSync(join(root, "test-results"), { recursive: true });
      await page.screenshot({ path: join(root, "test-results/status-approve-dialog-desktop.png"), timeout: 10_000 });
      await page.getByRole("button", { name: "Yes, do it" }).click();
      const request = await dispatched;
      expect(request).toMatchObject({ target: ST.approve, kind: "failover", to: "secondary" });
      const result = page.locator(`[data-target="${ST.approve}"] [data-field="result"]`);
      await page.waitForFunction(
        (t) =>
          /Done: approve applied/.test(
            document.querySelector(`[data-target="${t}"] [data-field="result"]`)?.textContent ?? "",
          ),
        ST.approve,
        { timeout: 10_000 },
      );
      expect(await result.innerText()).toMatch(
        /^✓ Done: approve applied; now executing: failover primary → secondary \(st-approve:1\)/,
      );
      await waitSentence(page, ST.approve, /^executing: failover primary → secondary \(st-approve:1\)/);
      await shoot(page, ST.approve, "approved-from-page");
      // The audit log names the session's identity and the reason given in the dialog.
      const log = (
        (await await fetch(`${w.url}/v1/targets/${ST.approve}/events?limit=1000`, {
          headers: { authorization: `Bearer ${TOKEN}` },
        }).then((r) => r.json())) as { events: { type: string; detail: Record<string, unknown> }[] }
      ).events;
      expect(log.find((e) => e.type === "command.accepted")?.detail).toMatchObject({
        command: "approve",
        actor: "operator",
        reason: "standby checked",
      });
      await report(w.url, request, "succeeded", []);
      expect(pageErrors).toEqual([]);
    } finally {
      await page.close();
    }
  }, 90_000);

  it("executing with live step bars, then failed with revert offered", async () => {
    const w = worker as WorkerProcess;
    const a = agent as FakeAgent;
    const page = await operatorPage();
    try {
      const dispatched = nextAction(a, ST.exec, "failover");
      await alertFor(w.url, ST.exec, "primary", "firing", Date.now() - 1000, "0b0b0b0b0b0b0b01");
      const request = await dispatched;
      await agentWork(1300);
      await report(w.url, request, "running", [
        { name: "preflight", status: "succeeded", startedAt: ago(1200), finishedAt: ago(900) },
        { name: "switch-route", status: "running", startedAt: ago(900) },
        { name: "verify", status: "pending" },
      ]);
      const text = await waitSentence(page, ST.exec, /step switch-route running/);
      expect(text).toMatch(
        /^executing: failover primary → secondary \(st-exec:1\), step switch-route running \(2 of 3\) for \d+ s$/,
      );
      const running = page.locator(`[data-target="${ST.exec}"] .tl-step.tl-running`);
      const before = await running.innerText();
      expect(before).toMatch(/step switch-route running, \d+\.\d s so far/);
      const width = async () => Number(await running.locator("rect.tl-span").getAttribute("width"));
      const w0 = await width();
      // Live: the running step's bar grows with each poll, without a reload.
      await page.waitForFunction(
        ([t, prev]) => {
          const el = document.querySelector(`[data-target="${t}"] .tl-step.tl-running`);
          return el instanceof HTMLElement && el.innerText !== prev;
        },
        [ST.exec, before] as const,
        { timeout: 10_000 },
      );
      expect(await width()).toBeGreaterThan(w0);
      expect(await page.locator(`[data-target="${ST.exec}"] .tl-step`).count()).toBe(2);
      await shoot(page, ST.exec, "executing");

      await report(
        w.url,
        request,
        "failed",
        [
          { name: "preflight", status: "succeeded", startedAt: ago(2400), finishedAt: ago(2100) },
          {
            name: "switch-route",
            status: "failed",
            startedAt: ago(2100),
            finishedAt: ago(0),
            detail: "route table locked",
          },
          { name: "verify", status: "skipped" },
        ],
        { code: "step-failed", message: "switch-route: route table locked" },
      );
      const failed = await waitSentence(page, ST.exec, /^failed:/);
      expect(failed).toBe(
        "failed: failover primary → secondary (st-exec:1) failed at step switch-route (step-failed: switch-route: route table locked); automatic action is off until an operator acts: retry it, revert to primary, or cancel",
      );
      for (const name of ["Retry", "Revert to primary", "Cancel"]) {
        expect(await page.getByRole("button", { name: `${name}: ${ST.exec}` }).isVisible()).toBe(true);
      }
      await shoot(page, ST.exec, "failed");
    } finally {
      await page.close();
    }
  }, 90_000);

  it("a history of three incidents: start, end, action, recovery time and outcome", async () => {
    const w = worker as WorkerProcess;
    const a = agent as FakeAgent;
    const t = ST.history;
    // 1: primary down → failover to secondary, succeeded.
    let dispatched = nextAction(a, t, "first failover");
    await alertFor(w.url, t, "primary", "firing", Date.now() - 1000, "0c0c0c0c0c0c0c01");
    let request = await dispatched;
    await agentWork(800);
    await report(w.url, request, "succeeded", [
      { name: "switch-route", status: "succeeded", startedAt: ago(700), finishedAt: ago(0) },
    ]);
    await alertFor(w.url, t, "primary", "resolved", Date.now(), "0c0c0c0c0c0c0c01");
    // 2: secondary down → failover to primary fails; the side recovers and an operator cancels.
    dispatched = nextAction(a, t, "second failover");
    await alertFor(w.url, t, "secondary", "firing", Date.now() - 500, "0c0c0c0c0c0c0c02");
    request = await dispatched;
    expect(request.to).toBe("primary");
    await agentWork(400);
    await report(
      w.url,
      request,
      "failed",
      [{ name: "switch-route", status: "failed", startedAt: ago(300), finishedAt: ago(0) }],
      {
        code: "step-failed",
        message: "switch-route failed",
      },
    );
    await alertFor(w.url, t, "secondary", "resolved", Date.now(), "0c0c0c0c0c0c0c02");
    const cancel = await fetch(`${w.url}/v1/targets/${t}/commands`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ command: "cancel", reason: "secondary recovered" }),
    });
    expect(cancel.status).toBe(200);
    // 3: secondary down again → failover to primary, succeeded.
    dispatched = nextAction(a, t, "third failover");
    await alertFor(w.url, t, "secondary", "firing", Date.now() - 500, "0c0c0c0c0c0c0c03");
    request = await dispatched;
    await agentWork(500);
    await report(w.url, request, "succeeded", [
      { name: "switch-route", status: "succeeded", startedAt: ago(400), finishedAt: ago(0) },
    ]);
    const page = await operatorPage();
    try {
      await waitSentence(page, t, /^(steady|cooldown)/);
      const rows = page.locator(`[data-target="${t}"] .history tbody tr`);
      expect(await rows.count()).toBe(3);
      // Start, End, Action, Recovery, Executions, Outcome: the Executions column (each dispatch's time to its
      // final report) is read on its own below, so the rows compare as Start, End, Action, Recovery, Outcome.
      const all = async (i: number) => (await rows.nth(i).locator("td").allInnerTexts()).map((c) => c.trim());
      const cells = async (i: number) => (await all(i)).filter((_, col) => col !== 4);
      const [newest, middle, oldest] = [await cells(0), await cells(1), await cells(2)];
      expect(newest.slice(2)).toEqual([
        "failover secondary → primary (st-history:3)",
        expect.stringMatching(/^[0-9]\.\d s$/),
        "switched to primary",
      ]);
      expect(middle.slice(2)).toEqual(["failover secondary → primary (st-history:2)", "–", "cancelled by operator"]);
      expect(oldest.slice(2)).toEqual([
        "failover primary → secondary (st-history:1)",
        expect.stringMatching(/^\d+\.\d s$/),
        "switched to secondary",
      ]);
      expect((await all(0))[4]).toMatch(/^st-history:3 succeeded in \d+\.\d s$/);
      expect((await all(1))[4]).toMatch(/^st-history:2 /);
      for (const r of [newest, middle, oldest]) expect(r[0]).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);
      expect(await page.locator(`[data-target="${t}"] .history caption`).innerText()).toBe(
        "Last 3 incidents, newest first",
      );
      // The last incident's timeline: signal → hold → decision → action → step → end.
      const tl = await page.locator(`[data-target="${t}"] .timeline`).innerText();
      expect(tl).toMatch(
        /secondary side is down \(was up\)[\s\S]*decision: [\s\S]*action dispatched: st-history:3[\s\S]*step switch-route succeeded[\s\S]*final report: st-history:3 succeeded/,
      );
      await shoot(page, t, "history");
    } finally {
      await page.close();
    }
  }, 90_000);

  it("a clear stale-data banner while the worker cannot be reached, gone once it answers again", async () => {
    const page = await operatorPage();
    try {
      await page.route("**/v1/targets", (route) => route.abort("connectionrefused"));
      const banner = page.getByRole("alert").filter({ hasText: "Stale data" });
      await banner.waitFor({ state: "visible", timeout: 10_000 });
      expect(await banner.innerText()).toMatch(
        /^Stale data: the worker could not be reached since \d\d:\d\d:\d\d UTC \(.+\)\. What you see may be out of date; retrying every 3 s\.$/,
      );
      await page.setViewportSize(PHONE);
      mkdirSync(join(root, "test-results"), { recursive: true });
      await page.screenshot({ path: join(root, "test-results/status-stale-phone.png"), timeout: 10_000 });
      await page.setViewportSize(DESKTOP);
      await page.screenshot({ path: join(root, "test-results/status-stale-desktop.png"), timeout: 10_000 });
      await page.unroute("**/v1/targets");
      await banner.waitFor({ state: "hidden", timeout: 10_000 });
    } finally {
      await page.close();
    }
  }, 60_000);
});
