/**
 * A real Prometheus 2 (Debian `prometheus`) for tests: 127.0.0.1 on a random port, 500 ms scrape
 * and evaluation intervals, its own TSDB in a temp dir, the given rule files (the examples as
 * shipped) and scrape jobs, alerts sent to the given Alertmanagers.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
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
  let server: ServerProcess | undefined;
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
      ownedDir: dir,
    });
    // Ready is not scraping: Prometheus applies discovered targets on a 5 s throttle, so the
    // first scrape comes seconds after /-/ready. Wait for it (and a rule evaluation), or a test's
    // first state change would be measured with that start-up delay in it.
    const expected = options.scrapeConfigs.reduce((n, c) => n + staticTargets(c), 0);
    const deadline = Date.now() + 20_000;
    while (!(await scrapedOnce(url, expected, options.ruleFiles.length > 0))) {
      if (Date.now() > deadline) throw new Error(`prometheus did not scrape its ${expected} targets within 20 s`);
      await new Promise((r) => setTimeout(r, 100));
    }
  } catch (err) {
    // Started but never scraping: stopping removes the dir (spawnServer did if it never started).
    await server?.stop();
    throw err;
  }
  const started = server;
  return {
    url,
    process: started,
    async alerts() {
      const res = await fetch(`${url}/api/v1/alerts`);
      const body = (await res.json()) as {
        data: { alerts: { labels: Record<string, string>; state: string; activeAt: string }[] };
      };
      return body.data.alerts;
    },
    stop: started.stop,
  };
}

/** How many targets the `static_configs` of one scrape config list. */
function staticTargets(config: Record<string, unknown>): number {
  const statics = Array.isArray(config.static_configs) ? (config.static_configs as { targets?: unknown[] }[]) : [];
  return statics.reduce((n, s) => n + (s.targets?.length ?? 0), 0);
}

/** True once `expected` targets have each been scraped and (with rules) a rule group evaluated. */
async function scrapedOnce(url: string, expected: number, rules: boolean): Promise<boolean> {
  try {
    const targets = (await (await fetch(`${url}/api/v1/targets`)).json()) as {
      data: { activeTargets: { health: string }[] };
    };
    const active = targets.data.activeTargets;
    if (active.length < expected || active.some((t) => t.health === "unknown")) return false;
    if (!rules) return true;
    const groups = (await (await fetch(`${url}/api/v1/rules`)).json()) as {
      data: { groups: { lastEvaluation: string }[] };
    };
    return groups.data.groups.length > 0 && groups.data.groups.every((g) => !g.lastEvaluation.startsWith("0001"));
  } catch {
    return false;
  }
}
