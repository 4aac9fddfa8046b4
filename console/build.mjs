// Builds the console into the directory given (default dist/): app.js (one
// minified ES module bundled by esbuild), app.css and index.html copied.
// Deterministic: the same sources and lockfile give the same bytes, which
// `scripts/console-build.sh --check` relies on.
import { build } from "esbuild";
import { copyFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";

const out = process.argv[2] ?? "dist";
mkdirSync(out, { recursive: true });
await build({
  entryPoints: ["src/app.ts"],
  bundle: true,
  minify: true,
  format: "esm",
  target: "es2022",
  legalComments: "none",
  charset: "utf8",
  outfile: join(out, "app.js"),
  logLevel: "warning",
});
copyFileSync("src/app.css", join(out, "app.css"));
copyFileSync("src/index.html", join(out, "index.html"));
