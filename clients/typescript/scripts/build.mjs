// Builds dist/: the ESM modules with their .d.ts (tsc), and dist/herald.min.js, one minified
// file for browsers (esbuild) whose gzip size must stay within the budget.
import { execFileSync } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { build } from "esbuild";

const BUDGET = 8 * 1024;
const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const bin = (name) => join(root, "node_modules", ".bin", name);

rmSync(join(root, "dist"), { recursive: true, force: true });
execFileSync(bin("tsc"), ["-p", join(root, "tsconfig.json")], { stdio: "inherit" });

const out = join(root, "dist", "herald.min.js");
await build({
  entryPoints: [join(root, "src", "index.ts")],
  outfile: out,
  bundle: true,
  minify: true,
  format: "iife",
  globalName: "Herald",
  target: ["es2020"],
  legalComments: "none",
});

const raw = readFileSync(out);
const gzipped = gzipSync(raw, { level: 9 }).length;
const kib = (n) => (n / 1024).toFixed(2);
console.log(`dist/herald.min.js: ${kib(raw.length)} KiB, ${kib(gzipped)} KiB gzip (budget ${kib(BUDGET)} KiB)`);
if (gzipped > BUDGET) {
  console.error(`dist/herald.min.js is ${gzipped} bytes gzip, over the ${BUDGET}-byte budget`);
  process.exit(1);
}
