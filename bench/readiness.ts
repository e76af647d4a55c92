/**
 * Benchmark: the agent's CPU for readiness (design §11.3) with 20 targets (4 of each executor
 * kind, and 4 plans with a step of each plan kind: scale, kube with expect, restart and check in a
 * parallel group, http, wait, approval) in the sandbox, with a real BIND and two real etcd. One round evaluates every target
 * toward both sides, as an agent serving both does; the figure is the process's user+system CPU
 * per round (process.cpuUsage) as a fraction of one core over the default interval (300 s). Goal:
 * under 1 %. The fake API server and the simulated controllers run in this process, so their CPU
 * is counted too: the figure is an upper bound of the agent's own.
 * Baseline, in the same run and process: a round of the least any readiness could do, one
 * `GET /version` per target and side against the same API server.
 * Run with `node bench/readiness.ts [rounds]`; `run()` returns the figures.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { pathToFileURL } from "node:url";
import { VersionApi } from "@kubernetes/client-node";
import { createEtcdClient } from "../agent/etcd/client.ts";
import { silentLogger } from "../agent/log.ts";
import { createReadiness } from "../agent/readiness/runner.ts";
import { namedPath } from "../agent/sandbox/bind-server.ts";
import { startSandboxCluster } from "../agent/sandbox/cluster.ts";
import { requireEtcdBinaries } from "../agent/sandbox/etcd-server.ts";
import { freePorts } from "../agent/sandbox/free-port.ts";
import { startLocalServers } from "../agent/sandbox/local-servers.ts";
import { AgentConfigSchema } from "../shared/config.ts";
import { planWorkloadsReady, seedPlanObjects, shopPlan } from "../test/agent/readiness-sandbox.ts";

export interface ReadinessBenchFigures {
  targets: number;
  rounds: number;
  intervalSeconds: number;
  /** CPU (user + system) per round, ms. */
  cpuMsPerRound: number;
  /** Wall time per round, ms. */
  wallMsPerRound: number;
  /** cpuMsPerRound ÷ (intervalSeconds × 1000), in percent of one core. */
  corePercent: number;
  baselineCpuMsPerRound: number;
  /** Rounds in which some target was not ready (should be 0: everything is healthy). */
  notReadyRounds: number;
  /** Requests the plans' http endpoint received (must be 0: readiness never sends an http step). */
  planRequestsSent: number;
}

const PER_KIND = 4;
/** The namespaces of the plans' objects, one per plan. */
const SHOPS = Array.from({ length: PER_KIND }, (_, i) => `shop-${i + 1}`);
const TSIG_SECRET = Buffer.from("bench-readiness-tsig-key-32bytes").toString("base64");

function cpuMs(since: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(since);
  return (d.user + d.system) / 1000;
}

/** Builds the 20-target sandbox, runs `rounds` rounds of readiness and of the baseline, and returns the figures. */
export async function run(rounds = 20): Promise<ReadinessBenchFigures> {
  if (namedPath() === undefined) throw new Error("BIND's `named` is not installed: run `npm run setup`");
  requireEtcdBinaries();
  const [dnsPort = 0, primaryPort = 0, standbyPort = 0] = await freePorts(3);
  const server = `127.0.0.1:${dnsPort}`;
  // The plans' http endpoint: readiness only connects to it; a request would be a write.
  let lbRequests = 0;
  const lb = createServer((_req, res) => {
    lbRequests++;
    res.end();
  });
  await new Promise<void>((resolve) => lb.listen(0, "127.0.0.1", resolve));
  const lbUrl = `http://127.0.0.1:${(lb.address() as AddressInfo).port}`;
  const targets: Record<string, unknown> = {};
  for (let i = 1; i <= PER_KIND; i++) {
    targets[`route-${i}`] = {
      kind: "route-swap",
      routes: {
        primary: { name: `route-${i}-primary`, destinations: [`34.160.111.${i}`], gateway: "10.116.0.4" },
        secondary: { name: `route-${i}-secondary`, destinations: [`34.160.111.${i}`], gateway: "10.116.0.12" },
      },
    };
    targets[`dns-${i}`] = {
      kind: "dns-flip",
      provider: {
        type: "rfc2136",
        server,
        zone: "example.test",
        tsig: { name: "turnout-key", algorithm: "hmac-sha256", secretEnv: "TSIG_SECRET" },
      },
      record: { name: `www${i}.example.test`, type: "A", ttl: 60 },
      values: { primary: [`172.30.41.${i}`], secondary: [`172.30.42.${i}`] },
    };
    targets[`etcd-${i}`] = {
      kind: "etcd-sync-teardown",
      etcd: {
        primary: { endpoints: [`http://127.0.0.1:${primaryPort}`] },
        standby: { endpoints: [`http://127.0.0.1:${standbyPort}`] },
        prefixes: ["/registry/"],
        heartbeat: { key: "/turnout/heartbeat", maxLagSeconds: 30 },
      },
      sync: { namespace: "cpaas-system", name: `etcd-sync-${i}` },
      dns: `dns-${i}`,
      restart: [{ kind: "Deployment", namespace: "cpaas-system", name: `transformer-${i}` }],
    };
    targets[`nodes-${i}`] = {
      kind: "node-fence",
      nodes: {
        primary: { selector: "topology.kubernetes.io/zone=dc-1" },
        secondary: { selector: "topology.kubernetes.io/zone=cloud-a" },
      },
      workloads: [{ kind: "StatefulSet", namespace: "db", name: `postgres-${i}` }],
    };
    targets[`plan-${i}`] = shopPlan(lbUrl, undefined, SHOPS[i - 1]);
  }
  const config = AgentConfigSchema.parse({ reportUrl: "http://127.0.0.1:1/v1/agent/reports", targets });
  const env = { TSIG_SECRET, LB_TOKEN: "bench-readiness-lb-token" };
  const servers = await startLocalServers(config, env, silentLogger);
  const cluster = await startSandboxCluster(config, { operatorDelayMs: 10, etcdMirror: false });
  let now = Date.now();
  try {
    for (const shop of SHOPS) seedPlanObjects(cluster, shop);
    const readiness = createReadiness({
      config,
      kubeConfig: cluster.kubeConfig,
      log: silentLogger,
      env,
      clock: { now: () => now, sleep: () => new Promise(() => {}) },
    });
    const heartbeat = async () => {
      now = Date.now();
      for (const port of [primaryPort, standbyPort]) {
        const c = createEtcdClient({ endpoints: [`http://127.0.0.1:${port}`] });
        await c.put("/turnout/heartbeat").value(String(now)).exec();
        c.close();
      }
    };
    await heartbeat();
    // The plans' Deployments are made Ready by the sandbox's controllers.
    for (let tries = 0; !SHOPS.every((shop) => planWorkloadsReady(cluster, shop)); tries++) {
      if (tries === 100) throw new Error("the plans' Deployments never became Ready");
      await new Promise((r) => setTimeout(r, 50));
    }
    await readiness.evaluate(); // warm-up: connections, JIT
    let notReadyRounds = 0;
    const wallStart = performance.now();
    const cpuStart = process.cpuUsage();
    for (let i = 0; i < rounds; i++) {
      const report = await readiness.evaluate();
      const ready = Object.values(report).every((sides) => Object.values(sides).every((s) => s?.ready));
      if (!ready) notReadyRounds++;
    }
    const cpuMsPerRound = cpuMs(cpuStart) / rounds;
    const wallMsPerRound = (performance.now() - wallStart) / rounds;

    const version = cluster.kubeConfig.makeApiClient(VersionApi);
    const sides = Object.keys(config.targets).length * 2;
    await Promise.all(Array.from({ length: sides }, () => version.getCode()));
    const baseStart = process.cpuUsage();
    for (let i = 0; i < rounds; i++) {
      for (let j = 0; j < sides; j += 4) await Promise.all([0, 1, 2, 3].map(() => version.getCode()));
    }
    const baselineCpuMsPerRound = cpuMs(baseStart) / rounds;
    const intervalSeconds = config.readiness.intervalSeconds;
    return {
      targets: Object.keys(config.targets).length,
      rounds,
      intervalSeconds,
      cpuMsPerRound: Math.round(cpuMsPerRound * 10) / 10,
      wallMsPerRound: Math.round(wallMsPerRound),
      corePercent: Math.round((cpuMsPerRound / (intervalSeconds * 1000)) * 100 * 1000) / 1000,
      baselineCpuMsPerRound: Math.round(baselineCpuMsPerRound * 10) / 10,
      notReadyRounds,
      planRequestsSent: lbRequests,
    };
  } finally {
    await new Promise((resolve) => lb.close(resolve));
    await cluster.stop();
    await servers.stop();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  run(Number(process.argv[2] ?? 20)).then(
    (f) => console.log(JSON.stringify(f, null, 2)),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
