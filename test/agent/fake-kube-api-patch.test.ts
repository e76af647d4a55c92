import { describe, expect, it } from "vitest";
import {
  applyJsonPatch,
  applyMergePatch,
  applyStrategicMergePatch,
  type Json,
  PatchError,
} from "../../agent/sandbox/kube-patch.ts";
import { parseFieldSelector, parseLabelSelector, SelectorError } from "../../agent/sandbox/kube-selectors.ts";

describe("patch formats of the fake API", () => {
  it("applies RFC 6902 operations (add, remove, replace, move, copy, test) and rejects failures", () => {
    const doc = { a: { b: [1, 2] }, c: "x" };
    expect(
      applyJsonPatch(doc, [
        { op: "add", path: "/a/b/-", value: 3 },
        { op: "add", path: "/a/b/0", value: 0 },
        { op: "remove", path: "/c" },
        { op: "copy", from: "/a/b", path: "/d" },
        { op: "move", from: "/d", path: "/e" },
        { op: "replace", path: "/a/b/1", value: 9 },
        { op: "add", path: "/f~1g", value: true },
        { op: "test", path: "/e/3", value: 3 },
      ]),
    ).toEqual({ a: { b: [0, 9, 2, 3] }, e: [0, 1, 2, 3], "f/g": true });
    expect(doc).toEqual({ a: { b: [1, 2] }, c: "x" });
    expect(() => applyJsonPatch(doc, [{ op: "test", path: "/c", value: "y" }])).toThrow(PatchError);
    expect(() => applyJsonPatch(doc, [{ op: "replace", path: "/zz", value: 1 }])).toThrow(PatchError);
    expect(() => applyJsonPatch(doc, { op: "add" })).toThrow(PatchError);
  });

  it("applies RFC 7386 merge patches (null deletes, lists replace)", () => {
    expect(applyMergePatch({ a: 1, b: { c: 2, d: 3 }, l: [1, 2] }, { a: null, b: { c: 5 }, l: [3] })).toEqual({
      b: { c: 5, d: 3 },
      l: [3],
    });
  });

  it("merges name-keyed lists in strategic merge patches and honours $patch: delete", () => {
    const target: Json = {
      containers: [
        { name: "a", image: "a:1", env: [{ name: "X", value: "1" }] },
        { name: "b", image: "b:1" },
      ],
      args: ["x", "y"],
    };
    const patched = applyStrategicMergePatch(target, {
      containers: [
        { name: "a", env: [{ name: "Y", value: "2" }] },
        { name: "b", $patch: "delete" },
        { name: "c", image: "c:1" },
      ],
      args: ["z"],
    });
    expect(patched).toEqual({
      containers: [
        {
          name: "a",
          image: "a:1",
          env: [
            { name: "X", value: "1" },
            { name: "Y", value: "2" },
          ],
        },
        { name: "c", image: "c:1" },
      ],
      args: ["z"],
    });
  });
});

describe("selectors of the fake API", () => {
  it("matches equality, set-based and existence label requirements", () => {
    const labels = { app: "web", tier: "a" };
    expect(parseLabelSelector("app=web,tier!=b")(labels)).toBe(true);
    expect(parseLabelSelector("app==web,tier in (b,c)")(labels)).toBe(false);
    expect(parseLabelSelector("tier notin (b, c),app")(labels)).toBe(true);
    expect(parseLabelSelector("!missing,app")(labels)).toBe(true);
    expect(parseLabelSelector("!app")(labels)).toBe(false);
    expect(parseLabelSelector("")(undefined)).toBe(true);
    expect(() => parseLabelSelector("app=(x")).toThrow(SelectorError);
  });

  it("matches field selectors on dotted paths", () => {
    const ev = { metadata: { name: "e1" }, involvedObject: { name: "primary" }, reason: "RouteDeleteSucceeded" };
    expect(parseFieldSelector("involvedObject.name=primary,reason=RouteDeleteSucceeded")(ev)).toBe(true);
    expect(parseFieldSelector("metadata.name!=e1")(ev)).toBe(false);
    expect(() => parseFieldSelector("nonsense")).toThrow(SelectorError);
  });
});
