// Check LogQL queries with Grafana's own grammar (@grafana/lezer-logql, the parser of Grafana's
// Loki query editor), pinned by package-lock.json next to this file.
//
//   node tools/logql/check.mjs <prefix> < queries.json
//
// <prefix> is where `npm ci --prefix` installed package-lock.json (`make logql`: .tools/logql).
// stdin: a JSON list of query strings. stdout: a JSON list, one object per query, in order:
//   query        the query itself
//   errors       the parser's error nodes (⚠), as [from, to) offsets in code points
//   expressions  every log expression (a stream selector and its pipeline), in source order:
//     matchers   the selector's label matchers {name, op, value}, value unquoted
//     stages     the pipeline's stages {kind, text, parser, matchers}: kind is the grammar's node
//                (LabelParser, LabelFilter, LineFilters, ...), parser the keyword of a parser
//                stage (json, logfmt, ...) or null, matchers those of a label filter stage
// Read by tools/cap_ops/logql.py, which holds the Python types of this output.

import { createRequire } from "node:module";
import { resolve } from "node:path";
import { readFileSync } from "node:fs";

const PARSER_STAGES = new Set([
  "LabelParser",
  "LogfmtParser",
  "JsonExpressionParser",
  "LogfmtExpressionParser",
]);

const [prefix] = process.argv.slice(2);
if (!prefix) {
  process.stderr.write("usage: node check.mjs <prefix of npm ci> < queries.json\n");
  process.exit(2);
}
// The packages live under <prefix>/node_modules, not next to this file: resolve from there.
const require = createRequire(resolve(prefix, "package.json"));
const { parser } = require("@grafana/lezer-logql");

/** A code-point offset (as Python indexes a str) from lezer's UTF-16 offset. */
const codePoints = (query, offset) => Array.from(query.slice(0, offset)).length;

/** A LogQL string literal's value: "..." with Go's escapes (JSON's, for what LogQL writes), `...` raw. */
function unquote(literal) {
  if (literal.startsWith("`")) return literal.slice(1, -1);
  try {
    return JSON.parse(literal);
  } catch {
    return literal.slice(1, -1);
  }
}

const children = (node) => {
  const found = [];
  for (let child = node.firstChild; child; child = child.nextSibling) found.push(child);
  return found;
};

/** Every descendant of `node` named `name`, in source order. */
const descendants = (node, name) =>
  children(node).flatMap((child) => [...(child.name === name ? [child] : []), ...descendants(child, name)]);

function matcher(node, query) {
  const [name, op, value] = children(node);
  return {
    name: name ? query.slice(name.from, name.to) : "",
    op: op ? query.slice(op.from, op.to) : "",
    value: value && value.name === "String" ? unquote(query.slice(value.from, value.to)) : null,
  };
}

function stage(node, query) {
  const body = children(node).find((child) => child.name !== "Pipe") ?? node;
  const keyword = body.firstChild;
  return {
    kind: body.name,
    text: query.slice(node.from, node.to),
    parser: PARSER_STAGES.has(body.name) && keyword ? query.slice(keyword.from, keyword.to) : null,
    matchers: body.name === "LabelFilter" ? descendants(body, "Matcher").map((m) => matcher(m, query)) : [],
  };
}

function check(query) {
  const tree = parser.parse(query);
  const errors = [];
  const expressions = [];
  tree.iterate({
    enter(ref) {
      if (ref.type.isError) {
        errors.push({ from: codePoints(query, ref.from), to: codePoints(query, ref.to) });
      }
      if (ref.name !== "Selector") return;
      const selector = ref.node;
      const pipeline = children(selector.parent).find((child) => child.name === "PipelineExpr");
      expressions.push({
        matchers: descendants(selector, "Matcher").map((m) => matcher(m, query)),
        stages: pipeline ? descendants(pipeline, "PipelineStage").map((s) => stage(s, query)) : [],
      });
    },
  });
  return { query, errors, expressions };
}

const queries = JSON.parse(readFileSync(0, "utf8"));
if (!Array.isArray(queries) || !queries.every((q) => typeof q === "string")) {
  process.stderr.write("check.mjs: stdin must be a JSON list of strings\n");
  process.exit(2);
}
process.stdout.write(JSON.stringify(queries.map(check)) + "\n");
