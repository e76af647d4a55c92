/**
 * `npm run config:check` compares a worker config's drills with wrangler.toml's cron triggers
 * (design §5b): a drill whose cron is not a trigger never runs (exit 1, named by path); a trigger
 * no drill uses is a warning; the repo's own config and wrangler.toml agree.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const root = join(import.meta.dirname, "../..");
const run = (...args: string[]) =>
  spawnSync(process.execPath, ["scripts/config-check.ts", ...args], { encoding: "utf8", cwd: root });

const side = (s: string) => ({ matchers: [`side="${s}"`] });
function workerConfig(drills: Record<string, string>) {
  return {
    agent: { url: "http://127.0.0.1:8788", transport: "direct" },
    targets: Object.fromEntries(
      Object.entries(drills).map(([name, cron]) => [
        name,
        { sides: { primary: side("primary"), secondary: side("secondary") }, drill: { cron } },
      ]),
    ),
  };
}

function dirWith(config: unknown, toml?: string): string {
  const dir = mkdtempSync(join(tmpdir(), "turnout-crons-"));
  writeFileSync(join(dir, "turnout.config.json"), JSON.stringify(config));
  if (toml !== undefined) writeFileSync(join(dir, "wrangler.toml"), toml);
  return dir;
}

describe("config:check drill crons against wrangler.toml", () => {
  it("the repo's turnout.config.json drills are all wrangler.toml triggers", () => {
    const r = run("turnout.config.json");
    expect(r.stdout).toBe("turnout.config.json: valid worker config\n");
    expect(r.status).toBe(0);
  });

  it("fails naming every drill whose cron is not a trigger, and warns about triggers no drill uses", () => {
    const toml = [
      'name = "x"',
      "[vars]",
      'crons = ["9 9 * * *"] # not the triggers table',
      "",
      "[triggers] ",
      "# weekly and nightly",
      "crons = [",
      '  "0 3 * * 1", # weekly',
      "  '15 2 * * *',",
      "]",
      "[dev]",
      "port = 8787",
    ].join("\n");
    const dir = dirWith(workerConfig({ weekly: "0  3 * * 1", nightly: "30 4 * * *", other: "9 9 * * *" }), toml);
    const r = run(join(dir, "turnout.config.json"));
    expect(r.status).toBe(1);
    const lines = r.stdout.trim().split("\n");
    expect(lines[0]).toMatch(/invalid worker config, 2 problems$/);
    expect(lines).toContainEqual(expect.stringMatching(/^targets\.nightly\.drill\.cron: "30 4 \* \* \*" is not among/));
    expect(lines).toContainEqual(expect.stringMatching(/^targets\.other\.drill\.cron: "9 9 \* \* \*" is not among/));
    // Whitespace inside a cron is not a difference.
    expect(r.stdout).not.toContain("targets.weekly");
    expect(lines).toContainEqual(expect.stringMatching(/^warning: .*"15 2 \* \* \*" starts no drill/));
  });

  it("passes with a warning when a trigger runs no drill", () => {
    const dir = dirWith(workerConfig({ weekly: "0 3 * * 1" }), '[triggers]\ncrons = ["0 3 * * 1", "*/5 * * * *"]\n');
    const r = run(join(dir, "turnout.config.json"));
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("valid worker config");
    expect(r.stdout).toMatch(/warning: .*"\*\/5 \* \* \* \*" starts no drill/);
  });

  it("reads --wrangler <file> instead of the one beside the config, and treats a missing [triggers] as no crons", () => {
    const dir = dirWith(workerConfig({ weekly: "0 3 * * 1" }), '[triggers]\ncrons = ["0 3 * * 1"]\n');
    const other = join(dir, "other.toml");
    writeFileSync(other, 'name = "x"\n');
    const r = run(join(dir, "turnout.config.json"), "--wrangler", other);
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(
      /targets\.weekly\.drill\.cron: "0 3 \* \* 1" is not among the \[triggers\] crons of .*other\.toml/,
    );
    const missing = run(join(dir, "turnout.config.json"), "--wrangler", join(dir, "absent.toml"));
    expect(missing.status).toBe(1);
    expect(missing.stdout).toMatch(/\(wrangler\): cannot read/);
  });

  it("without a wrangler.toml beside the config, says the crons were not checked", () => {
    const dir = dirWith(workerConfig({ weekly: "0 3 * * 1" }));
    const r = run(join(dir, "turnout.config.json"));
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(
      /warning: no wrangler\.toml next to .*: drill crons not checked \(pass --wrangler <file>\)/,
    );
  });
});
