/**
 * `npm run deploy` (scripts/deploy.sh) checks turnout.config.json, then runs `wrangler deploy`:
 * here with `--dry-run --outdir <tmp>`, which builds the exact bundle a deploy would upload and
 * stops before any network call (Cloudflare fetches and metrics off).
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { gzipSync } from "node:zlib";
import { afterAll, describe, expect, it } from "vitest";

const root = join(import.meta.dirname, "../..");
const outdir = mkdtempSync(join(tmpdir(), "turnout-ship-worker-"));
afterAll(() => rmSync(outdir, { recursive: true, force: true }));

/** Cloudflare's Workers size limit after compression on the Free plan (Paid: 10 MB):
 * https://developers.cloudflare.com/workers/platform/limits/#worker-size */
const FREE_PLAN_GZIP_LIMIT = 3 * 1024 * 1024;

describe("npm run deploy", () => {
  it("validates the config, then wrangler builds the worker bundle (--dry-run, no network)", () => {
    const run = spawnSync("bash", ["scripts/deploy.sh", "--dry-run", "--outdir", outdir], {
      cwd: root,
      encoding: "utf8",
      timeout: 90_000,
      env: {
        ...process.env,
        // As `npm run` does: the repo's binaries (wrangler, Node 24) first.
        PATH: [join(root, "node_modules/.bin"), process.env.PATH ?? ""].join(delimiter),
        CLOUDFLARE_CF_FETCH_ENABLED: "false",
        WRANGLER_SEND_METRICS: "false",
        // No account, no token: a dry run must not need either.
        CLOUDFLARE_API_TOKEN: "",
        CLOUDFLARE_ACCOUNT_ID: "",
      },
    });
    const output = `${run.stdout}\n${run.stderr}`;
    expect(run.status, output).toBe(0);
    expect(output).toContain("turnout.config.json: valid worker config");
    expect(output).toContain("--dry-run: exiting now");
    expect(output).toContain("env.TARGETS (TargetObject)");

    const files = readdirSync(outdir).filter((f) => f.endsWith(".js"));
    expect(files).toContain("index.js");
    const code = Buffer.concat(files.map((f) => readFileSync(join(outdir, f))));
    const gzip = gzipSync(code).length;
    const kib = (n: number) => `${(n / 1024).toFixed(1)} KiB`;
    console.log(`worker bundle: ${files.join(", ")} ${kib(code.length)} (gzip ${kib(gzip)})`);
    expect(statSync(join(outdir, "index.js")).size).toBeGreaterThan(10_000);
    expect(gzip).toBeLessThan(FREE_PLAN_GZIP_LIMIT);
    // The Durable Object class the binding names is exported by the bundle.
    expect(code.toString("utf8")).toMatch(/export\s*\{[^}]*\bTargetObject\b/);
  }, 120_000);
});
