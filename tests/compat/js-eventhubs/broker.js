'use strict';
// A throwaway `runnel serve` with the Event Hubs AMQP endpoint for the JS Event Hubs
// check, as tests/compat/runnel_broker.py starts one for the Python checks: a temp data
// dir, the Kafka and AMQP listeners on free loopback ports (read from the broker's
// `runnel listening on ADDR` and `runnel amqp on ADDR` lines), hubs and shared access
// policies made with the runnel CLI, and SIGTERM at the end (the tail of the broker's
// stderr is printed when the check failed).

const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const readline = require('node:readline');

const REPO = path.resolve(__dirname, '..', '..', '..');

function runnelBin() {
  if (process.env.RUNNEL_BIN) return process.env.RUNNEL_BIN;
  const target = process.env.CARGO_TARGET_DIR || path.join(REPO, 'target');
  return path.join(target, 'debug', 'runnel');
}

// The broker reads RUNNEL_* variables as settings: run it and the CLI without any.
function cleanEnv() {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('RUNNEL_')) env[k] = v;
  if (!env.RUST_LOG) env.RUST_LOG = 'info';
  return env;
}

class Broker {
  constructor(bin, dir, proc, stderrPath) {
    this.bin = bin;
    this.dir = dir;
    this.dataDir = path.join(dir, 'data');
    this.proc = proc;
    this.stderrPath = stderrPath;
    this.bootstrap = null; // Kafka, HOST:PORT
    this.amqp = null; // AMQP, HOST:PORT
  }

  static async start(extraArgs = []) {
    const bin = runnelBin();
    try {
      fs.accessSync(bin, fs.constants.X_OK);
    } catch {
      throw new Error(`broker binary ${bin} missing (cargo build -p runnel, or set RUNNEL_BIN)`);
    }
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'runnel-compat-ehjs-'));
    const stderrPath = path.join(dir, 'stderr.log');
    const args = [
      'serve', '--data-dir', path.join(dir, 'data'), '--listen', '127.0.0.1:0',
      '--set', 'metrics.listener=', '--set', 'eventhubs.amqp.listener=127.0.0.1:0', ...extraArgs,
    ];
    const proc = spawn(bin, args, {
      env: cleanEnv(),
      stdio: ['ignore', 'pipe', fs.openSync(stderrPath, 'w')],
    });
    const b = new Broker(bin, dir, proc, stderrPath);
    b.exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`broker printed no 'runnel amqp on' line within 60 s${b.tail()}`)), 60000);
      const lines = readline.createInterface({ input: proc.stdout });
      lines.on('line', (line) => {
        let m = /^runnel listening on (\S+)/.exec(line);
        if (m) b.bootstrap = m[1];
        m = /^runnel amqp on (\S+)/.exec(line);
        if (m) b.amqp = m[1];
        if (b.bootstrap && b.amqp) {
          clearTimeout(timer);
          resolve();
        }
      });
      proc.on('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`broker exited with ${code} before it was ready${b.tail()}`));
      });
    });
    console.log(`broker pid ${proc.pid}: kafka on ${b.bootstrap}, amqp on ${b.amqp} (data ${dir})`);
    return b;
  }

  // The runnel CLI (not the server): its stdout, or an error with its stderr.
  cli(args) {
    try {
      return execFileSync(this.bin, args, { env: cleanEnv(), encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (e) {
      throw new Error(`runnel ${args.join(' ')} failed: ${e.stderr || e.message}`);
    }
  }

  createHub(name, partitions) {
    this.cli(['topics', 'create', name, '--partitions', String(partitions), '--bootstrap-server', this.bootstrap]);
  }

  // A shared access policy; returns its name, key and the connection string an Event
  // Hubs user would write for this broker (plain AMQP through UseDevelopmentEmulator,
  // the port in the Endpoint).
  addPolicy(name, rights, hub) {
    const args = ['sas', 'policy', 'add', name, '--rights', rights, '--data-dir', this.dataDir];
    if (hub) args.push('--hub', hub);
    const out = this.cli(args);
    const m = /^primary:\s+\S*SharedAccessKey=([^;\s]+)/m.exec(out);
    if (!m) throw new Error(`no primary key in the output of runnel sas policy add:\n${out}`);
    return { name, key: m[1], connectionString: this.connectionString(name, m[1]) };
  }

  connectionString(name, key) {
    return `Endpoint=sb://${this.amqp};SharedAccessKeyName=${name};SharedAccessKey=${key};UseDevelopmentEmulator=true`;
  }

  tail(n = 60) {
    try {
      const lines = fs.readFileSync(this.stderrPath, 'utf8').split('\n');
      return `\n----- last lines of the broker's stderr (${this.stderrPath}) -----\n${lines.slice(-n).join('\n')}`;
    } catch {
      return '';
    }
  }

  // SIGTERM; the broker must stop within 30 s. Keeps the data dir (and prints the log
  // tail) when `failed`.
  async stop(failed) {
    let ok = true;
    if (this.proc.exitCode === null && this.proc.signalCode === null) {
      this.proc.kill('SIGTERM');
      const t = new Promise((r) => setTimeout(() => r('timeout'), 30000));
      if ((await Promise.race([this.exited, t])) === 'timeout') {
        console.error('FAIL: broker did not stop within 30 s of SIGTERM');
        this.proc.kill('SIGKILL');
        ok = false;
      }
    } else {
      console.error(`FAIL: broker exited on its own (${this.proc.exitCode ?? this.proc.signalCode})`);
      ok = false;
    }
    if (failed || !ok) {
      console.error(this.tail());
    } else {
      fs.rmSync(this.dir, { recursive: true, force: true });
    }
    return ok;
  }
}

module.exports = { Broker, runnelBin };
