// Validates MJML documents with the reference compiler (npm "mjml", installed by .ci/run),
// strictly. Reads a JSON array of MJML sources on stdin; writes a JSON array holding, for
// each, the list of its validation errors (empty when it is valid).
"use strict";
const path = require("path");

const mjml2html = require(path.resolve(process.argv[2], "mjml"));

let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => { input += chunk; });
process.stdin.on("end", () => {
  const results = JSON.parse(input).map((source) => {
    try {
      mjml2html(source, { validationLevel: "strict" });
      return [];
    } catch (error) {
      if (Array.isArray(error.errors)) {
        return error.errors.map((e) => `line ${e.line} (${e.tagName}): ${e.message}`);
      }
      return [String(error.message || error)];
    }
  });
  process.stdout.write(JSON.stringify(results));
});
