/** Topic patterns as the gateway reads them: `*` is one token, a final `**` one or more. */

export function matches(pattern: string, topic: string): boolean {
  if (pattern === topic) return true;
  const p = pattern.split(".");
  const t = topic.split(".");
  for (let i = 0; i < p.length; i++) {
    const token = p[i];
    if (token === "**") return t.length > i;
    if (i >= t.length) return false;
    if (token !== "*" && token !== t[i]) return false;
  }
  return p.length === t.length;
}

/** True when the pattern has no wildcard (presence works only on such topics). */
export function isExact(pattern: string): boolean {
  return !pattern.split(".").some((token) => token === "*" || token === "**");
}
