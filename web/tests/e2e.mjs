// End-to-end test of the demo page in headless Chromium: (a) greedy generation from
// the GPT-2 fixture gives exactly the ids `rgrad generate` gives natively, (b) 50
// training steps of the addition task reach the loss `rgrad train` reaches with the
// same seed (within 1e-3), (c) a screenshot (kept by CI) of the streamed text and the
// loss curve. Prints "N passed, N failed"; exits 1 on any failure.
//
// Needs: cargo xtask wasm (web/pkg), an rgrad build, npm install in web/, chromium.
import fs from 'node:fs';
import path from 'node:path';
import { serve } from './server.mjs';
import { launch, runPage } from './browser.mjs';
import { ROOT, SHARED, nativeGenerate, nativeTrain } from './native.mjs';

const WEB = path.join(ROOT, 'web');
const OUT = path.join(WEB, 'tests', 'out');
const FIXTURE = path.join(SHARED, 'fixtures', 'gpt2-tiny', 'model');
const PROMPT = 'Hello, my name is';
const MAX_NEW_TOKENS = 24;
const TRAIN_STEPS = 50;
const TRAIN_SEED = 1337;
const LOSS_TOLERANCE = 1e-3;

let passed = 0;
let failed = 0;
function check(name, ok, detail) {
  if (ok) passed++; else failed++;
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}${detail ? `: ${detail}` : ''}`);
}

async function main() {
  if (!fs.existsSync(path.join(WEB, 'pkg', 'rg_wasm.js'))) throw new Error('web/pkg is missing: run cargo xtask wasm');
  if (!fs.existsSync(FIXTURE)) throw new Error(`${FIXTURE} is missing (RG_SHARED_DIR)`);
  fs.mkdirSync(OUT, { recursive: true });

  const nativeGen = nativeGenerate(FIXTURE, { prompt: PROMPT, maxNewTokens: MAX_NEW_TOKENS, temperature: 0 });
  const nativeLosses = nativeTrain({ steps: TRAIN_STEPS, seed: TRAIN_SEED });

  const server = await serve([['/', WEB], ['/shared/', SHARED]]);
  const browser = await launch();
  try {
    const query = new URLSearchParams({
      model: '/shared/fixtures/gpt2-tiny/model/',
      prompt: PROMPT,
      max_new_tokens: String(MAX_NEW_TOKENS),
      temperature: '0',
      seed: '0',
      train_steps: String(TRAIN_STEPS),
      train_seed: String(TRAIN_SEED),
    });
    const { page, status, result } = await runPage(browser.context, `${server.url}/index.html?${query}`, 300_000);
    check('page finished', status === 'done', status === 'done' ? '' : String(result).slice(0, 500));
    if (status === 'done') {
      const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
      check('prompt ids equal rgrad generate', same(result.prompt_ids, nativeGen.prompt_ids),
        `${JSON.stringify(result.prompt_ids)} vs ${JSON.stringify(nativeGen.prompt_ids)}`);
      check('greedy ids equal rgrad generate', same(result.generated_ids, nativeGen.generated_ids),
        `${JSON.stringify(result.generated_ids)} vs ${JSON.stringify(nativeGen.generated_ids)}`);
      check('decoded text equals rgrad generate', result.text === nativeGen.text);
      check('decode speed reported', result.decode_tokens_per_s > 0, `${result.decode_tokens_per_s?.toFixed(1)} tokens/s`);
      const browserLosses = result.training?.losses ?? [];
      check(`${TRAIN_STEPS} training steps ran`, browserLosses.length === TRAIN_STEPS && nativeLosses.length === TRAIN_STEPS,
        `${browserLosses.length} in the browser, ${nativeLosses.length} native`);
      const diffs = browserLosses.map((l, i) => Math.abs(l - nativeLosses[i]));
      const worst = Math.max(...diffs);
      const last = diffs[diffs.length - 1];
      check(`final loss within ${LOSS_TOLERANCE} of rgrad train`, last <= LOSS_TOLERANCE,
        `browser ${browserLosses.at(-1)}, native ${nativeLosses.at(-1)}, |diff| ${last?.toExponential(2)} (worst step ${worst.toExponential(2)})`);
      check('loss fell', browserLosses.at(-1) < browserLosses[0], `${browserLosses[0]?.toFixed(4)} -> ${browserLosses.at(-1)?.toFixed(4)}`);
    }
    const shot = path.join(OUT, 'e2e.png');
    await page.screenshot({ path: shot, fullPage: true });
    check('screenshot written', fs.statSync(shot).size > 10_000, path.relative(ROOT, shot));
    fs.writeFileSync(path.join(OUT, 'e2e.json'), JSON.stringify({ browser: result, native: { generate: nativeGen, losses: nativeLosses } }, null, 1));
  } finally {
    await browser.close();
    await server.close();
  }
}

try {
  await main();
} catch (e) {
  check('e2e run', false, e.stack ?? String(e));
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
