/**
 * `chatops.slack.allowedChannels` takes channel ids only, and `chatops.slack.teamId` a team id
 * (design §5b, §8): a channel name can be changed by the channel's members, so `config:check`
 * (and the worker's own validation, the same schema) refuses one, naming the entry; the agent's
 * `qstash.maxAgeSeconds` defaults to 86400.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { validateAgentConfig, validateWorkerConfig } from "../../shared/config.ts";

const root = join(import.meta.dirname, "../..");

function workerConfig(slack: Record<string, unknown>) {
  return {
    agent: { url: "http://127.0.0.1:8788", transport: "direct" },
    targets: { gw: { sides: { primary: { matchers: ['side="a"'] }, secondary: { matchers: ['side="b"'] } } } },
    chatops: { slack: { allowedUsers: ["UALICE"], ...slack } },
  };
}

function check(config: unknown) {
  const dir = mkdtempSync(join(tmpdir(), "turnout-slack-ids-"));
  writeFileSync(join(dir, "turnout.config.json"), JSON.stringify(config));
  writeFileSync(join(dir, "wrangler.toml"), "[triggers]\ncrons = []\n");
  return spawnSync(process.execPath, ["scripts/config-check.ts", join(dir, "turnout.config.json")], {
    encoding: "utf8",
    cwd: root,
  });
}

describe("Slack ids in the worker config", () => {
  it("config:check refuses a channel name in allowedChannels, naming the entry", () => {
    const r = check(workerConfig({ allowedChannels: ["C012AB3CD", "#ops"] }));
    expect(r.status).toBe(1);
    expect(r.stdout + r.stderr).toContain("chatops.slack.allowedChannels.1");
    expect(r.stdout + r.stderr).toContain("channel names are not accepted");
  });

  it("accepts channel ids and a team id; refuses a malformed team id", () => {
    expect(check(workerConfig({ allowedChannels: ["C012AB3CD", "G0PRIVATE"], teamId: "T012AB3CD" })).status).toBe(0);
    for (const name of ["ops", "incident-room", "c012ab3cd"]) {
      expect(validateWorkerConfig(workerConfig({ allowedChannels: [name] })).ok, name).toBe(false);
    }
    const team = validateWorkerConfig(workerConfig({ teamId: "example.slack.com" }));
    expect(team.ok ? [] : team.problems.map((p) => p.path)).toEqual(["chatops.slack.teamId"]);
  });

  it("the agent's qstash.maxAgeSeconds defaults to 86400 and is at least the direct path's 300 s", () => {
    const base = { reportUrl: "http://127.0.0.1:8787/v1/agent/reports", targets: {} };
    const ok = validateAgentConfig({ ...base, qstash: { url: "https://agent.example/v1/actions" } });
    expect(ok.ok && ok.value.qstash?.maxAgeSeconds).toBe(86_400);
    expect(validateAgentConfig({ ...base, qstash: { maxAgeSeconds: 60 } }).ok).toBe(false);
  });
});
