/**
 * A real agent process for the restart test: the production `startAgent` wiring with a
 * file-gated test executor and a durable store (see FileActionStore). Env: AGENT_CONFIG (JSON),
 * STATE_DIR (gates, step log, store file), TURNOUT_AGENT_SECRET.
 */
import { join } from "node:path";
import { alwaysLeader } from "../../agent/leadership.ts";
import { createLogger } from "../../agent/log.ts";
import { exitOnSignals, startAgent } from "../../agent/main.ts";
import { executorRegistry } from "../../agent/runner.ts";
import { AgentConfigSchema } from "../../shared/config.ts";
import { FileActionStore } from "./file-action-store.ts";
import { fileGatedExecutor } from "./test-executors.ts";

const dir = process.env.STATE_DIR ?? "";
const config = AgentConfigSchema.parse(JSON.parse(process.env.AGENT_CONFIG ?? "{}"));
const log = createLogger({ component: "agent", pid: process.pid });
const agent = await startAgent({
  config,
  mode: "sandbox",
  log,
  executors: executorRegistry(fileGatedExecutor(dir, ["one", "two", "three"], ["two", "three"])),
  store: new FileActionStore(join(dir, "store.json")),
  leadership: alwaysLeader,
});
exitOnSignals(agent, log);
