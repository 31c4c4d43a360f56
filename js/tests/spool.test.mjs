// spool-js as a JavaScript consumer uses it: `node --test js/tests/` after scripts/build-js.sh
// (scripts/test.sh does both). SPOOL_JS_PKG points at another build of the Node package.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { readFileSync, readdirSync } from 'node:fs';
import { join, relative, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const pkg = process.env.SPOOL_JS_PKG ?? join(here, '../pkg/node/spool.js');
const spool = require(pkg);

/** Every file under `dir` as { relativePath: text }: what a pipeline may reference. */
function folder(dir) {
  const files = {};
  const walk = (d) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else files[relative(dir, p)] = readFileSync(p, 'utf8');
    }
  };
  walk(dir);
  return files;
}

const examples = join(here, '../../examples');
const example = folder(examples);
const daily = example['daily_sales.toml'];

test('validate reports a mistyped dependency with its line, column and a suggestion', () => {
  const text = [
    '[[notebook]]',
    'id = "load"',
    'path = "load.py"',
    '',
    '[[notebook]]',
    'id = "report"',
    'path = "report.py"',
    'depends_on = ["lod"]',
    '',
  ].join('\n');
  const files = { 'load.py': 'x = 1\n', 'report.py': 'y = 2\n' };
  const result = spool.validate(text, files, 'nightly.toml');
  assert.equal(result.valid, false);
  const errors = result.diagnostics.filter((d) => d.severity === 'error');
  assert.equal(errors.length, 1, JSON.stringify(result.diagnostics));
  const [d] = errors;
  assert.equal(d.file, 'nightly.toml');
  assert.equal(d.line, 8);
  assert.match(d.message, /lod/);
  assert.match(d.message, /load/, 'suggests the id that exists');
});

test('the example validates and plans with its critical path', () => {
  assert.deepEqual(spool.validate(daily, example, 'daily_sales.toml').diagnostics
    .filter((d) => d.severity === 'error'), []);
  const planned = spool.plan(daily, example, 'daily_sales.toml');
  assert.ok(planned.plan.tasks.length > 5);
  assert.equal(planned.levels.length, planned.plan.tasks.length);
  assert.ok(planned.critical_path.length > 1);
  assert.ok(planned.critical_path_secs > 0);
});

test('simulate the example: the makespan is at least the critical path and shrinks with a bigger pool', () => {
  const planned = spool.plan(daily, example, 'daily_sales.toml');
  const one = spool.simulate(daily, example, { executors: 1, node_startup_secs: 0 }, 'daily_sales.toml');
  const many = spool.simulate(daily, example, { executors: 16, node_startup_secs: 0 }, 'daily_sales.toml');
  assert.deepEqual(one.option_errors, []);
  assert.equal(typeof one.report.makespan_secs, 'number');
  assert.ok(many.report.makespan_secs >= planned.critical_path_secs - 1e-9);
  assert.ok(one.report.makespan_secs >= many.report.makespan_secs);
  assert.equal(one.report.tasks.length >= planned.plan.tasks.length - 1, true);
});

test('simulate refuses bad options by name instead of guessing', () => {
  const result = spool.simulate(daily, example, { executors: 0 }, 'daily_sales.toml');
  assert.equal(result.report, null);
  assert.ok(result.option_errors.some((e) => JSON.stringify(e).includes('executors')));
  assert.throws(() => spool.simulate(daily, example, { executers: 2 }, 'daily_sales.toml'), /executers/);
});

test('simulate with a calibration from the history takes its durations, start-up and capacity', () => {
  const planned = spool.plan(daily, example, 'daily_sales.toml');
  const notebooks = planned.plan.tasks.filter((t) => t.kind === 'notebook').map((t) => t.id);
  // What `GET /api/pipelines/daily_sales.toml/calibration?durations_from=7` would answer.
  const calibration = {
    durations_from: 7, runs: [7],
    durations: Object.fromEntries(notebooks.map((id) => [id, 2])),
    estimated: [], session_startup_secs: 12.5, dispatch_latency_secs: 0.25,
    live_capacity_slots: 1, real_makespan_secs: 40,
  };
  const options = { durations_from: 7 };
  const { report } = spool.simulate(daily, example, options, 'daily_sales.toml', calibration);
  assert.deepEqual(report.calibration, calibration);
  assert.equal(report.node_startup_secs, 12.5);
  assert.equal(report.capacity_slots, 1);
  // One slot: every notebook after the other, 2 s each, 0.25 s between dependent ones.
  const ran = report.tasks.filter((t) => t.outcome === 'succeeded');
  assert.ok(ran.every((t) => t.end_secs - t.start_secs === 2), JSON.stringify(ran));
  assert.ok(report.makespan_secs >= 12.5 + 2 * ran.length);
  // A calibration from outside is checked as the options are.
  const negative = { ...calibration, durations: { [notebooks[0]]: -5 }, live_capacity_slots: 0 };
  const refused = spool.simulate(daily, example, options, 'daily_sales.toml', negative);
  assert.equal(refused.report, null);
  assert.deepEqual(refused.option_errors.map((e) => e.field),
    ['calibration.live_capacity_slots', 'calibration.durations']);
  // durations_from and the calibration come together, or neither.
  assert.throws(() => spool.simulate(daily, example, options, 'daily_sales.toml'), /calibration/);
  assert.throws(() => spool.simulate(daily, example, {}, 'daily_sales.toml', calibration), /calibration/);
});

test('layout places every task', () => {
  const drawn = spool.layout(daily, example, 'daily_sales.toml');
  const planned = spool.plan(daily, example, 'daily_sales.toml');
  // Active tasks, then the inactive steps, drawn greyed.
  assert.equal(drawn.drawing.nodes.length, planned.plan.tasks.length + planned.plan.inactive.length);
});

test('importRunMultiple converts a runMultiple DAG into a pipeline that validates', () => {
  const dag = JSON.stringify({
    activities: [
      { name: 'load', path: 'load' },
      { name: 'report', path: 'report', dependencies: ['load'] },
    ],
  });
  const converted = spool.importRunMultiple('dag.json', dag, 'imported.toml', {});
  const errors = converted.report.findings.filter((f) => f.level === 'error');
  assert.deepEqual(errors, []);
  assert.equal(converted.files[0].path, 'imported.toml');
  assert.match(converted.files[0].text, /depends_on/);
});

/** The body of `export interface NAME { … }` in the package's spool.d.ts. */
function declared(dts, name) {
  const start = dts.indexOf(`export interface ${name} {`);
  assert.ok(start >= 0, `spool.d.ts declares ${name}`);
  let depth = 0;
  for (let i = dts.indexOf('{', start); i < dts.length; i++) {
    if (dts[i] === '{') depth++;
    if (dts[i] === '}' && --depth === 0) return dts.slice(start, i + 1);
  }
  assert.fail(`${name} is not closed`);
}

test('the TypeScript declarations name every field the functions answer', () => {
  const dts = readFileSync(pkg.replace(/\.js$/, '.d.ts'), 'utf8');
  const names = (name, value) => {
    const body = declared(dts, name);
    for (const key of Object.keys(value)) {
      assert.match(body, new RegExp(`\\b${key}\\??:`), `${name} declares \`${key}\``);
    }
  };
  const broken = daily.replace('depends_on = ["load_orders"]', 'depends_on = ["lod"]');
  const validation = spool.validate(broken, example, 'daily_sales.toml');
  names('Validation', validation);
  names('Diagnostic', validation.diagnostics.find((d) => d.item && d.key));
  const planned = spool.plan(daily, example, 'daily_sales.toml');
  names('Planned', planned);
  const notebooks = planned.plan.tasks.filter((t) => t.kind === 'notebook').map((t) => t.id);
  const calibration = {
    durations_from: 'p90', runs: [2, 1], durations: { [notebooks[0]]: 3 }, estimated: [],
    session_startup_secs: 5, dispatch_latency_secs: 0.5, live_capacity_slots: 2,
    real_makespan_secs: 30, stats: [{ id: notebooks[0], runs: 2, p50_secs: 2, p90_secs: 3 }],
  };
  const simulated = spool.simulate(daily, example,
    { sweep: 2, durations_from: 'p90' }, 'daily_sales.toml', calibration);
  names('Simulated', simulated);
  const r = simulated.report;
  names('DryRunReport', r);
  for (const nested of [r.lower_bound, r.tasks[0], r.utilization_series[0], r.baseline, r.gain]) {
    names('DryRunReport', nested);
  }
  names('SweepPoint', r.sweep[0]);
  names('Calibration', r.calibration);
  names('Calibration', r.calibration.stats[0]);
  const drawn = spool.layout(daily, example, 'daily_sales.toml');
  names('Drawn', drawn);
  for (const nested of [drawn.drawing, drawn.drawing.nodes[0], drawn.drawing.edges[0],
    drawn.drawing.layout]) {
    names('Drawn', nested);
  }
  const converted = spool.importRunMultiple('dag.json',
    JSON.stringify({ activities: [{ name: 'a', path: 'a' }] }), 'x.toml', {});
  names('Converted', converted);
  names('Converted', converted.files[0]);
  names('Converted', converted.report.findings[0]);
});
