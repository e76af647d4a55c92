/**
 * The example files users copy (examples/, issue 20) are valid for the real programs' own
 * checkers, and the alerts the Prometheus rules produce route to the intended target and side
 * under the default turnout.config.json and the shipped fragment. The e2e test
 * test/e2e/monitoring.test.ts runs the same files in the real programs.
 */
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { WorkerConfigSchema } from "../../shared/config.ts";
import { routeLabels } from "../../worker/engine/routing.ts";
import { requireBinary } from "../support/monitoring-process.ts";

const root = join(import.meta.dirname, "../..");
const run = (binary: string, args: string[]) => {
  const r = spawnSync(binary, args, { cwd: root, encoding: "utf8", timeout: 20_000 });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
};
const promtool = () => requireBinary("/usr/bin/promtool", "prometheus");
const ruleTest = join(import.meta.dirname, "prometheus-rules.promtool-test.yml");

describe("examples/", () => {
  it("prometheus-rules.yml (and the node-loss rules beside it) pass promtool check rules", () => {
    const nodeLoss = join(root, "examples/node-loss");
    const extra = readdirSync(nodeLoss)
      .filter((f) => /rules.*\.ya?ml$/.test(f))
      .map((f) => join(nodeLoss, f));
    const r = run(promtool(), ["check", "rules", "examples/prometheus-rules.yml", ...extra]);
    expect(r.output).toContain("Checking examples/prometheus-rules.yml\n  SUCCESS: 4 rules found");
    expect(r.status, r.output).toBe(0);
  });

  it("prometheus-rules.yml gives each alert the labels of its promtool unit test", () => {
    const r = run(promtool(), ["test", "rules", ruleTest]);
    expect(r.status, r.output).toBe(0);
  });

  it("alertmanager.yml passes amtool check-config", () => {
    const r = run(requireBinary("/usr/bin/amtool", "prometheus-alertmanager"), [
      "check-config",
      "examples/alertmanager.yml",
    ]);
    expect(r.status, r.output).toBe(0);
  });

  it("a missing monitoring binary fails naming npm run setup and the Debian package", () => {
    expect(() => requireBinary("/nonexistent/turnout-no-such-monitor", "prometheus-alertmanager")).toThrow(
      /turnout-no-such-monitor is not installed: run `npm run setup` \(installs the Debian package prometheus-alertmanager\)/,
    );
  });

  it.each([
    ["turnout.config.json", JSON.parse(readFileSync(join(root, "turnout.config.json"), "utf8")) as unknown],
    [
      "examples/turnout.fragment.json",
      {
        agent: { url: "http://127.0.0.1:8788" },
        ...(JSON.parse(readFileSync(join(root, "examples/turnout.fragment.json"), "utf8")) as object),
      },
    ],
  ])("%s routes each rule's alert to its target and side", (_name, raw) => {
    const config = WorkerConfigSchema.parse(raw);
    const doc = parse(readFileSync(ruleTest, "utf8")) as {
      tests: { alert_rule_test: { exp_alerts: { exp_labels: Record<string, string> }[] }[] }[];
    };
    const routed = (doc.tests[0]?.alert_rule_test ?? []).flatMap((t) =>
      t.exp_alerts.map((a) => ({ alert: `${a.exp_labels.alertname}`, routes: routeLabels(config, a.exp_labels) })),
    );
    expect(routed).toEqual([
      { alert: "GatewayDown", routes: [{ target: "egress-gw", side: "primary" }] },
      { alert: "BootstrapNodeDown", routes: [{ target: "bootstrap-dns", side: "primary" }] },
      { alert: "GlobalClusterDown", routes: [{ target: "global-dr", side: "primary" }] },
      { alert: "GlobalClusterDown", routes: [{ target: "global-dr", side: "secondary" }] },
    ]);
    // The readiness alert is for people: it must never count as a side down.
    const readiness = (doc.tests[1]?.alert_rule_test ?? []).flatMap((t) => t.exp_alerts);
    expect(readiness.map((a) => a.exp_labels.alertname)).toEqual(["TurnoutTargetNotReady"]);
    expect(readiness.map((a) => routeLabels(config, a.exp_labels))).toEqual([[]]);
  });
});
