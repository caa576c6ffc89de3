// Every file package.json points users at (main, types, each export) exists after
// `npm run build:lib`: a path that names nothing makes `import ... from "@rakuda/realtime"`
// fail in the user's bundler, not here.
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));

const targets = [pkg.main, pkg.types];
for (const [name, entry] of Object.entries(pkg.exports ?? {})) {
  for (const [condition, path] of Object.entries(entry)) targets.push(path);
  if (!entry.types || !entry.import) {
    console.error(`package.json: export "${name}" needs both "types" and "import"`);
    process.exit(1);
  }
}
const missing = targets.filter((path) => !existsSync(join(root, path)));
if (missing.length > 0) {
  console.error(
    `package.json names files the build did not write (run npm run build:lib first): ${missing.join(", ")}`,
  );
  process.exit(1);
}
console.log(`package.json: all ${targets.length} entry points exist`);
