/**
 * Debian's Chromium for the browser and end-to-end tests, driven by playwright-core: launched
 * headless in a fresh profile directory, which goes again when it is closed. A missing binary
 * fails naming `npm run setup`, which installs it.
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BrowserContext, chromium } from "playwright-core";

export const CHROMIUM = "/usr/bin/chromium";

/** Headless, and quiet: no sandbox (tests run as root), no GPU, QUIC, first-run or background traffic. */
const ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

export interface Chromium {
  context: BrowserContext;
  /** Closes the browser and removes its profile directory. */
  close(): Promise<void>;
}

/** Fails naming `npm run setup` when Debian's Chromium is not installed. */
export function requireChromium(): void {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: run \`npm run setup\` (it installs Debian's chromium)`);
  }
}

/** Launches Chromium in a fresh profile, with the given viewport (playwright's default without one). */
export async function launchChromium(viewport?: { width: number; height: number }): Promise<Chromium> {
  requireChromium();
  const profile = mkdtempSync(join(tmpdir(), "turnout-chromium-"));
  const removeProfile = () => rmSync(profile, { recursive: true, force: true });
  try {
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      timeout: 30_000,
      ...(viewport ? { viewport } : {}),
      args: ARGS,
    });
    return {
      context,
      async close() {
        await context.close().catch(() => undefined);
        removeProfile();
      },
    };
  } catch (err) {
    removeProfile();
    throw err;
  }
}
