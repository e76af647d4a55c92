#!/usr/bin/env node
/**
 * The turnout agent: `node agent/main.ts --config <file>` (or TURNOUT_AGENT_CONFIG).
 * On a bad config it prints every problem as `path: message` and exits 1.
 */
import { readFileSync } from "node:fs";
import { serve } from "@hono/node-server";
import type { AgentConfig } from "../shared/config.ts";
import { ConfigError, configSource, loadAgentConfigFile, parseConfigText, validateOrThrow } from "./config-file.ts";
import { createLogger } from "./log.ts";
import { detectMode } from "./mode.ts";
import { createAgentApp } from "./server.ts";

const log = createLogger({ component: "agent" });
const version = (JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string })
  .version;

async function loadConfig(): Promise<AgentConfig> {
  const source = configSource(process.argv.slice(2), process.env);
  if (!source) {
    throw new ConfigError("command line", [
      { path: "(root)", message: "no config: pass --config <file> or set TURNOUT_AGENT_CONFIG" },
    ]);
  }
  if (source.kind === "file") return loadAgentConfigFile(source.path);
  return validateOrThrow(parseConfigText(source.text, "TURNOUT_AGENT_CONFIG"), "TURNOUT_AGENT_CONFIG");
}

async function main(): Promise<void> {
  let config: AgentConfig;
  try {
    config = await loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`turnout agent: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }

  const mode = detectMode(config);
  if (mode === "sandbox") {
    log.warn(
      "no kubeconfig and no service account: running against the SANDBOX (a simulated cluster); no real cluster is touched",
      { mode },
    );
  }
  const app = createAgentApp({
    config,
    mode,
    version,
    readiness: async () => ({ ready: true, detail: mode === "sandbox" ? "sandbox cluster" : "standing by" }),
  });

  const [host, portText] = splitHostPort(config.listen);
  const server = serve({ fetch: app.fetch, hostname: host, port: Number(portText) }, (info) => {
    log.info("agent listening", { url: `http://${host}:${info.port}`, mode, targets: Object.keys(config.targets) });
  });

  const stop = (signal: string) => {
    log.info("stopping", { signal });
    server.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 3000).unref();
  };
  process.on("SIGINT", () => stop("SIGINT"));
  process.on("SIGTERM", () => stop("SIGTERM"));
}

function splitHostPort(listen: string): [string, string] {
  const i = listen.lastIndexOf(":");
  const host = listen.slice(0, i).replace(/^\[|\]$/g, "");
  return [host, listen.slice(i + 1)];
}

main().catch((err: unknown) => {
  log.error("agent failed to start", { error: err instanceof Error ? err.stack : String(err) });
  process.exit(1);
});
