/**
 * A real agent process for the plan crash test: the production `startAgent` wiring and
 * executors (the plan executor among them), the ConfigMap action store and the Lease, all on the
 * Kubernetes API the config's kubeconfig names, which outlives this process. Env: AGENT_CONFIG
 * (JSON), TURNOUT_AGENT_SECRET, and what the plan's `headersEnv` names.
 */
import { createLogger } from "../../agent/log.ts";
import { exitOnSignals, startAgent } from "../../agent/main.ts";
import { detectMode } from "../../agent/mode.ts";
import { AgentConfigSchema } from "../../shared/config.ts";

const config = AgentConfigSchema.parse(JSON.parse(process.env.AGENT_CONFIG ?? "{}"));
const log = createLogger({ component: "agent", pid: process.pid });
const agent = await startAgent({ config, mode: detectMode(config), log });
exitOnSignals(agent, log);
