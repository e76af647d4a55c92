/**
 * A real agent process for the restart test: the production `startAgent` wiring (ConfigMap action
 * store, Lease leadership, both on the Kubernetes API the config's kubeconfig names) with a
 * file-gated test executor. Env: AGENT_CONFIG (JSON), STATE_DIR (gates and step log),
 * TURNOUT_AGENT_SECRET.
 */
import { createLogger } from "../../agent/log.ts";
import { exitOnSignals, startAgent } from "../../agent/main.ts";
import { detectMode } from "../../agent/mode.ts";
import { executorRegistry } from "../../agent/runner.ts";
import { AgentConfigSchema } from "../../shared/config.ts";
import { fileGatedExecutor } from "./test-executors.ts";

const dir = process.env.STATE_DIR ?? "";
const config = AgentConfigSchema.parse(JSON.parse(process.env.AGENT_CONFIG ?? "{}"));
const log = createLogger({ component: "agent", pid: process.pid });
const agent = await startAgent({
  config,
  mode: detectMode(config),
  log,
  executors: executorRegistry(fileGatedExecutor(dir, ["one", "two", "three"], ["two", "three"])),
});
exitOnSignals(agent, log);
