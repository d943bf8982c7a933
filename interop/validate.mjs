#!/usr/bin/env node
// Validate wire-format bodies with ajv: one JSON value per stdin line, one verdict per stdout line
// ({"valid": true} or {"valid": false, "errors": [...]}). Exit code 1 when any line is invalid.

import { createInterface } from "node:readline";

import { describeErrors, loadValidator } from "./lib/wire.mjs";

const validate = loadValidator();
let invalid = 0;
for await (const line of createInterface({ input: process.stdin, crlfDelay: Infinity })) {
  if (!line.trim()) continue;
  let verdict;
  try {
    verdict = validate(JSON.parse(line)) ? { valid: true } : { valid: false, errors: describeErrors(validate.errors) };
  } catch (error) {
    verdict = { valid: false, errors: [`not JSON: ${error.message}`] };
  }
  invalid += verdict.valid ? 0 : 1;
  process.stdout.write(JSON.stringify(verdict) + "\n");
}
process.exitCode = invalid ? 1 : 0;
