/**
 * A real Prometheus 2 (Debian `prometheus`) for tests: 127.0.0.1 on a random port, 500 ms scrape
 * and evaluation intervals, its own TSDB in a temp dir, the given rule files (the examples as
 * shipped) and scrape jobs, alerts sent to the given Alertmanagers.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stringify } from "yaml";
import { freePorts } from "./free-port.ts";
import { answers, requireBinary, type ServerProcess, spawnServer } from "./monitoring-process.ts";

export interface PrometheusOptions {
  /** Rule files, by path (loaded as they are). */
  ruleFiles: readonly string[];
  /** `scrape_configs` entries (the objects of prometheus.yml). */
  scrapeConfigs: readonly Record<string, unknown>[];
  /** Alertmanagers as `host:port`. */
  alertmanagers: readonly string[];
}

export interface PrometheusServer {
  url: string;
  process: ServerProcess;
  /** Active alerts (`GET /api/v1/alerts`). */
  alerts(): Promise<{ labels: Record<string, string>; state: string; activeAt: string }[]>;
  stop(): Promise<void>;
}

/** Starts Prometheus and resolves once `/-/ready` answers. */
export async function startPrometheus(options: PrometheusOptions): Promise<PrometheusServer> {
  const binary = requireBinary("/usr/bin/prometheus", "prometheus");
  const dir = mkdtempSync(join(tmpdir(), "turnout-prometheus-"));
  const [port = 0] = await freePorts(1);
  const config = {
    global: { scrape_interval: "500ms", evaluation_interval: "500ms", scrape_timeout: "400ms" },
    rule_files: options.ruleFiles,
    alerting: { alertmanagers: [{ static_configs: [{ targets: options.alertmanagers }] }] },
    scrape_configs: options.scrapeConfigs,
  };
  const configFile = join(dir, "prometheus.yml");
  writeFileSync(configFile, stringify(config));
  const url = `http://127.0.0.1:${port}`;
  let server: ServerProcess;
  try {
    server = await spawnServer({
      name: "prometheus",
      command: binary,
      args: [
        `--config.file=${configFile}`,
        `--storage.tsdb.path=${join(dir, "data")}`,
        `--web.listen-address=127.0.0.1:${port}`,
        "--log.level=warn",
      ],
      cwd: dir,
      ready: () => answers(`${url}/-/ready`),
    });
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    url,
    process: server,
    async alerts() {
      const res = await fetch(`${url}/api/v1/alerts`);
      const body = (await res.json()) as {
        data: { alerts: { labels: Record<string, string>; state: string; activeAt: string }[] };
      };
      return body.data.alerts;
    },
    async stop() {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
