/**
 * Prometheus and Alertmanager shaped for the simulator's tests (the shared ones in prometheus.ts
 * and alertmanager.ts are fixed at 500 ms intervals and a clustered pair): history backfilled with
 * `promtool tsdb create-blocks-from openmetrics` and kept (100 y retention), a caller's own
 * prometheus.yml (intervals, rules, alerting), and one unclustered Alertmanager. Started through
 * monitoring-process.ts, on 127.0.0.1 at free ports.
 */
import { execFile } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { freePort } from "./free-port.ts";
import { answers, requireBinary, spawnServer } from "./monitoring-process.ts";

/** A started server: its URL, its output (for failure messages), and how to stop it. */
export interface ReplayServer {
  url: string;
  output(): string;
  stop(): Promise<void>;
}

/** Writes `openMetrics` beside `dataDir` and turns it into TSDB blocks under `dataDir`. */
export async function backfill(openMetrics: string, dataDir: string): Promise<void> {
  const promtool = requireBinary("/usr/bin/promtool", "prometheus");
  mkdirSync(dataDir, { recursive: true });
  const file = join(dataDir, "..", "backfill.om");
  writeFileSync(file, openMetrics);
  await promisify(execFile)(promtool, ["tsdb", "create-blocks-from", "openmetrics", "-q", file, dataDir], {
    maxBuffer: 16 * 1024 * 1024,
  });
}

/**
 * Starts `binary` from `dir` with its config written to `dir/<configName>`, listening on a free
 * port of 127.0.0.1, until `/-/ready` answers; `args` gets the config file and the port.
 */
async function startReady(
  name: string,
  binary: string,
  dir: string,
  configName: string,
  configYaml: string,
  args: (configFile: string, port: number) => string[],
): Promise<ReplayServer> {
  const port = await freePort();
  const configFile = join(dir, configName);
  writeFileSync(configFile, configYaml);
  const url = `http://127.0.0.1:${port}`;
  const server = await spawnServer({
    name,
    command: binary,
    args: args(configFile, port),
    cwd: dir,
    ready: () => answers(`${url}/-/ready`),
    timeoutMs: 60_000,
    gracefulStopMs: 5_000,
  });
  return { url, output: server.output, stop: server.stop };
}

/** Starts Prometheus on `dir`/data with `configYaml` until `/-/ready` answers. */
export async function startPrometheus(dir: string, configYaml: string): Promise<ReplayServer> {
  const binary = requireBinary("/usr/bin/prometheus", "prometheus");
  const dataDir = join(dir, "data");
  mkdirSync(dataDir, { recursive: true });
  return startReady("prometheus", binary, dir, "prometheus.yml", configYaml, (configFile, port) => [
    `--config.file=${configFile}`,
    `--storage.tsdb.path=${dataDir}`,
    `--web.listen-address=127.0.0.1:${port}`,
    // Backfilled history is months old; the default 15 d retention would delete it at start.
    "--storage.tsdb.retention.time=100y",
  ]);
}

/** Starts one Alertmanager (no cluster) on `dir` with `configYaml` until `/-/ready` answers. */
export async function startAlertmanager(dir: string, configYaml: string): Promise<ReplayServer> {
  const binary = requireBinary("/usr/bin/prometheus-alertmanager", "prometheus-alertmanager");
  mkdirSync(join(dir, "am-data"), { recursive: true });
  return startReady("alertmanager", binary, dir, "alertmanager.yml", configYaml, (configFile, port) => [
    `--config.file=${configFile}`,
    `--storage.path=${join(dir, "am-data")}`,
    `--web.listen-address=127.0.0.1:${port}`,
    // A single instance: no gossip port to collide with parallel tests.
    "--cluster.listen-address=",
  ]);
}
