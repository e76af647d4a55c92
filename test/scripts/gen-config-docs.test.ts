/**
 * `npm run docs:check` (scripts/gen-config-docs.ts --check): docs/configuration.md and the JSON
 * Schemas can never drift from shared/config.ts. Each failing case runs the real script on a copy
 * of the files it reads, with shared/config.ts changed there.
 */
import { spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Ajv2020 } from "ajv/dist/2020.js";
import addFormats from "ajv-formats";
import { afterEach, describe, expect, it } from "vitest";

const root = join(import.meta.dirname, "../..");
const copies: string[] = [];

/** A copy of what the generator reads and writes, with node_modules linked. */
function copyRepo(): string {
  const dir = mkdtempSync(join(tmpdir(), "turnout-docs-"));
  copies.push(dir);
  for (const path of ["package.json", "shared", "scripts/gen-config-docs.ts", "docs", "schema"]) {
    cpSync(join(root, path), join(dir, path), { recursive: true });
  }
  symlinkSync(join(root, "node_modules"), join(dir, "node_modules"), "dir");
  return dir;
}

function check(dir: string, ...args: string[]) {
  return spawnSync(process.execPath, [join(dir, "scripts/gen-config-docs.ts"), ...args], {
    cwd: dir,
    encoding: "utf8",
  });
}

/** Adds `key` to the worker's policy schema in the copy. */
function addPolicyKey(dir: string, key: string): void {
  const file = join(dir, "shared/config.ts");
  const source = readFileSync(file, "utf8");
  const anchor = "    holdSeconds: seconds(30),\n";
  expect(source).toContain(anchor);
  writeFileSync(file, source.replace(anchor, `${anchor}    ${key}: seconds(7),\n`));
}

afterEach(() => {
  for (const dir of copies.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe("npm run docs:check", () => {
  it("passes on the repo as committed", () => {
    const r = check(root, "--check");
    expect(r.stderr).not.toContain("no description");
    expect(r.stdout).toContain("up to date");
    expect(r.status).toBe(0);
  });

  it("fails naming a key added to the schema without a description", () => {
    const dir = copyRepo();
    addPolicyKey(dir, "graceSeconds");
    const r = check(dir, "--check");
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(
      "worker: targets.<name>.policy.graceSeconds: no description in docs/config-descriptions.json",
    );
    // Writing is refused the same way: nothing half-generated.
    expect(check(dir).status).toBe(1);
    expect(readFileSync(join(dir, "docs/configuration.md"), "utf8")).not.toContain("graceSeconds");
  });

  it("fails when a described key was added but the docs were not regenerated, and passes once they are", () => {
    const dir = copyRepo();
    addPolicyKey(dir, "graceSeconds");
    const descriptionsFile = join(dir, "docs/config-descriptions.json");
    const descriptions = JSON.parse(readFileSync(descriptionsFile, "utf8")) as Record<string, Record<string, string>>;
    descriptions.worker = { ...descriptions.worker, "targets.<name>.policy.graceSeconds": "A test key." };
    writeFileSync(descriptionsFile, JSON.stringify(descriptions, null, 2));
    const stale = check(dir, "--check");
    expect(stale.status).toBe(1);
    expect(stale.stderr).toContain("stale");
    expect(stale.stderr).toContain("docs/configuration.md");
    expect(stale.stderr).toContain("schema/turnout.config.schema.json");
    expect(stale.stderr).not.toContain("schema/agent.config.schema.json");

    expect(check(dir).status).toBe(0);
    expect(check(dir, "--check").status).toBe(0);
    expect(readFileSync(join(dir, "docs/configuration.md"), "utf8")).toContain(
      "| `targets.<name>.policy.graceSeconds` | integer ≥ 0 | `7` | A test key. |",
    );
  });

  it("warns about a description of a key the schemas lack (it may be on its way), without failing", () => {
    const dir = copyRepo();
    const descriptionsFile = join(dir, "docs/config-descriptions.json");
    const descriptions = JSON.parse(readFileSync(descriptionsFile, "utf8")) as Record<string, Record<string, string>>;
    descriptions.agent = { ...descriptions.agent, "lease.gone": "Removed." };
    writeFileSync(descriptionsFile, JSON.stringify(descriptions));
    const r = check(dir, "--check");
    expect(r.stderr).toContain(
      "config docs: warning: agent: lease.gone: described, but not (or no longer) in shared/config.ts",
    );
    expect(r.status).toBe(0);
  });
});

describe("the generated JSON Schemas", () => {
  const ajv = new Ajv2020({ allErrors: true, strict: false });
  addFormats.default(ajv);
  const load = (file: string) => JSON.parse(readFileSync(join(root, file), "utf8")) as Record<string, unknown>;

  it("are what the repo's configs name in $schema, and accept them", () => {
    for (const [config, schema] of [
      ["turnout.config.json", "schema/turnout.config.schema.json"],
      ["agent-a.config.json", "schema/agent.config.schema.json"],
      ["agent-b.config.json", "schema/agent.config.schema.json"],
    ] as const) {
      const cfg = load(config);
      expect(cfg.$schema).toBe(`./${schema}`);
      const validate = ajv.compile(load(schema));
      expect(validate(cfg), JSON.stringify(validate.errors)).toBe(true);
    }
  });

  it("reject what the zod schemas reject: an unknown key, a bad enum value", () => {
    const validate = ajv.compile(load("schema/turnout.config.schema.json"));
    const cfg = load("turnout.config.json");
    expect(validate({ ...cfg, surprise: true })).toBe(false);
    const targets = cfg.targets as Record<string, { policy?: object }>;
    const [name, target] = Object.entries(targets)[0] ?? [];
    expect(name).toBeDefined();
    expect(validate({ ...cfg, targets: { [String(name)]: { ...target, policy: { approval: "maybe" } } } })).toBe(false);
  });

  it("carry the descriptions, for editors' hover text", () => {
    const schema = load("schema/turnout.config.schema.json") as {
      properties: { agent: { properties: { url: { description?: string } } } };
    };
    expect(schema.properties.agent.properties.url.description).toMatch(/POST \/v1\/actions/);
  });
});
