#!/usr/bin/env node
/**
 * The turnout agent: `node agent/main.ts --config <file>` (or TURNOUT_AGENT_CONFIG).
 * On a bad config it prints every problem as `path: message` and exits 1.
 *
 * Wiring: config → mode → (sandbox: local BIND/etcd for local targets, then the simulated cluster
 * of design §9) → heartbeat writers → KubeConfig → durable
 * action store (ConfigMaps) → Leadership (Lease) → executors → runner → heartbeats to the worker +
 * HTTP server. Unfinished actions resume
 * when this replica leads; SIGTERM stops accepting, lets the running step finish (bounded), then
 * aborts it, releases the Lease and exits.
 */
import { readFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { type ServerType, serve } from "@hono/node-server";
import { type KubeConfig, VersionApi } from "@kubernetes/client-node";
import type { AgentConfig } from "../shared/config.ts";
import { qstashKeysFromEnv } from "../shared/qstash-signature.ts";
import { type ActionStore, InMemoryActionStore } from "./action-store.ts";
import { ConfigError, configSource, loadAgentConfigFile, parseConfigText, validateOrThrow } from "./config-file.ts";
import { startConfiguredHeartbeats } from "./etcd/heartbeat.ts";
import { configMapReader, createDnsFlipExecutor } from "./executors/dns-flip.ts";
import { createEtcdSyncTeardownExecutor } from "./executors/etcd-sync-teardown.ts";
import { createNodeFenceExecutor } from "./executors/node-fence.ts";
import { createRouteSwapExecutor } from "./executors/route-swap.ts";
import { createHeartbeats, leaderPod } from "./heartbeat.ts";
import { connectKube } from "./kube.ts";
import type { Leadership } from "./leadership.ts";
import { podName, startLeaseElector } from "./lease.ts";
import { createLogger, type Logger } from "./log.ts";
import { ConfigMapActionStore } from "./memory.ts";
import { createAgentMetrics } from "./metrics.ts";
import { type ClusterMode, detectMode } from "./mode.ts";
import { createPlanExecutor } from "./plan/plan-executor.ts";
import { createReadiness, type Readiness } from "./readiness/runner.ts";
import { createSandboxFaults } from "./readiness/sandbox-faults.ts";
import { registerSandboxRoutes } from "./readiness/sandbox-routes.ts";
import { abortableSleep, createReportSender } from "./report-sender.ts";
import { ActionRunner, type ExecutorRegistry, executorRegistry, followLeadership } from "./runner.ts";
import type { SandboxCluster } from "./sandbox/cluster.ts";
import { type LocalServers, startLocalServers } from "./sandbox/local-servers.ts";
import { createAgentApp, leaseReadiness } from "./server.ts";

const version = (JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string })
  .version;

export interface StartAgentOptions {
  config: AgentConfig;
  mode: ClusterMode;
  env?: Record<string, string | undefined>;
  log?: Logger;
  /** Overrides for tests and tools; each defaults to the production wiring. */
  kubeConfig?: KubeConfig;
  executors?: ExecutorRegistry;
  store?: ActionStore;
  leadership?: Leadership;
  /** How long SIGTERM lets a running step finish before aborting it (default 20 s, under k8s' 30 s). */
  shutdownGraceMs?: number;
  /**
   * Sandbox only: start a local BIND/etcd for targets whose servers are on 127.0.0.1
   * (agent/sandbox/local-servers.ts). Default true when the sandbox cluster is started here.
   */
  localServers?: boolean;
}

export interface RunningAgent {
  url: string;
  runner: ActionRunner;
  /** The BIND/etcd servers the sandbox started (undefined outside the sandbox). */
  localServers: LocalServers | undefined;
  /** Readiness of every target (design §11.3); `latest()` is what a heartbeat carries. */
  readiness: Readiness;
  /** Graceful stop: stop accepting, drain, release the Lease, close the server. */
  stop(): Promise<void>;
}

/** How often the leader tries the steps owed by an unreachable cluster again. */
const OWED_INTERVAL_MS = 15_000;

/** The production executors, one per target kind. */
export function defaultExecutors(
  config: AgentConfig,
  kubeConfig: KubeConfig,
  env: Record<string, string | undefined>,
): ExecutorRegistry {
  // The agent's own credentials, not whatever the default kubeconfig would be.
  const dnsFlip = createDnsFlipExecutor({ env, readConfigMap: configMapReader(kubeConfig) });
  return new Map([
    ...executorRegistry(createRouteSwapExecutor({ kubeConfig })),
    ...executorRegistry(dnsFlip),
    ...executorRegistry(createEtcdSyncTeardownExecutor({ kubeConfig, agentConfig: config, env })),
    ...executorRegistry(createNodeFenceExecutor({ kubeConfig })),
    ...executorRegistry(createPlanExecutor({ kubeConfig, agentConfig: config, env })),
  ]);
}

/** Starts the agent (everything but process signals and config loading). */
export async function startAgent(options: StartAgentOptions): Promise<RunningAgent> {
  const { config, mode } = options;
  const env = options.env ?? process.env;
  const log = options.log ?? createLogger({ component: "agent" });
  const qstash = qstashKeysFromEnv(env);
  // Without the URL, Receiver skips the `sub` check: a JWT QStash signed for any other
  // destination of the same account would verify here (design §6).
  if (qstash && !config.qstash?.url) {
    throw new ConfigError("environment", [
      {
        path: "qstash.url",
        message: "required when QSTASH_CURRENT_SIGNING_KEY is set (the Upstash-Signature's sub must equal it)",
      },
    ]);
  }

  // Sandbox: the local servers first, so the synchronizer's make-mirror has endpoints to mirror.
  const localServers =
    mode === "sandbox" && !options.kubeConfig && options.localServers !== false
      ? await startLocalServers(config, env, log)
      : undefined;
  let cluster: { kubeConfig: KubeConfig; close(): Promise<void>; sandbox?: SandboxCluster | undefined };
  try {
    cluster = options.kubeConfig
      ? { kubeConfig: options.kubeConfig, close: async () => {} }
      : await connectKube(config, { mode, log });
  } catch (err) {
    await localServers?.stop();
    throw err;
  }
  const { kubeConfig } = cluster;
  // Targets with `heartbeat.write: true` get their heartbeat written by this agent (design §7).
  const heartbeats = startConfiguredHeartbeats(config, { now: Date.now, log });
  if (heartbeats.targets.length) log.info("writing etcd heartbeats", { targets: heartbeats.targets });

  // Durable action memory: ConfigMaps in the agent's namespace (in the sandbox, the simulated
  // cluster's, which lives as long as the process).
  const store =
    options.store ??
    new ConfigMapActionStore({ kubeConfig, namespace: config.namespace, log, targets: Object.keys(config.targets) });
  if (options.store instanceof InMemoryActionStore) {
    log.warn(
      "ACTION STORE IS IN MEMORY: a restarted agent forgets its actions and may repeat steps; use the ConfigMap store",
      { store: "memory" },
    );
  }

  const leadership =
    options.leadership ??
    startLeaseElector({
      kubeConfig,
      namespace: config.namespace,
      name: config.lease.name,
      durationSeconds: config.lease.durationSeconds,
      renewSeconds: config.lease.renewSeconds,
      log,
    });

  const secret = env.TURNOUT_AGENT_SECRET ?? "";
  const secrets = [secret, env.TURNOUT_AGENT_SECRET_NEXT ?? ""].filter((s) => s.length > 0);
  if (!secret) log.warn("TURNOUT_AGENT_SECRET is not set: every action is refused (401) and reports cannot be signed");

  const metrics = createAgentMetrics();
  const reports = createReportSender({
    reportUrl: config.reportUrl,
    secret,
    agent: config.name,
    log,
    onFailure: () => metrics.reportDeliveryFailed(),
  });
  const runner = new ActionRunner({
    config,
    executors: options.executors ?? defaultExecutors(config, kubeConfig, env),
    store,
    reports,
    log,
    metrics,
  });
  const unfollow = followLeadership(leadership, runner, log, metrics);
  if (leadership.isLeader()) {
    const resumed = await runner.resumeUnfinished();
    if (resumed.length) log.info("resumed unfinished actions", { actions: resumed });
  }

  // Readiness (design §11.3): every replica evaluates, read only, so a standby's metrics say it too.
  const readiness = createReadiness({
    config,
    kubeConfig,
    log,
    env,
    metrics,
    clock: { now: Date.now, sleep: abortableSleep },
    // The sides the worker sends this agent (the heartbeat answer); started once the sender exists.
    serves: () => heartbeatSender.state().serves,
  });
  // Steps owed by `ifUnreachable: "skip"` run once their cluster answers (design §11.6).
  const owedTimer = setInterval(() => {
    if (!leadership.isLeader()) return;
    runner.settleOwed().catch((err: unknown) => log.warn("owed steps: could not settle", { error: String(err) }));
  }, OWED_INTERVAL_MS);
  owedTimer.unref();
  // Every replica, leader or standby, is heard by the worker (design §11.1).
  const pod = podName(env);
  const heartbeatSender = createHeartbeats({
    config,
    mode: mode === "sandbox" ? "sandbox" : "cluster",
    version,
    pod,
    leader: () => leaderPod(leadership, pod),
    secret,
    log,
    onResult: (result) => metrics.heartbeatResult(result),
    readiness: () => readiness.latest(),
  });
  heartbeatSender.start();
  readiness.start();

  const versionApi = kubeConfig.makeApiClient(VersionApi);
  let accepting = true;
  const app = createAgentApp({
    config,
    mode,
    version,
    metrics,
    ...(localServers ? { sandbox: () => localServers.summary } : {}),
    heartbeat: () => heartbeatSender.state(),
    readiness: () =>
      leaseReadiness(leadership, async () => {
        await versionApi.getCode();
        return true;
      }),
    actions: {
      runner,
      leadership,
      secrets,
      ...(qstash ? { qstash } : {}),
      log,
      accepting: () => accepting,
    },
  });

  // `turnout sandbox break|mend`: only where this process runs the simulated cluster itself.
  if (mode === "sandbox" && cluster.sandbox) {
    const sandbox = cluster.sandbox;
    registerSandboxRoutes(app, {
      secrets,
      log,
      faults: createSandboxFaults({
        config,
        store: sandbox.api.store,
        kubeConfig,
        ...(sandbox.controlPlane ? { controlPlane: sandbox.controlPlane } : {}),
        ...(localServers ? { localServers: () => localServers.summary } : {}),
      }),
    });
  }

  const [host, portText] = splitHostPort(config.listen);
  const server = await new Promise<ServerType>((resolve, reject) => {
    const s = serve({ fetch: app.fetch, hostname: host, port: Number(portText) }, () => resolve(s));
    // E.g. the port is taken: fail startAgent (main exits 1; the sandbox's servers go with it).
    s.once("error", reject);
  });
  const port = (server.address() as AddressInfo).port;
  const url = `http://${host.includes(":") ? `[${host}]` : host}:${port}`;
  log.info("agent listening", {
    url,
    agent: config.name,
    mode,
    targets: Object.keys(config.targets),
    qstash: qstash !== undefined,
  });

  return {
    url,
    runner,
    localServers,
    readiness,
    stop: async () => {
      accepting = false;
      await readiness.stop();
      clearInterval(owedTimer);
      await runner.drain(options.shutdownGraceMs ?? 20_000);
      // After the drain: a replica finishing a step is still heard while it does.
      await heartbeatSender.stop();
      unfollow();
      await leadership.stop();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Keep-alive connections would hold close() open.
        if ("closeAllConnections" in server) server.closeAllConnections();
      });
      await cluster.close();
      await heartbeats.stop();
      await localServers?.stop();
    },
  };
}

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

/** Handles SIGTERM/SIGINT for a running agent: one graceful stop, then exit. */
export function exitOnSignals(agent: RunningAgent, log: Logger): void {
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info("stopping", { signal });
    agent.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error("unclean stop", { error: String(err) });
        process.exit(1);
      },
    );
  };
  process.on("SIGINT", () => stop("SIGINT"));
  process.on("SIGTERM", () => stop("SIGTERM"));
}

async function main(): Promise<void> {
  const log = createLogger({ component: "agent" });
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
  let agent: RunningAgent;
  try {
    agent = await startAgent({ config, mode, log });
  } catch (err) {
    // A config problem only the environment reveals (e.g. QStash keys without qstash.url).
    if (err instanceof ConfigError) {
      process.stderr.write(`turnout agent: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
  exitOnSignals(agent, log);
}

function splitHostPort(listen: string): [string, string] {
  const i = listen.lastIndexOf(":");
  const host = listen.slice(0, i).replace(/^\[|\]$/g, "");
  return [host, listen.slice(i + 1)];
}

if (import.meta.main) {
  main().catch((err: unknown) => {
    createLogger({ component: "agent" }).error("agent failed to start", {
      error: err instanceof Error ? err.stack : String(err),
    });
    process.exit(1);
  });
}
