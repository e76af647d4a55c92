/**
 * npm run docs:config (writes) / npm run docs:check (checks, writes nothing)
 *
 * Generates, from the zod schemas of shared/config.ts, so the reference can never drift:
 *   - docs/configuration.md: every key path of both config files with its type, allowed values,
 *     default and whether it is required, plus a description from docs/config-descriptions.json;
 *   - schema/turnout.config.schema.json and schema/agent.config.schema.json: JSON Schema (zod 4's
 *     `z.toJSONSchema`, input side, so defaulted keys are optional), with the same descriptions,
 *     which turnout.config.json and agent-a/agent-b.config.json name in "$schema" for editors.
 *
 * The schemas are walked as the JSON Schema zod emits (a documented format, unlike zod's internal
 * definitions). Descriptions live apart from shared/config.ts, keyed by path, because several
 * people edit that file at once. Generation fails, listing them, when a key path has no
 * description; a description of a path the schemas lack is a warning. `--check` also fails when
 * a generated file differs from what is committed. Exit 0 when all is well, 1 otherwise.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { z } from "zod";
import { AgentConfigSchema, WorkerConfigSchema } from "../shared/config.ts";

const root = join(import.meta.dirname, "..");
const DESCRIPTIONS = join(root, "docs/config-descriptions.json");

type Json = Record<string, unknown>;

interface ConfigFile {
  id: "worker" | "agent";
  title: string;
  file: string;
  where: string;
  /** Markdown shown before the table: an example. */
  example: string;
  schemaFile: string;
  schema: z.ZodType;
}

const CONFIGS: ConfigFile[] = [
  {
    id: "worker",
    title: "Worker configuration",
    file: "turnout.config.json",
    where:
      '`turnout.config.json`, bundled at build, or the `TURNOUT_CONFIG` variable (JSON), which wins. A bad config never crashes the worker: `GET /healthz` answers `{ok: false, config: "invalid", errors}`.',
    example: [
      "```json",
      '{ "$schema": "./schema/turnout.config.schema.json",',
      '  "agent": { "url": "http://127.0.0.1:8788", "transport": "direct" },',
      '  "targets": {',
      '    "egress-gw": {',
      '      "sides": {',
      '        "primary":   { "matchers": ["alertname=\\"GatewayDown\\"", "gateway=\\"10.116.0.4\\""] },',
      '        "secondary": { "matchers": ["alertname=\\"GatewayDown\\"", "gateway=\\"10.116.0.12\\""] } },',
      '      "policy": { "holdSeconds": 30, "quorum": 1, "approval": "auto", "failback": "manual" },',
      '      "drill": { "cron": "0 3 * * 1" } } } }',
      "```",
      "",
      "The repo's [`turnout.config.json`](../turnout.config.json) is a complete example: the targets `npm start` runs.",
    ].join("\n"),
    schemaFile: "schema/turnout.config.schema.json",
    schema: WorkerConfigSchema,
  },
  {
    id: "agent",
    title: "Agent configuration",
    file: "agent-a.config.json",
    where:
      "`--config <file>` or `TURNOUT_AGENT_CONFIG`, JSON or YAML. Secrets come from environment variables (the shared `TURNOUT_AGENT_SECRET`, and those a target names in `secretEnv` / `tokenEnv`). On a bad config the agent exits 1 and prints every problem as `path: message`.",
    example:
      "The repo's [`agent-a.config.json`](../agent-a.config.json) is a complete example with a target of every kind, which `npm start` runs in the sandbox as `agent-a` beside [`agent-b.config.json`](../agent-b.config.json) (the secondary sides of the two-cluster targets; design §11.1). The executors' steps are in [executors.md](executors.md) and [node-fence.md](node-fence.md).",
    schemaFile: "schema/agent.config.schema.json",
    schema: AgentConfigSchema,
  },
];

/** One documented key: its path as people write it, and the JSON Schema node(s) it stands for. */
interface Row {
  path: string;
  /** The table this key belongs to: the config, or one variant of a union (a target kind). */
  section: string;
  node: Json;
  required: boolean;
}

const isObj = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);

/** The property every variant of a union fixes with `const` (`kind`, `type`), if any. */
function discriminator(variants: Json[]): string | undefined {
  const first = variants[0];
  if (!first || !isObj(first.properties)) return undefined;
  return Object.keys(first.properties).find((key) =>
    variants.every((v) => isObj(v.properties) && isObj(v.properties[key]) && v.properties[key].const !== undefined),
  );
}

function variantsOf(node: Json): Json[] | undefined {
  const list = node.oneOf ?? node.anyOf;
  return Array.isArray(list) && list.every(isObj) ? (list as Json[]) : undefined;
}

/**
 * Every key path under `node`. Records are `<name>`; list items `[]`; a union's variants
 * `(<discriminator value>)`; a `primary`/`secondary` pair with one schema is written once as
 * `<side>`. `visit` sees every real node with the path it is documented under.
 */
function walk(node: Json, path: string, section: string, required: boolean, visit: (row: Row) => void): void {
  if (path !== "") visit({ path, section, node, required });
  const variants = variantsOf(node);
  if (variants) {
    const key = discriminator(variants);
    for (const v of variants) {
      const props = isObj(v.properties) ? v.properties : {};
      const label = key && isObj(props[key]) ? String(props[key].const) : "";
      const vpath = label ? `${path}(${label})` : path;
      // A union inside a variant (a dns-flip target's provider) stays in the variant's table.
      walk(v, "", section.includes("(") ? section : vpath, false, (row) =>
        visit({ ...row, path: `${vpath}${row.path.startsWith("[") ? "" : "."}${row.path}` }),
      );
    }
    return;
  }
  if (isObj(node.properties)) {
    const props = node.properties;
    const req = new Set(Array.isArray(node.required) ? node.required.map(String) : []);
    const keys = Object.keys(props);
    const sidePair =
      keys.length === 2 &&
      keys.includes("primary") &&
      keys.includes("secondary") &&
      JSON.stringify(props.primary) === JSON.stringify(props.secondary);
    for (const key of keys) {
      const child = props[key];
      if (!isObj(child)) continue;
      const name = sidePair ? "<side>" : key;
      walk(child, path ? `${path}.${name}` : name, section, req.has(key), visit);
    }
  }
  if (isObj(node.additionalProperties)) {
    walk(node.additionalProperties, `${path}.<name>`, section, true, visit);
  }
  if (isObj(node.items) && (isObj(node.items.properties) || variantsOf(node.items))) {
    walk(node.items, "", section, true, (row) => visit({ ...row, path: `${path}[]${row.path ? `.${row.path}` : ""}` }));
  }
}

const code = (s: string) => `\`${s.replaceAll("|", "\\|")}\``;

function bounds(node: Json, noun: string): string {
  const parts: string[] = [];
  const safe = (n: unknown) => typeof n === "number" && Math.abs(n) < Number.MAX_SAFE_INTEGER;
  if (safe(node.minimum)) parts.push(`≥ ${node.minimum}`);
  if (safe(node.exclusiveMinimum)) parts.push(`> ${node.exclusiveMinimum}`);
  if (safe(node.maximum)) parts.push(`≤ ${node.maximum}`);
  if (safe(node.exclusiveMaximum)) parts.push(`< ${node.exclusiveMaximum}`);
  return parts.length ? `${noun} ${parts.join(", ")}` : noun;
}

/** The type column: the type, its allowed values and constraints. */
function typeText(node: Json): string {
  if (node.const !== undefined) return code(JSON.stringify(node.const));
  if (Array.isArray(node.enum)) return node.enum.map((v) => code(JSON.stringify(v))).join(" \\| ");
  const variants = variantsOf(node);
  if (variants) {
    const key = discriminator(variants);
    if (key) {
      const values = variants.map((v) =>
        code(JSON.stringify((v.properties as Json)[key] && ((v.properties as Json)[key] as Json).const)),
      );
      return `one of, by ${code(key)}: ${values.join(", ")}`;
    }
    return variants.map(typeText).join(" or ");
  }
  switch (node.type) {
    case "string": {
      if (node.format === "uri") return "URL";
      const parts = ["string"];
      if (typeof node.pattern === "string") parts.push(`matching ${code(node.pattern)}`);
      else if (typeof node.minLength === "number" && node.minLength > 0) parts.push("(not empty)");
      return parts.join(" ");
    }
    case "integer":
      return bounds(node, "integer");
    case "number":
      return bounds(node, "number");
    case "boolean":
      return "boolean";
    case "array": {
      const item = isObj(node.items) ? node.items : {};
      const min = typeof node.minItems === "number" ? node.minItems : 0;
      const inner = isObj(item.properties) ? "objects" : typeText(item);
      return `${min === 1 ? "non-empty " : ""}list of ${inner}${min > 1 ? ` (at least ${min})` : ""}`;
    }
    case "object":
      if (isObj(node.additionalProperties)) {
        const names = isObj(node.propertyNames) && typeof node.propertyNames.pattern === "string";
        return `map: ${names ? `name matching ${code(String((node.propertyNames as Json).pattern))}` : "name"} → object`;
      }
      return "object";
    default:
      return node.type === undefined ? "any" : String(node.type);
  }
}

function defaultText(row: Row): string {
  if (row.node.default !== undefined) {
    const d = row.node.default;
    return isObj(d) && Object.keys(d).length === 0 ? "(its keys' defaults)" : code(JSON.stringify(d));
  }
  return row.required ? "**required**" : "—";
}

/** Markdown-safe table cell: no pipes or newlines. */
const cell = (s: string) => s.replaceAll("\n", " ").replace(/(?<!\\)\|/g, "\\|");

interface Generated {
  files: Map<string, string>;
  problems: string[];
  warnings: string[];
}

/** Builds every generated file from the schemas and descriptions; `problems` lists what blocks it. */
export function generate(descriptions: Record<string, Record<string, string>>): Generated {
  const problems: string[] = [];
  const warnings: string[] = [];
  const files = new Map<string, string>();
  const md: string[] = [
    "# Configuration reference",
    "",
    "<!-- GENERATED by scripts/gen-config-docs.ts from the zod schemas in shared/config.ts and the",
    "     descriptions in docs/config-descriptions.json. Do not edit: change those and run",
    "     `npm run docs:config`; `npm run docs:check` (CI) fails when this file is stale. -->",
    "",
    "Both config files are validated by the same zod schemas the programs use; every problem is",
    "reported as `path: message`, and `npm run config:check -- <file>…` runs that validation from the",
    'shell. Unknown keys are errors. Editors that read `"$schema"` complete and check both files',
    "against the JSON Schemas in [`schema/`](../schema/) (in a YAML agent config, a first line",
    "`# yaml-language-server: $schema=./schema/agent.config.schema.json` does the same).",
    "",
    "Paths: `<name>` is any target name, `<side>` stands for both `primary` and `secondary`, `[]` is",
    "each item of a list, and `(route-swap)` marks the keys of one variant (a target `kind`, a DNS",
    "provider `type`).",
    "",
  ];
  for (const config of CONFIGS) {
    const json = z.toJSONSchema(config.schema, { io: "input", target: "draft-2020-12" }) as Json;
    const described = descriptions[config.id] ?? {};
    const rows: Row[] = [];
    const seen = new Set<string>();
    walk(json, "", config.id, true, (row) => {
      // Every real node gets the description (both sides of a <side> pair, for editors).
      const text = described[row.path];
      if (text !== undefined) row.node.description = text;
      if (seen.has(row.path)) return;
      seen.add(row.path);
      rows.push(row);
    });
    json.title = `turnout ${config.id} configuration (${config.file})`;
    json.description = `Generated from shared/config.ts by scripts/gen-config-docs.ts; see docs/configuration.md.`;
    for (const row of rows) {
      if (!described[row.path]?.trim())
        problems.push(`${config.id}: ${row.path}: no description in docs/config-descriptions.json`);
    }
    for (const path of Object.keys(described)) {
      // A warning, not a failure: descriptions may arrive before their key (design §8 names keys
      // that other branches are adding), and a mistyped path still fails as an undescribed key.
      if (!seen.has(path))
        warnings.push(`${config.id}: ${path}: described, but not (or no longer) in shared/config.ts`);
    }
    files.set(config.schemaFile, `${JSON.stringify(json, null, 2)}\n`);

    md.push(`## ${config.title} (\`${config.file}\`)`, "", config.where, "", config.example, "");
    md.push(`JSON Schema: [\`${config.schemaFile}\`](../${config.schemaFile}).`, "");
    const sections = [...new Set(rows.map((r) => r.section))];
    for (const section of sections) {
      if (section !== config.id) {
        md.push(`### \`${section}\``, "");
      }
      md.push("| key | type | default | description |", "| --- | --- | --- | --- |");
      for (const row of rows.filter((r) => r.section === section)) {
        md.push(
          `| ${code(row.path)} | ${cell(typeText(row.node))} | ${cell(defaultText(row))} | ${cell(described[row.path] ?? "")} |`,
        );
      }
      md.push("");
    }
  }
  files.set("docs/configuration.md", `${md.join("\n").trimEnd()}\n`);
  return { files, problems, warnings };
}

function main(): number {
  const check = process.argv.includes("--check");
  const descriptions = JSON.parse(readFileSync(DESCRIPTIONS, "utf8")) as Record<string, Record<string, string>>;
  const { files, problems, warnings } = generate(descriptions);
  for (const w of warnings) console.warn(`config docs: warning: ${w}`);
  if (problems.length > 0) {
    console.error(`config docs: ${problems.length} problem(s):`);
    for (const p of problems) console.error(`  ${p}`);
    console.error("add or fix the descriptions in docs/config-descriptions.json, then run `npm run docs:config`");
    return 1;
  }
  const stale: string[] = [];
  for (const [file, content] of files) {
    const path = join(root, file);
    const current = existsSync(path) ? readFileSync(path, "utf8") : null;
    if (current === content) continue;
    if (check) {
      stale.push(file);
    } else {
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, content);
      console.log(`config docs: wrote ${relative(root, path)}`);
    }
  }
  if (stale.length > 0) {
    console.error(`config docs: stale (shared/config.ts or the descriptions changed): ${stale.join(", ")}`);
    console.error("run `npm run docs:config` and commit the result");
    return 1;
  }
  if (check) console.log(`config docs: ${[...files.keys()].join(", ")} up to date`);
  return 0;
}

if (import.meta.main) process.exit(main());
