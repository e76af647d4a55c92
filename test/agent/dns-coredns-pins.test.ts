/**
 * Detecting CoreDNS configuration that pins the flipped name (runbook B: "no node may pin that
 * name in /etc/hosts or in CoreDNS").
 */
import { describe, expect, it } from "vitest";
import { findCorednsPins } from "../../agent/dns/coredns-pins.ts";

const NAME = "www.example.test";

describe("findCorednsPins", () => {
  it("finds a hosts-block entry for the name", () => {
    const corefile = `.:53 {
    errors
    hosts {
       10.0.0.5 registry.example.test
       172.30.41.193 www.example.test www
       fallthrough
    }
    forward . /etc/resolv.conf
}`;
    expect(findCorednsPins({ Corefile: corefile }, NAME)).toEqual([
      { key: "Corefile", line: 5, text: "172.30.41.193 www.example.test www", plugin: "hosts" },
    ]);
  });

  it("finds rewrite rules naming it exactly or by a matching regex", () => {
    const corefile = `.:53 {
    rewrite name www.example.test other.example.test
    rewrite name regex (.*)\\.example\\.test {1}.internal
    rewrite name exact api.example.test api.internal
}`;
    const pins = findCorednsPins({ Corefile: corefile }, `${NAME}.`);
    expect(pins.map((p) => [p.line, p.plugin])).toEqual([
      [2, "rewrite"],
      [3, "rewrite"],
    ]);
  });

  it("finds a template answering for the name, by zone or by match regex", () => {
    const corefile = `example.test:53 {
    template IN A example.test {
        match "^www\\.example\\.test\\.$"
        answer "{{ .Name }} 60 IN A 10.9.9.9"
    }
    template IN A www.example.test {
        answer "{{ .Name }} 60 IN A 10.9.9.9"
    }
}`;
    expect(findCorednsPins({ Corefile: corefile }, NAME).map((p) => p.line)).toEqual([3, 6]);
  });

  it("finds the name in a hosts-format key such as k3s NodeHosts", () => {
    expect(findCorednsPins({ NodeHosts: "10.0.0.1 node-1\n172.30.41.193 www.example.test\n" }, NAME)).toEqual([
      { key: "NodeHosts", line: 2, text: "172.30.41.193 www.example.test", plugin: "hosts-file" },
    ]);
  });

  it("ignores comments, other names, and the name outside hosts/rewrite/template", () => {
    const corefile = `.:53 {
    # hosts { 1.2.3.4 www.example.test }
    hosts {
       10.0.0.5 wwwx.example.test
    }
    forward . /etc/resolv.conf
    log www.example.test
}`;
    expect(findCorednsPins({ Corefile: corefile }, NAME)).toEqual([]);
  });
});
