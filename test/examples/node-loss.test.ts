/**
 * examples/node-loss: the Prometheus rules and the Alertmanager route for node-fence are checked by
 * the real tools (Debian's prometheus `promtool` and prometheus-alertmanager `amtool`): the rules
 * parse and their unit test (node-loss.test.yml: a zone losing all its nodes) passes, the
 * Alertmanager config is valid and routes zone-labelled node-loss alerts to turnout; and those
 * alerts' labels select the right side of the dc-nodes target in turnout.config.json.
 */
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { validateWorkerConfig } from "../../shared/config.ts";
import { matchesAll, parseMatcher } from "../../shared/matchers.ts";
import { requireBinary } from "../support/monitoring-process.ts";

const run = promisify(execFile);
const root = join(import.meta.dirname, "../..");
const dir = join(root, "examples/node-loss");

/** The Debian package each checker comes from, for requireBinary's message. */
const PACKAGES = { promtool: "prometheus", amtool: "prometheus-alertmanager" } as const;

async function tool(binary: keyof typeof PACKAGES, ...args: string[]): Promise<string> {
  const path = requireBinary(`/usr/bin/${binary}`, PACKAGES[binary]);
  const { stdout, stderr } = await run(path, args, { cwd: dir, timeout: 20_000 });
  return `${stdout}${stderr}`;
}

describe("examples/node-loss", () => {
  it("promtool accepts the rules and their unit test passes", async () => {
    expect(await tool("promtool", "check", "rules", "prometheus-rules.yml")).toContain("SUCCESS: 3 rules found");
    expect(await tool("promtool", "test", "rules", "node-loss.test.yml")).toContain("SUCCESS");
  });

  it("amtool accepts the Alertmanager config and routes zone-labelled node-loss alerts to turnout", async () => {
    expect(await tool("amtool", "check-config", "alertmanager.yml")).toContain("SUCCESS");
    const route = (...labels: string[]) =>
      tool("amtool", "config", "routes", "test", "--config.file=alertmanager.yml", ...labels).then((o) =>
        o.split("\n")[0]?.trim(),
      );
    expect(await route("alertname=KubeNodeNotReady", "zone=dc-1")).toBe("turnout");
    expect(await route("alertname=KubeNodeUnreachable", "zone=cloud-a", "node=cloud-a-1")).toBe("turnout");
    // Without a zone the worker could not tell the side: not routed to turnout.
    expect(await route("alertname=KubeNodeNotReady", "node=dc-1-1")).toBe("default");
  });

  it("the zone alerts select dc-nodes' sides in the default worker config", () => {
    const config = validateWorkerConfig(JSON.parse(readFileSync(join(root, "turnout.config.json"), "utf8")));
    if (!config.ok) throw new Error(JSON.stringify(config.problems));
    const target = config.value.targets["dc-nodes"];
    expect(target?.policy.approval).toBe("required");
    const side = (labels: Record<string, string>) =>
      (["primary", "secondary"] as const).filter((s) =>
        (target?.sides[s].anyOf ?? []).some((list) => matchesAll(list.map(parseMatcher), labels)),
      );
    expect(side({ alertname: "KubeNodeNotReady", zone: "dc-1", scope: "zone", severity: "critical" })).toEqual([
      "primary",
    ]);
    expect(side({ alertname: "KubeNodeUnreachable", zone: "cloud-a", node: "cloud-a-2" })).toEqual(["secondary"]);
    expect(side({ host: "dc-1-2", service: "", state: "DOWN" })).toEqual(["primary"]);
    expect(side({ alertname: "KubeNodeNotReady", node: "dc-1-1" })).toEqual([]);
  });
});
