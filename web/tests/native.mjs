// The native references the browser must match: `rgrad generate` and `rgrad train`
// run here, with the same settings as the page.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
export const SHARED = path.resolve(process.env.RG_SHARED_DIR ?? path.join(ROOT, '../shared'));

/** The `rgrad` binary: $RGRAD, else the newest build in the target directory. */
export function rgrad() {
  if (process.env.RGRAD) return process.env.RGRAD;
  const target = process.env.CARGO_TARGET_DIR ?? path.join(ROOT, 'target');
  for (const profile of ['release', 'debug']) {
    const bin = path.join(target, profile, 'rgrad');
    if (fs.existsSync(bin)) return bin;
  }
  throw new Error(`no rgrad binary under ${target} (cargo build -p rg-cli, or set RGRAD)`);
}

/** `rgrad generate --format json` with one thread. */
export function nativeGenerate(model, { prompt, maxNewTokens, temperature, seed = 0, dtype = 'f32' }) {
  const out = execFileSync(rgrad(), [
    'generate', '--model', model, '--prompt', prompt,
    '--max-new-tokens', String(maxNewTokens), '--temperature', String(temperature),
    '--seed', String(seed), '--dtype', dtype, '--format', 'json',
  ], { env: { ...process.env, RAYON_NUM_THREADS: '1' }, encoding: 'utf8', maxBuffer: 1 << 26 });
  return JSON.parse(out.trim().split('\n').pop());
}

/** `rgrad train` on the built-in task: the loss of every step. */
export function nativeTrain({ steps, seed }) {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'rg-train-'));
  try {
    const log = execFileSync(rgrad(), [
      'train', '--steps', String(steps), '--seed', String(seed),
      '--out', path.join(out, 'run'), '--log-format', 'json',
    ], { env: { ...process.env, RAYON_NUM_THREADS: '1' }, encoding: 'utf8', maxBuffer: 1 << 26 });
    return log.split('\n').filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l)).filter((e) => e.event === 'step').map((e) => e.loss);
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
}
