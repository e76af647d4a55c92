// biome-ignore-all lint/performance/useDomNodeTextContent: these tests assert the text as rendered (innerText), not the DOM's text nodes
/**
 * A plan on the status page in a real browser (design §11.2, §5b): Debian's Chromium, driven by
 * playwright-core, against the real worker in workerd (`wrangler dev`) and a fake agent over real
 * HTTP that checks every Turnout-Signature. The card follows the plan by its own polling (the page
 * is never reloaded): a parallel group's steps side by side, then the approval step waiting with
 * its message, deadline and an Approve button; the button (after the page's confirmation dialog)
 * sends the signed approval to the agent once, and the finished plan's execution time shows in
 * the incident history.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ActionReport, ActionRequest } from "../../shared/protocol.ts";
import { type Chromium, launchChromium, requireChromium } from "../support/chromium.ts";
import { type FakePlanAgent, report as signedReport, startFakePlanAgent } from "../support/fake-plan-agent.ts";
import { credentialVars, workerCredentials } from "../support/worker-credentials.ts";
import { startWorker, type WorkerProcess } from "../support/worker-process.ts";

const CREDENTIALS = workerCredentials("plan-page");
const { operator: TOKEN, agentSecret: AGENT_SECRET } = CREDENTIALS;
const TARGET = "plan-gw";
const root = join(import.meta.dirname, "../..");

const report = (
  workerUrl: string,
  request: ActionRequest,
  status: ActionReport["status"],
  steps: ActionReport["steps"],
) => signedReport(AGENT_SECRET, workerUrl, request, status, steps);

const at = (msAgo: number) => new Date(Date.now() - msAgo).toISOString();

let agent: FakePlanAgent | undefined;
let worker: WorkerProcess | undefined;
let browser: BrowserContext | undefined;
let chrome: Chromium | undefined;

beforeAll(async () => {
  requireChromium();
  agent = await startFakePlanAgent(AGENT_SECRET);
  const config = {
    agent: { url: agent.url, transport: "direct" },
    targets: {
      [TARGET]: {
        sides: {
          primary: { matchers: ['alertname="PlanGatewayDown"', 'side="primary"'] },
          secondary: { matchers: ['alertname="PlanGatewayDown"', 'side="secondary"'] },
        },
        policy: {},
      },
    },
  };
  worker = await startWorker({
    vars: { TURNOUT_CONFIG: JSON.stringify(config), ...credentialVars(CREDENTIALS, "night") },
  });
  chrome = await launchChromium({ width: 1280, height: 900 });
  browser = chrome.context;
}, 90_000);

afterAll(async () => {
  await chrome?.close();
  await worker?.stop();
  await agent?.stop();
}, 30_000);

const card = (page: Page) => page.locator(`[data-target="${TARGET}"]`);
const step = (page: Page, name: string) => card(page).locator(`[data-step="${name}"]`);

describe("a plan on the status page in Chromium", () => {
  it("shows parallel steps side by side, then the waiting approval step whose button resumes the plan once", async () => {
    const w = worker as WorkerProcess;
    const a = agent as FakePlanAgent;
    const page = await (browser as BrowserContext).newPage();
    const pageErrors: string[] = [];
    page.on("pageerror", (e) => pageErrors.push(String(e)));
    try {
      expect((await page.goto(`${w.url}/?token=${TOKEN}`, { timeout: 15_000 }))?.status()).toBe(200);
      // A reload would lose this: every change below arrives by the page's own polling.
      await page.evaluate(() => Object.assign(window, { stillTheSamePage: true }));

      const dispatched = a.next("action");
      const res = await fetch(`${w.url}/v1/targets/${TARGET}/commands`, {
        method: "POST",
        headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
        body: JSON.stringify({ command: "failover", reason: "region lost" }),
      });
      expect(res.status).toBe(200);
      const request = (await dispatched) as ActionRequest;

      await report(w.url, request, "running", [
        { name: "scale-standby", status: "running", group: "prepare", startedAt: at(1500) },
        { name: "warm-cache", status: "running", group: "prepare", startedAt: at(1500) },
        { name: "approve-shift", status: "pending" },
        { name: "shift-weights", status: "pending" },
      ]);
      await step(page, "warm-cache").waitFor({ timeout: 15_000 });
      const group = card(page).locator('[data-group="prepare"]');
      expect(await group.getByRole("list", { name: "Parallel group prepare" }).count()).toBe(1);
      const left = await step(page, "scale-standby").boundingBox();
      const right = await step(page, "warm-cache").boundingBox();
      if (!left || !right) throw new Error("the group's steps are not laid out");
      // Side by side: one row, the second to the right of the first.
      expect(Math.abs(left.y - right.y)).toBeLessThan(2);
      expect(right.x).toBeGreaterThanOrEqual(left.x + left.width);
      const after = await step(page, "approve-shift").boundingBox();
      expect(after?.y ?? 0).toBeGreaterThan(left.y + left.height - 1);
      mkdirSync(join(root, "test-results"), { recursive: true });
      await card(page).screenshot({ path: join(root, "test-results/plan-parallel-desktop.png"), timeout: 10_000 });

      const deadline = new Date(Date.now() + 900_000).toISOString();
      await report(w.url, request, "running", [
        { name: "scale-standby", status: "succeeded", group: "prepare", startedAt: at(1500), finishedAt: at(900) },
        { name: "warm-cache", status: "succeeded", group: "prepare", startedAt: at(1500), finishedAt: at(700) },
        {
          name: "approve-shift",
          status: "waiting",
          startedAt: at(600),
          approval: { message: "Shift <b>all</b> traffic to secondary?", deadline },
        },
        { name: "shift-weights", status: "pending" },
      ]);
      const button = page.getByRole("button", { name: `Approve approve-shift: ${TARGET}` });
      await button.waitFor({ timeout: 15_000 });
      const sentence = await card(page).locator('[data-field="sentence"]').innerText();
      expect(sentence.replace(/^\S+\s+/, "")).toMatch(
        new RegExp(
          `^executing: failover primary → secondary \\(${request.id}\\), step approve-shift \\(3 of 4\\) waits for an operator's approval by \\d\\d:\\d\\d UTC \\(in 1[45] min( \\d+ s)?\\), else the action fails$`,
        ),
      );
      const waiting = await step(page, "approve-shift").innerText();
      expect(waiting).toContain("approve-shift: waiting for approval");
      // The agent's text is shown as text, never as markup.
      expect(waiting).toContain("Shift <b>all</b> traffic to secondary? Approve before");
      expect(await step(page, "approve-shift").locator("b").count()).toBe(0);
      expect(await step(page, "approve-shift").locator(`time[datetime="${deadline}"]`).count()).toBe(1);
      await card(page).screenshot({ path: join(root, "test-results/plan-waiting-desktop.png"), timeout: 10_000 });

      const approved = a.next("approval");
      await button.click();
      const dialog = page.getByRole("dialog");
      expect(await dialog.innerText()).toContain(
        `Approve step approve-shift of ${request.id} on ${TARGET}? The plan goes on at once.`,
      );
      await page.getByRole("button", { name: "Yes, do it" }).click();
      expect(await approved).toEqual({ actionId: request.id, step: "approve-shift", by: "operator" });
      const result = card(page).locator('[data-field="result"]');
      await page.waitForFunction(
        (t) =>
          /Done: step approve-shift approved/.test(
            (document.querySelector(`[data-target="${t}"] [data-field="result"]`) as HTMLElement | null)?.innerText ??
              "",
          ),
        TARGET,
        { timeout: 15_000 },
      );
      expect(await result.innerText()).toMatch(/^✓ Done: step approve-shift approved; the plan goes on/);
      // The button is gone; the step says who approved it until the agent reports it done.
      await step(page, "approve-shift").locator('[data-field="approved"]').waitFor({ timeout: 15_000 });
      expect(await step(page, "approve-shift").innerText()).toContain("Approved by operator at");
      expect(await button.count()).toBe(0);

      await report(w.url, request, "succeeded", [
        { name: "scale-standby", status: "succeeded", group: "prepare", startedAt: at(3000), finishedAt: at(2400) },
        { name: "warm-cache", status: "succeeded", group: "prepare", startedAt: at(3000), finishedAt: at(2200) },
        { name: "approve-shift", status: "succeeded", startedAt: at(2100), finishedAt: at(500) },
        { name: "shift-weights", status: "succeeded", startedAt: at(500), finishedAt: at(0) },
      ]);
      const executions = card(page).locator('[data-field="executions"]').first();
      await page.waitForFunction(
        (t) =>
          /succeeded in/.test(
            (document.querySelector(`[data-target="${t}"] [data-field="executions"]`) as HTMLElement | null)
              ?.innerText ?? "",
          ),
        TARGET,
        { timeout: 15_000 },
      );
      expect(await executions.innerText()).toMatch(new RegExp(`^${request.id} succeeded in \\d+\\.\\d s$`));
      expect(a.approvals).toHaveLength(1);
      expect(await page.evaluate(() => (window as { stillTheSamePage?: boolean }).stillTheSamePage)).toBe(true);
      expect(pageErrors).toEqual([]);
    } finally {
      await page.close();
    }
  }, 60_000);
});
