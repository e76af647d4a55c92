/**
 * A real Prometheus for tests (Debian's `prometheus` package): backfill with
 * `promtool tsdb create-blocks-from openmetrics`, start on 127.0.0.1 at a free port, stop. And a
 * real Alertmanager (Debian's `prometheus-alertmanager`) for the whole live alerting chain.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { freePort } from "../../agent/sandbox/free-port.ts";

const PROMETHEUS = "/usr/bin/prometheus";
const PROMTOOL = "/usr/bin/promtool";
const ALERTMANAGER = "/usr/bin/prometheus-alertmanager";

/** Fails (never skips) when Prometheus is missing, naming the fix. */
export function requirePrometheus(): void {
  for (const bin of [PROMETHEUS, PROMTOOL]) {
    if (!existsSync(bin)) throw new Error(`${bin} is missing: run \`npm run setup\` (installs Debian's prometheus)`);
  }
}

/** Writes `openMetrics` to a file and turns it into TSDB blocks under `dataDir`. */
export async function backfill(openMetrics: string, dataDir: string): Promise<void> {
  requirePrometheus();
  mkdirSync(dataDir, { recursive: true });
  const file = join(dataDir, "..", "backfill.om");
  writeFileSync(file, openMetrics);
  await promisify(execFile)(PROMTOOL, ["tsdb", "create-blocks-from", "openmetrics", "-q", file, dataDir], {
    maxBuffer: 16 * 1024 * 1024,
  });
}

export interface PrometheusProcess {
  url: string;
  output(): string;
  stop(): Promise<void>;
}

/** Starts Prometheus on `dir`/data with `configYaml` (rule files beside it) until ready. */
export async function startPrometheus(
  dir: string,
  configYaml: string,
  extra: string[] = [],
): Promise<PrometheusProcess> {
  requirePrometheus();
  const port = await freePort();
  const dataDir = join(dir, "data");
  mkdirSync(dataDir, { recursive: true });
  const configFile = join(dir, "prometheus.yml");
  writeFileSync(configFile, configYaml);
  return run("prometheus", PROMETHEUS, port, [
    `--config.file=${configFile}`,
    `--storage.tsdb.path=${dataDir}`,
    `--web.listen-address=127.0.0.1:${port}`,
    // Backfilled history is months old; the default 15 d retention would delete it at start.
    "--storage.tsdb.retention.time=100y",
    ...extra,
  ]);
}

/** Starts Alertmanager (no cluster) on `dir` with `configYaml` until ready. */
export async function startAlertmanager(dir: string, configYaml: string): Promise<PrometheusProcess> {
  if (!existsSync(ALERTMANAGER)) {
    throw new Error(`${ALERTMANAGER} is missing: run \`npm run setup\` (installs Debian's prometheus-alertmanager)`);
  }
  const port = await freePort();
  mkdirSync(join(dir, "am-data"), { recursive: true });
  const configFile = join(dir, "alertmanager.yml");
  writeFileSync(configFile, configYaml);
  return run("alertmanager", ALERTMANAGER, port, [
    `--config.file=${configFile}`,
    `--storage.path=${join(dir, "am-data")}`,
    `--web.listen-address=127.0.0.1:${port}`,
    // A single instance: no gossip port to collide with parallel tests.
    "--cluster.listen-address=",
  ]);
}

async function run(name: string, bin: string, port: number, args: string[]): Promise<PrometheusProcess> {
  let out = "";
  const child: ChildProcess = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"] });
  child.stdout?.on("data", (d: Buffer) => {
    out += d.toString();
  });
  child.stderr?.on("data", (d: Buffer) => {
    out += d.toString();
  });
  const url = `http://127.0.0.1:${port}`;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(timer);
    }
  };
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${name} exited ${child.exitCode}:\n${out.slice(-2000)}`);
    try {
      const res = await fetch(`${url}/-/ready`);
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`${name} not ready within 60 s:\n${out.slice(-2000)}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return { url, output: () => out, stop };
}
