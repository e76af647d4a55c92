/**
 * Finds places where a CoreDNS ConfigMap pins a name (runbook B: "no node may pin that name in
 * /etc/hosts or in CoreDNS"), so a DNS flip would not reach in-cluster clients: entries in a
 * `hosts` block, `rewrite` rules and `template` blocks answering for the name, and hosts-format
 * keys such as k3s's `NodeHosts`. Plugin syntax: https://coredns.io/plugins/hosts/,
 * https://coredns.io/plugins/rewrite/, https://coredns.io/plugins/template/.
 */

/** One pin found: the ConfigMap key, line number (1-based) and the line itself. */
export interface CorednsPin {
  key: string;
  line: number;
  text: string;
  plugin: "hosts" | "rewrite" | "template" | "hosts-file";
}

function bare(name: string): string {
  return name.trim().toLowerCase().replace(/\.$/, "");
}

function regexMatches(pattern: string, name: string): boolean {
  try {
    const re = new RegExp(pattern.replace(/^"(.*)"$/, "$1"), "i");
    return re.test(`${name}.`) || re.test(name);
  } catch {
    return false;
  }
}

const IP = /^(\d{1,3}(\.\d{1,3}){3}|[0-9a-fA-F:]*:[0-9a-fA-F:.]*)$/;

/** Every line of the ConfigMap's data that pins `recordName`. */
export function findCorednsPins(data: Record<string, string>, recordName: string): CorednsPin[] {
  const name = bare(recordName);
  const pins: CorednsPin[] = [];
  for (const [key, text] of Object.entries(data)) {
    const lines = text.split("\n");
    const isCorefile = /[{}]/.test(text);
    // Stack of open blocks, each labelled with the plugin (or server block) that opened it.
    const stack: string[] = [];
    lines.forEach((raw, index) => {
      const line = raw.replace(/#.*$/, "").trim();
      if (!line) return;
      const tokens = line.split(/\s+/).filter((t) => t !== "{" && t !== "}");
      const first = tokens[0]?.toLowerCase() ?? "";
      const inside = stack[stack.length - 1];
      const pin = (plugin: CorednsPin["plugin"]) => pins.push({ key, line: index + 1, text: raw.trim(), plugin });
      if (!isCorefile) {
        // hosts-format file: "<ip> <name> [names…]"
        if (tokens.length >= 2 && IP.test(tokens[0] ?? "") && tokens.slice(1).some((t) => bare(t) === name)) {
          pin("hosts-file");
        }
        return;
      }
      if (inside === "hosts" && IP.test(first) && tokens.slice(1).some((t) => bare(t) === name)) pin("hosts");
      else if (first === "rewrite") {
        const args = tokens.slice(1);
        const regexIdx = args.findIndex((t) => t.toLowerCase() === "regex");
        const byRegex = regexIdx >= 0 && regexMatches(args[regexIdx + 1] ?? "", name);
        if (byRegex || args.some((t) => bare(t) === name)) pin("rewrite");
      } else if (first === "template" && tokens.slice(3).some((t) => bare(t) === name)) pin("template");
      else if (inside === "template" && first === "match" && tokens.slice(1).some((t) => regexMatches(t, name))) {
        pin("template");
      }
      for (const ch of line) {
        if (ch === "{") stack.push(first);
        else if (ch === "}") stack.pop();
      }
    });
  }
  return pins;
}
