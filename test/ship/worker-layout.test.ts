/**
 * The worker is grouped by job (design §11.5) and a folder's files know only what is below them:
 * engine (pure) < agents (dispatch, transports, reports) < target (the Durable Object shell) <
 * http (routes) < simulate (the offline tool). The root holds the entry (`index.ts`) and the three
 * files every shell folder shares: the bindings (`env.ts`), the config loader and the problem
 * type. These tests read the imports themselves, and show that the lint rule guarding the engine
 * fails on a planted import.
 */
import { spawnSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";

const root = resolve(import.meta.dirname, "../..");
const worker = join(root, "worker");

/** Every .ts/.tsx file under `dir`, relative to the repo root. */
function sources(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && /\.tsx?$/.test(e.name))
    .map((e) => relative(root, join(e.parentPath, e.name)));
}

/** The imports of a file that stay at run time (`import type` and `import { type X }`-only are erased). */
function valueImports(file: string): string[] {
  const text = readFileSync(join(root, file), "utf8");
  const out: string[] = [];
  for (const m of text.matchAll(/^import\s+(type\s+)?([^;]*?)\s*from\s*"([^"]+)"/gms)) {
    const [, typeOnly, clause = "", spec = ""] = m;
    if (typeOnly) continue;
    const named = /^\{([^}]*)\}$/.exec(clause.trim());
    if (named?.[1]?.split(",").every((n) => n.trim() === "" || n.trim().startsWith("type "))) continue;
    out.push(spec);
  }
  for (const m of text.matchAll(/^import\s+"([^"]+)"/gm)) out.push(m[1] ?? "");
  return out;
}

/** Every import specifier of a file, type-only ones included. */
function allImports(file: string): string[] {
  const text = readFileSync(join(root, file), "utf8");
  return [...text.matchAll(/^(?:import|export)\s[^;]*?from\s*"([^"]+)"|^import\s+"([^"]+)"/gms)].map(
    (m) => m[1] ?? m[2] ?? "",
  );
}

const LAYERS = ["engine", "agents", "target", "http", "simulate"] as const;
/** The layer of a repo-relative worker path: a folder's index, -1 for the shared root files, 99 for the entry. */
function layerOf(path: string): number {
  const rel = relative("worker", path);
  const folder = rel.split("/")[0] ?? "";
  const i = (LAYERS as readonly string[]).indexOf(folder);
  if (i >= 0) return i;
  return rel === "index.ts" ? 99 : -1;
}

describe("the worker's layout", () => {
  it("has the four folders of design §11.5 and nothing else loose but the entry and its shared files", () => {
    const top = readdirSync(worker, { withFileTypes: true });
    const names = (pick: (e: (typeof top)[number]) => boolean) =>
      top
        .filter(pick)
        .map((e) => e.name)
        .sort();
    expect(names((e) => e.isDirectory())).toEqual(["agents", "engine", "http", "simulate", "target"]);
    expect(names((e) => e.isFile())).toEqual(["config.ts", "env.ts", "index.ts", "problem.ts", "tsconfig.json"]);
  });

  it("keeps the engine pure: no Workers API, Hono, Node, or folder above it, not even for types", () => {
    const offending: string[] = [];
    for (const file of sources(join(worker, "engine"))) {
      for (const spec of allImports(file)) {
        const outside = spec.startsWith(".") ? relative(root, resolve(root, dirname(file), spec)) : spec;
        const ok = outside.startsWith("worker/engine/") || outside.startsWith("shared/") || /^zod/.test(spec);
        if (!ok) offending.push(`${file} imports ${spec}`);
      }
    }
    expect(offending).toEqual([]);
  });

  it("lets each folder import only from folders below it (type-only imports of the bindings aside)", () => {
    const upward: string[] = [];
    for (const file of sources(worker)) {
      const mine = layerOf(file);
      for (const spec of valueImports(file)) {
        if (!spec.startsWith(".")) continue;
        const to = relative(root, resolve(root, dirname(file), spec));
        if (!to.startsWith("worker/")) continue;
        const theirs = layerOf(to);
        const sameFolder = dirname(to).split("/")[1] === dirname(file).split("/")[1];
        // The shared root files sit below every shell folder, but never below the engine.
        const rootFileOk = theirs === -1 && mine !== 0;
        if (!sameFolder && !rootFileOk && theirs >= mine) upward.push(`${file} → ${to}`);
      }
    }
    expect(upward).toEqual([]);
  });

  it("fails `npm run lint` on a planted Hono import in worker/engine/, and passes a clean engine file", () => {
    const lint = (text: string) => {
      const planted = join(worker, "engine", `planted-${randomUUID().slice(0, 8)}.ts`);
      writeFileSync(planted, text);
      try {
        return spawnSync(join(root, "node_modules/.bin/biome"), ["lint", "--error-on-warnings", planted], {
          cwd: root,
          encoding: "utf8",
        });
      } finally {
        rmSync(planted, { force: true });
      }
    };
    const bad = lint('import { Hono } from "hono";\n\nexport const app = new Hono();\n');
    expect(bad.status).toBe(1);
    expect(bad.stdout + bad.stderr).toContain("noRestrictedImports");
    expect(bad.stdout + bad.stderr).toContain("pure decision engine");
    for (const spec of [
      "cloudflare:workers",
      "../target/target-object.ts",
      "../http/app.ts",
      "../agents/transport.ts",
    ]) {
      const r = lint(`import "${spec}";\n\nexport {};\n`);
      expect(r.status, spec).toBe(1);
      expect(r.stdout + r.stderr, spec).toContain("noRestrictedImports");
    }
    const clean = lint('import { decide } from "./machine.ts";\n\nexport const d = decide;\n');
    expect(clean.stdout + clean.stderr).not.toContain("noRestrictedImports");
    expect(clean.status).toBe(0);
  });
});
