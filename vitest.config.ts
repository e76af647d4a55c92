import { readFileSync } from "node:fs";
import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";
import { credentialBindings } from "./test/worker/support/bindings.ts";

/** Files that run the whole stack against real time; see the "e2e" project. */
const END_TO_END = [
  "test/e2e/**/*.test.ts",
  "test/browser/**/*.test.ts",
  "test/simulate/prometheus-live-alerts.test.ts",
];

/**
 * One command, every suite: worker tests run inside workerd (Miniflare through
 * @cloudflare/vitest-plugin); shared, agent and CLI tests run on Node; then the end-to-end tests.
 */
export default defineConfig({
  test: {
    // Vitest's default on this two-core machine is one worker; most files wait on servers they
    // started rather than on the CPU, so two run side by side.
    maxWorkers: 2,
    reporters: ["default", "./test/support/summary-reporter.ts"],
    // The object logs every notification as a line (for deployments without Slack); in tests they
    // are recorded by the test notifier instead, so keep them out of the output.
    onConsoleLog: (log) => !log.includes('"msg":"notification"'),
    projects: [
      {
        plugins: [
          cloudflareTest({
            wrangler: { configPath: "./wrangler.toml" },
            miniflare: {
              bindings: {
                // Tokens, named identities and secrets: test/worker/support/bindings.ts.
                ...credentialBindings,
                // Worker tests run against their own targets (test/fixtures/worker-test-config.json).
                TURNOUT_CONFIG: readFileSync(
                  new URL("./test/fixtures/worker-test-config.json", import.meta.url),
                  "utf8",
                ),
              },
            },
          }),
        ],
        test: {
          name: "worker",
          include: ["test/worker/**/*.test.ts"],
          // PagerDuty, Opsgenie and webhook stand-ins over real HTTP for the paging tests, and an
          // agent's /healthz for the probe of rule 17.
          globalSetup: ["./test/support/paging-receivers-setup.ts", "./test/support/agent-healthz-stub-setup.ts"],
          // A file's first test also waits for workerd to start; 5 s (the default) was seen to run
          // out under load.
          testTimeout: 20_000,
        },
      },
      {
        test: {
          name: "node",
          // Everything else outside test/worker runs on Node (pure logic, agent, shared, CLI).
          include: ["test/**/*.test.ts"],
          exclude: ["test/worker/**", ...END_TO_END, "**/node_modules/**"],
          environment: "node",
          testTimeout: 20_000,
          hookTimeout: 30_000,
        },
      },
      {
        test: {
          name: "e2e",
          // The whole stack in real time (workerd, the agent, monitoring servers, Chromium): after
          // the other projects, two files at a time. They wait on real intervals, holds and leases
          // far more than they compute, so two side by side take half the time (one at a time the
          // suite went past ten minutes).
          include: END_TO_END,
          environment: "node",
          testTimeout: 20_000,
          hookTimeout: 30_000,
          maxWorkers: 2,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
