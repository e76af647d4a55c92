/**
 * A real agent process for the restart tests: the production `startAgent` wiring (ConfigMap action
 * store, Lease leadership, both on the Kubernetes API the config's kubeconfig names) with a
 * file-gated test executor. Env: AGENT_CONFIG (JSON), STATE_DIR (gates and step log),
 * TURNOUT_AGENT_SECRET, and for the crash tests:
 *
 * - GATED_STEPS: the steps that wait for `<STATE_DIR>/gate-<step>` (default `two,three`).
 * - HOLD: points where this process stops short, so a test can SIGKILL it exactly there; each
 *   writes `<STATE_DIR>/held-<point>` (this pid) once reached, then waits forever:
 *   - `start-one`: the store write that marks step one running (the action is accepted and
 *     stored, its step one not begun);
 *   - `final-report`: delivery of a finished action's report (the store has it, the worker not);
 *   - `delivered-record`: the store write noting that the worker acknowledged the final report.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { ActionStore } from "../../agent/action-store.ts";
import { connectKube } from "../../agent/kube.ts";
import { createLogger } from "../../agent/log.ts";
import { exitOnSignals, startAgent } from "../../agent/main.ts";
import { ConfigMapActionStore } from "../../agent/memory.ts";
import { detectMode } from "../../agent/mode.ts";
import { executorRegistry } from "../../agent/runner.ts";
import { AgentConfigSchema } from "../../shared/config.ts";
import { fileGatedExecutor } from "./test-executors.ts";

const dir = process.env.STATE_DIR ?? "";
const config = AgentConfigSchema.parse(JSON.parse(process.env.AGENT_CONFIG ?? "{}"));
const log = createLogger({ component: "agent", pid: process.pid });
const gated = (process.env.GATED_STEPS ?? "two,three").split(",").filter(Boolean);
const holds = new Set((process.env.HOLD ?? "").split(",").filter(Boolean));
const mode = detectMode(config);

/** Notes that `point` is reached and never settles: the test kills the process here. */
function hold(point: string): Promise<never> {
  log.warn("test hold reached", { point });
  writeFileSync(join(dir, `held-${point}`), String(process.pid));
  return new Promise<never>(() => {});
}

// The report transport: the report sender calls the global fetch (agent/report-sender.ts).
if (holds.has("final-report")) {
  const realFetch = globalThis.fetch;
  globalThis.fetch = async (input, init) => {
    const url = input instanceof Request ? input.url : String(input);
    if (url === config.reportUrl && typeof init?.body === "string") {
      const report = JSON.parse(init.body) as { status?: string };
      if (report.status !== "running") return hold("final-report");
    }
    return realFetch(input, init);
  };
}

// The store as startAgent builds it, with its writes watched for the hold points.
let overrides: { kubeConfig?: Awaited<ReturnType<typeof connectKube>>["kubeConfig"]; store?: ActionStore } = {};
if (holds.has("start-one") || holds.has("delivered-record")) {
  const { kubeConfig } = await connectKube(config, { mode, log });
  const store = new ConfigMapActionStore({
    kubeConfig,
    namespace: config.namespace,
    log,
    targets: Object.keys(config.targets),
  });
  const put = store.put.bind(store);
  store.put = (record) => {
    if (holds.has("start-one") && record.report.steps.some((s) => s.name === "one" && s.status === "running")) {
      return hold("start-one");
    }
    if (holds.has("delivered-record") && record.reportDelivered && record.report.status !== "running") {
      return hold("delivered-record");
    }
    return put(record);
  };
  overrides = { kubeConfig, store };
}

const agent = await startAgent({
  config,
  mode,
  log,
  executors: executorRegistry(fileGatedExecutor(dir, ["one", "two", "three"], gated)),
  ...overrides,
});
exitOnSignals(agent, log);
