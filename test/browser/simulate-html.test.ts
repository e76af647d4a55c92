/**
 * `npm run simulate -- --html FILE` in a real browser (Debian's Chromium, playwright-core): the
 * page is self-contained (no request leaves it), has one swim lane per target and variant on one
 * time axis, draws the health, hold, blocked and decision marks the run produced, and has a
 * legend. The screenshot lands in test-results/simulate-html.png.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import type { BrowserContext } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runSimulate } from "../simulate/run-cli.ts";
import { type Chromium, launchChromium } from "../support/chromium.ts";

const root = join(import.meta.dirname, "../..");
const T = (minute: number) => new Date(Date.UTC(2026, 10, 2, 10, minute)).toISOString();

const CONFIG = {
  agent: { url: "http://127.0.0.1:8788" },
  targets: {
    "egress-gw": {
      sides: {
        primary: { matchers: ['alertname="GatewayDown"', 'gateway="p"'] },
        secondary: { matchers: ['alertname="GatewayDown"', 'gateway="s"'] },
      },
      policy: { holdSeconds: 60, failback: "auto", failbackAfterSeconds: 120 },
    },
    "bootstrap-dns": {
      sides: {
        primary: { matchers: ['alertname="NodeDown"', 'node="a"'] },
        secondary: { matchers: ['alertname="NodeDown"', 'node="b"'] },
      },
      policy: { holdSeconds: 30 },
    },
  },
};

function line(at: string, status: "firing" | "resolved", labels: Record<string, string>, startsAt: string): string {
  const alert = { status, labels, startsAt, endsAt: status === "resolved" ? at : "0001-01-01T00:00:00Z" };
  return JSON.stringify({ at, source: "alertmanager", body: { version: "4", status, alerts: [alert] } });
}

const GW_P = { alertname: "GatewayDown", gateway: "p" };
const NODE_A = { alertname: "NodeDown", node: "a" };
const NODE_B = { alertname: "NodeDown", node: "b" };
const LINES = [
  line(T(0), "firing", GW_P, T(0)),
  line(T(20), "resolved", GW_P, T(0)),
  line(T(5), "firing", NODE_B, T(5)),
  line(T(10), "firing", NODE_A, T(10)), // both sides down: blocked
  line(T(30), "resolved", NODE_A, T(10)),
  line(T(40), "resolved", NODE_B, T(5)),
];

let dir: string;
let browser: BrowserContext | undefined;
let chrome: Chromium | undefined;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "turnout-sim-html-"));
  chrome = await launchChromium({ width: 1200, height: 900 });
  browser = chrome.context;
}, 60_000);

afterAll(async () => {
  await chrome?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("the --html page", () => {
  it("shows one lane per target and variant with health, holds, blocks and decisions, and a legend", async () => {
    const input = join(dir, "in.ndjson");
    const configFile = join(dir, "config.json");
    writeFileSync(input, `${LINES.join("\n")}\n`);
    writeFileSync(configFile, JSON.stringify(CONFIG));
    const html = join(dir, "sim.html");
    const run = await runSimulate([
      "--config",
      configFile,
      "--webhooks",
      input,
      "--policy",
      "holdSeconds=1800",
      "--html",
      html,
      "--quiet",
    ]);
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);

    const page = await (browser as BrowserContext).newPage();
    const outside: string[] = [];
    page.on("request", (r) => {
      if (!r.url().startsWith("file:")) outside.push(r.url());
    });
    await page.goto(pathToFileURL(html).toString());
    expect(outside).toEqual([]);

    const lanes = await page.locator("figure.lane").evaluateAll((els) => els.map((e) => e.getAttribute("data-lane")));
    expect(lanes).toEqual([
      "as configured / bootstrap-dns",
      "as configured / egress-gw",
      "holdSeconds=1800 / bootstrap-dns",
      "holdSeconds=1800 / egress-gw",
    ]);
    const count = (lane: string, selector: string) =>
      page.locator(`figure.lane[data-lane="${lane}"] ${selector}`).count();
    // As configured, egress-gw holds 60 s, fails over, then fails back automatically.
    expect(await count("as configured / egress-gw", "rect.phase-hold")).toBe(1);
    expect(await count("as configured / egress-gw", "path.decision")).toBe(2);
    expect(await count("as configured / egress-gw", "rect.active-secondary")).toBe(1);
    // bootstrap-dns: both sides down past the hold, blocked, never switched.
    expect(await count("as configured / bootstrap-dns", "rect.phase-blocked")).toBe(1);
    expect(await count("as configured / bootstrap-dns", "path.blocked-mark")).toBe(1);
    expect(await count("as configured / bootstrap-dns", "rect.health-down")).toBe(2);
    expect(await count("as configured / bootstrap-dns", "path.decision")).toBe(0);
    // A 30-minute hold outlasts the 20-minute gateway alert: no decision at all.
    expect(await count("holdSeconds=1800 / egress-gw", "path.decision")).toBe(0);

    const legend = await page.locator("ul.legend li").allInnerTexts();
    for (const text of ["side down", "holding (pending)", "past the hold, blocked", "decision: action dispatched"]) {
      expect(legend.map((t) => t.trim())).toContain(text);
    }
    // Every lane shares the page's one axis width: same SVG width everywhere.
    const widths = await page.locator("figure.lane svg").evaluateAll((els) => els.map((e) => e.getAttribute("width")));
    expect(new Set(widths).size).toBe(1);
    expect(await page.locator("pre.summary").textContent()).toContain("holdSeconds=1800");

    mkdirSync(join(root, "test-results"), { recursive: true });
    await page.screenshot({ path: join(root, "test-results/simulate-html.png"), fullPage: true, timeout: 10_000 });
    await page.close();
  }, 60_000);
});
