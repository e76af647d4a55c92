/**
 * The shipped monitoring examples (examples/) as the real-monitoring test and demo run them:
 * Alertmanager's config with only the URL and token placeholders filled in, and Prometheus
 * evaluating examples/prometheus-rules.yml over the blackbox-style gateway probe job the rules
 * describe. One copy, so the demo cannot drift from what the test proves.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { type PrometheusServer, startPrometheus } from "./prometheus.ts";

const root = join(import.meta.dirname, "../..");

/** The placeholder every example uses for the worker's base URL. */
export const PLACEHOLDER_URL = "https://turnout.example.workers.dev";
/** Where examples/alertmanager.yml reads the worker's bearer token from. */
export const PLACEHOLDER_CREDENTIALS = "/etc/alertmanager/secrets/turnout-token";

/** The text of `examples/<path>` as shipped. */
export const example = (path: string) => readFileSync(join(root, "examples", path), "utf8");

/** examples/alertmanager.yml delivering to `url` instead of the worker's, with the token read from `tokenFile`. */
export function exampleAlertmanagerConfig(url: string, tokenFile: string): string {
  return example("alertmanager.yml").replaceAll(PLACEHOLDER_URL, url).replaceAll(PLACEHOLDER_CREDENTIALS, tokenFile);
}

export interface GatewayPrometheusOptions {
  /** The gateways to probe (`gateway` label of each series and alert). */
  gateways: string[];
  /** `host:port` of each Alertmanager to alert. */
  alertmanagers: string[];
  /** `host:port` of the probe exporter (test/support/probe-exporter.ts). */
  exporterAddress: string;
}

/** Starts Prometheus with examples/prometheus-rules.yml probing `gateways` through the exporter. */
export function startGatewayPrometheus(options: GatewayPrometheusOptions): Promise<PrometheusServer> {
  return startPrometheus({
    ruleFiles: [join(root, "examples/prometheus-rules.yml")],
    alertmanagers: options.alertmanagers,
    scrapeConfigs: [
      {
        // A blackbox exporter job with the relabelling examples/prometheus-rules.yml describes.
        job_name: "egress-gateway",
        metrics_path: "/probe",
        params: { module: ["icmp"] },
        static_configs: [{ targets: options.gateways }],
        relabel_configs: [
          { source_labels: ["__address__"], target_label: "__param_target" },
          { source_labels: ["__param_target"], target_label: "instance" },
          { source_labels: ["__param_target"], target_label: "gateway" },
          { target_label: "__address__", replacement: options.exporterAddress },
        ],
      },
    ],
  });
}
