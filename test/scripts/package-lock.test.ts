import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

/**
 * A clean checkout stays clean (issue 21): `npm run setup` installs with `npm ci`, which never
 * writes package-lock.json, and `npm ci` needs a lock with every platform's optional packages.
 * `npm install` run where node_modules exists can drop other platforms' entries (npm/cli#4828),
 * and a fresh `npm install` on any machine would then write them back: a dirty `git status`.
 */

interface LockEntry {
  version?: string;
  optionalDependencies?: Record<string, string>;
}
interface Lock {
  lockfileVersion: number;
  packages: Record<string, LockEntry>;
}

const root = join(import.meta.dirname, "../..");

/** True when `dep` is found from the package at `from` the way Node resolves it (nearest node_modules up). */
function resolves(packages: Lock["packages"], from: string, dep: string): boolean {
  let base = from;
  for (;;) {
    if (`${base ? `${base}/` : ""}node_modules/${dep}` in packages) return true;
    if (base === "") return false;
    const up = base.lastIndexOf("/node_modules/");
    base = up < 0 ? "" : base.slice(0, up);
  }
}

/** Optional dependencies a lock names but has no entry for: what a fresh `npm install` would add. */
function missingOptionalEntries(lock: Lock): string[] {
  const missing: string[] = [];
  for (const [path, entry] of Object.entries(lock.packages)) {
    for (const dep of Object.keys(entry.optionalDependencies ?? {})) {
      if (!resolves(lock.packages, path, dep)) missing.push(`${path || "(root)"} → ${dep}`);
    }
  }
  return missing;
}

describe("package-lock.json", () => {
  const lock = JSON.parse(readFileSync(join(root, "package-lock.json"), "utf8")) as Lock;

  it("has an entry for every optional dependency of every platform", () => {
    const missing = missingOptionalEntries(lock);
    expect(
      missing,
      `the lock lacks these entries, so a fresh install rewrites it; run \`npm install --package-lock-only\` and commit package-lock.json:\n${missing.join("\n")}`,
    ).toEqual([]);
  });

  it("names workerd's and biome's binaries for other platforms (the packages npm dropped before)", () => {
    expect(lock.packages).toHaveProperty(["node_modules/@cloudflare/workerd-darwin-arm64"]);
    expect(lock.packages).toHaveProperty(["node_modules/@biomejs/cli-win32-x64"]);
  });

  it("the check finds a pruned entry", () => {
    const pruned: Lock = structuredClone(lock);
    delete pruned.packages["node_modules/@biomejs/cli-darwin-arm64"];
    expect(missingOptionalEntries(pruned)).toContain("node_modules/@biomejs/biome → @biomejs/cli-darwin-arm64");
  });

  it("pins what package.json asks for", () => {
    const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as {
      dependencies: Record<string, string>;
      devDependencies: Record<string, string>;
    };
    const rootEntry = lock.packages[""] as LockEntry & { dependencies?: object; devDependencies?: object };
    expect(rootEntry.dependencies).toEqual(pkg.dependencies);
    expect(rootEntry.devDependencies).toEqual(pkg.devDependencies);
    for (const name of [...Object.keys(pkg.dependencies), ...Object.keys(pkg.devDependencies)]) {
      expect(lock.packages[`node_modules/${name}`]?.version, name).toMatch(/^\d+\.\d+\.\d+/);
    }
  });
});
