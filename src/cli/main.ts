#!/usr/bin/env node
/**
 * The `moe-em` command-line tool. `run(argv, output)` parses and executes one command and resolves to the
 * exit status, without touching the process (tests call it in-process); the bottom of this file is the
 * executable's entry point.
 *
 * Exit statuses: 0 success, 1 data or I/O failure, 2 usage error. Every failure is one line on stderr:
 * `moe-em: error: [CODE] message`.
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Argument, Command, CommanderError, Option } from 'commander';
import { fitCommand } from './commands/fit.js';
import { predictCommand } from './commands/predict.js';
import { demoCommand } from './commands/demo.js';
import { EXIT_OK, EXIT_USAGE, exitCodeFor, formatError } from './errors.js';
import {
  algorithmKind, ALGORITHMS, BACKENDS, backendKind, EXPERT_KINDS, expertKind, initKind, INITS, integer, positiveList,
  real, solverKind, SOLVERS,
} from './options.js';
import { processOutput, type Output } from './output.js';
import { reproduceCommand, EXPERIMENTS } from './reproduce/index.js';

function buildProgram(output: Output): Command {
  const program = new Command('moe-em')
    .description('Mixtures of Experts trained with EM, Gradient EM and gradient descent.')
    .exitOverride()
    .configureOutput({
      writeOut: (s) => output.out(s),
      writeErr: (s) => output.err(s.startsWith('error:') ? `moe-em: ${s}` : s),
    })
    .showHelpAfterError('(run moe-em --help for usage)');

  program.command('fit')
    .description('fit a mixture of experts to a CSV or JSON file and save the model as JSON')
    .argument('<data>', 'CSV with a header row, or JSON ({X, y} or an array of row objects)')
    .requiredOption('--target <column>', 'name of the target column')
    .addOption(new Option('--experts <kind>', 'expert family').choices(EXPERT_KINDS).argParser(expertKind).makeOptionMandatory())
    .option('-k, --k <n>', 'number of experts', integer(1, 64), 2)
    .addOption(new Option('--algorithm <name>', 'training algorithm').choices(ALGORITHMS).argParser(algorithmKind).default('em'))
    .option('--intercept', 'prepend a column of ones', false)
    .option('--symmetric', "the paper's symmetric two-expert model (SymMoLinE / SymMoLogE)", false)
    .option('--ridge <lambda>', 'L2 penalty', real(0), 0)
    .option('--max-iter <n>', 'maximum iterations', integer(1), 200)
    .option('--tol <t>', 'relative objective change that stops the fit', real(0), 1e-8)
    .option('--seed <s>', 'random seed', integer(0, 0xffffffff), 0)
    .option('--n-init <n>', 'random restarts (the best final objective is kept)', integer(1, 1000), 1)
    .addOption(new Option('--init <name>', 'initialisation (moments, kmeans: linear experts, k ≥ 2; docs/ALGORITHMS.md §5)')
      .choices(INITS).argParser(initKind).default('random'))
    .option('--step-size <eta>', 'step size for gd / gradient-em / the gradient M-step', real(0, { exclusive: true }))
    .addOption(new Option('--solver <name>', 'EM M-step solver').choices(SOLVERS).argParser(solverKind))
    .option('--batch-size <n>', 'mini-batch size (default: full batch)', integer(1))
    .addOption(new Option('--backend <name>', 'compute backend').choices(BACKENDS).argParser(backendKind).default('auto'))
    .option('--out <file>', 'where to write the model JSON', 'model.json')
    .option('--no-information', 'skip the Fisher-information / MIM diagnostics')
    .action(async (data: string, opts) => { await fitCommand(data, opts, output); });

  program.command('predict')
    .description('predict with a saved model; writes CSV')
    .argument('<model>', 'model JSON written by `moe-em fit`')
    .argument('<data>', 'CSV or JSON with the same feature columns')
    .option('--posterior', 'write the expert responsibilities instead (needs the target column)', false)
    .option('--target <column>', 'target column for --posterior (default: the one the model was fitted on)')
    .option('--out <file>', 'write the CSV here instead of standard output')
    .addOption(new Option('--backend <name>', 'compute backend for --posterior (not the one saved with the model: this machine\'s)')
      .choices(BACKENDS).argParser(backendKind).default('auto'))
    .action(async (model: string, data: string, opts) => { await predictCommand(model, data, opts, output); });

  program.command('reproduce')
    .description("reproduce the paper's experiments: tables (Markdown, CSV) and SVG plots")
    .addArgument(new Argument('<experiment>', 'which experiment').choices(EXPERIMENTS))
    .option('--out <dir>', 'output directory (default: reproduce-out/<experiment>)')
    .addOption(new Option('--backend <name>', 'compute backend').choices(BACKENDS).argParser(backendKind).default('auto'))
    .option('--instances <n>', 'random instances (synthetic: 50; rate: 5; init: 50 per problem)', integer(1, 10000))
    .option('--iterations <n>', 'iterations per run (synthetic: 50; fashion-mnist: 100; rate: cap on EM iterations, 5000; init: cap, 200)', integer(1, 100000))
    .option('--seed <s>', 'base random seed', integer(0, 0xffffffff), 0)
    .option('--grid <etas>', 'step-size grid for gd and gradient-em (comma-separated)', positiveList)
    .option('--snr <norms>', 'rate: the values of ‖β*‖ (comma-separated)', positiveList)
    .option('--data <dir>', "fashion-mnist: directory of the IDX files (default: where Debian's dataset-fashion-mnist installs them)")
    .option('--rows <n>', 'fashion-mnist: training rows (default: cuda 60000, cpu 8000, js 4000); init: rows per instance (5000)', integer(10, 60000))
    .option('--test-rows <n>', 'fashion-mnist: test rows (default: cuda 10000, cpu 5000, js 2000)', integer(10, 10000))
    .option('--eval-every <n>', 'fashion-mnist: test accuracy every n iterations', integer(1), 1)
    .option('--step-size <eta>', 'fashion-mnist: step size of GD, Gradient EM and the gradient M-step', real(0, { exclusive: true }))
    .option('--methods <list>', 'fashion-mnist: comma-separated subset of em-gradient, em-newton, gradient-em, gd, baseline; init: of random, moments, kmeans',
      (raw: string) => raw.split(',').map((m) => m.trim()))
    .option('--render <files...>', 'fashion-mnist: only re-render tables and plot from earlier results.json files')
    .option('--no-plots', 'write tables only (no SVG; vega is not loaded)')
    .option('--pool <p>', 'fashion-mnist: average-pool images p×p first (1 = all 784 pixels; default 1, js 2)', integer(1, 4))
    .action(async (experiment: string, opts) => { await reproduceCommand(experiment, opts, output); });

  program.command('demo')
    .description('a quick comparison of EM, Gradient EM and GD on the synthetic SymMoLinE problem')
    .action(async () => { await demoCommand(output); });

  return program;
}

/** Run one command line (without the `node moe-em` prefix); resolves to the exit status. */
export async function run(argv: string[], output: Output = processOutput()): Promise<number> {
  const program = buildProgram(output);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return EXIT_OK;
  } catch (e) {
    if (e instanceof CommanderError) {
      // Commander has printed its message already; help and version are successes.
      return e.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
    }
    output.err(formatError(e));
    return exitCodeFor(e);
  }
}

function isEntryPoint(): boolean {
  const script = process.argv[1];
  if (script === undefined) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  run(process.argv.slice(2)).then((code) => { process.exitCode = code; });
}
