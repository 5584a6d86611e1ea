// Decode speed at batch 1 on GPT-2 124M (random weights): the demo page in headless
// Chromium vs native `rgrad generate` on one thread vs transformers.js (onnxruntime-web
// WASM, one thread) on the same weights exported to ONNX. Runs each RUNS times and
// keeps the median; writes web/tests/out/bench.json.
//
// usage: node web/bench/bench.mjs [MODEL_DIR]   (default /tmp/gpt2-124m-random, made
//        by web/bench/make_gpt2_models.py)
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { serve } from '../tests/server.mjs';
import { launch, runPage } from '../tests/browser.mjs';
import { ROOT, nativeGenerate, rgrad } from '../tests/native.mjs';

const MODEL = path.resolve(process.argv[2] ?? '/tmp/gpt2-124m-random');
const NAME = path.basename(MODEL);
const PROMPT = 'The quick brown fox jumps over the lazy dog. The quick brown fox';
const NEW_TOKENS = Number(process.env.NEW_TOKENS ?? 64);
const RUNS = Number(process.env.RUNS ?? 3);
const OUT = path.join(ROOT, 'web', 'tests', 'out');

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function cpuModel() {
  const line = fs.readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((l) => l.startsWith('model name'));
  return line ? line.split(':')[1].trim() : os.cpus()[0]?.model;
}

async function main() {
  fs.mkdirSync(OUT, { recursive: true });
  const native = [];
  for (let i = 0; i < RUNS; i++) {
    native.push(nativeGenerate(MODEL, { prompt: PROMPT, maxNewTokens: NEW_TOKENS, temperature: 0 }));
  }
  const server = await serve([['/', path.join(ROOT, 'web')], ['/models/', path.dirname(MODEL)]]);
  const browser = await launch();
  const ours = [];
  const peer = [];
  try {
    const q = new URLSearchParams({ model: `/models/${NAME}/`, prompt: PROMPT, max_new_tokens: String(NEW_TOKENS), temperature: '0' });
    const p = new URLSearchParams({ model: NAME, prompt: PROMPT, max_new_tokens: String(NEW_TOKENS) });
    for (let i = 0; i < RUNS; i++) {
      const a = await runPage(browser.context, `${server.url}/index.html?${q}`, 600_000);
      if (a.status !== 'done') throw new Error(`demo page: ${a.result}`);
      ours.push(a.result);
      await a.page.close();
      const b = await runPage(browser.context, `${server.url}/bench/transformersjs.html?${p}`, 600_000);
      if (b.status !== 'done') throw new Error(`transformers.js page: ${b.result}`);
      peer.push(b.result);
      await b.page.close();
    }
  } finally {
    await browser.close();
    await server.close();
  }
  const speed = (rs) => median(rs.map((r) => r.decode_tokens_per_s));
  const wasm = fs.statSync(path.join(ROOT, 'web', 'pkg', 'rg_wasm_bg.wasm')).size;
  const report = {
    cpu: cpuModel(),
    model: MODEL,
    new_tokens: NEW_TOKENS,
    runs: RUNS,
    rgrad: rgrad(),
    native_1_thread_tokens_per_s: speed(native),
    browser_tokens_per_s: speed(ours),
    transformers_js_tokens_per_s: speed(peer),
    browser_vs_native: speed(ours) / speed(native),
    browser_vs_transformers_js: speed(ours) / speed(peer),
    same_ids_as_native: JSON.stringify(ours[0].generated_ids) === JSON.stringify(native[0].generated_ids),
    same_ids_as_transformers_js: JSON.stringify(ours[0].generated_ids) === JSON.stringify(peer[0].generated_ids),
    wasm_bytes: wasm,
    all: { native: native.map((r) => r.decode_tokens_per_s), browser: ours.map((r) => r.decode_tokens_per_s), transformers_js: peer.map((r) => r.decode_tokens_per_s) },
  };
  fs.writeFileSync(path.join(OUT, 'bench.json'), JSON.stringify(report, null, 1));
  console.log(JSON.stringify(report, null, 1));
}

await main();
