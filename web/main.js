// The page: talks to worker.js, shows tokens as they come and the loss curve, and is
// scriptable for tests through query parameters:
//   model=<directory URL>  prompt=  max_new_tokens=  temperature=  seed=  top_k=  top_p=
//   repetition_penalty=  dtype=f32|bf16     -> generate on load
//   train_steps=N  train_seed=S             -> train the addition task on load
// When the scripted work ends, #result holds its JSON and body.dataset.status is
// "done" (or "error", with the message in #result).
import { drawLossChart } from './chart.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });

const state = { losses: [], pending: new Map(), promptText: '' };

function setStatus(status, result) {
  $('result').textContent = typeof result === 'string' ? result : JSON.stringify(result);
  document.body.dataset.status = status;
}

// One request at a time per kind; resolves with the worker's final message.
function request(message, doneType) {
  return new Promise((resolve, reject) => {
    state.pending.set(doneType, { resolve, reject });
    worker.postMessage(message);
  });
}

function settle(type, value) {
  const p = state.pending.get(type);
  if (p) { state.pending.delete(type); p.resolve(value); }
}

const ready = new Promise((resolve) => state.pending.set('ready', { resolve, reject: () => {} }));

worker.onmessage = ({ data }) => {
  switch (data.type) {
    case 'ready':
      $('engine').textContent = `matmul: ${data.engine}`;
      settle('ready', data);
      break;
    case 'loaded':
      $('model-info').textContent = `${(data.info.params / 1e6).toFixed(2)} M parameters, context ${data.info.context}, ${data.info.dtype}`;
      $('generate-button').disabled = false;
      settle('loaded', data.info);
      break;
    case 'token':
      $('output-text').textContent = data.text;
      $('speed').textContent = `${data.decode_tokens_per_s.toFixed(1)} tokens/s`;
      break;
    case 'generated':
      $('output-text').textContent = data.result.text;
      $('speed').textContent = `${data.result.generated_ids.length} tokens, ${data.result.decode_tokens_per_s.toFixed(1)} tokens/s (prefill ${data.result.prefill_tokens_per_s.toFixed(1)} tokens/s)`;
      $('generate-button').disabled = false;
      $('stop-button').disabled = true;
      settle('generated', data.result);
      break;
    case 'loss':
      state.losses.push(data.loss);
      $('train-status').textContent = `step ${data.step}: loss ${data.loss.toFixed(4)}`;
      drawLossChart($('loss-chart'), state.losses);
      break;
    case 'trained':
      $('train-status').textContent = `${data.result.steps} steps, final loss ${data.result.final_loss.toFixed(4)}, ${data.result.steps_per_s.toFixed(1)} steps/s`;
      $('train-button').disabled = false;
      $('train-stop').disabled = true;
      $('sum-button').disabled = false;
      settle('trained', data.result);
      break;
    case 'answer':
      $('sum-answer').textContent = data.text;
      settle('answer', data);
      break;
    case 'error': {
      const error = new Error(`${data.during}: ${data.message}`);
      for (const [, p] of state.pending) p.reject(error);
      state.pending.clear();
      setStatus('error', error.message);
      $('generate-button').disabled = !$('model-info').dataset.loaded;
      $('train-button').disabled = false;
      break;
    }
  }
};
worker.onerror = (e) => setStatus('error', `worker: ${e.message}`);

function showTab(name) {
  for (const b of document.querySelectorAll('.tab')) b.setAttribute('aria-selected', String(b.dataset.tab === name));
  for (const p of document.querySelectorAll('.panel')) p.classList.toggle('active', p.id === name);
}
for (const b of document.querySelectorAll('.tab')) b.onclick = () => showTab(b.dataset.tab);

function number(id) {
  const v = $(id).value;
  return v === '' ? undefined : Number(v);
}

function generateOptions() {
  return {
    max_new_tokens: number('max-new-tokens'),
    temperature: number('temperature'),
    top_k: number('top-k'),
    top_p: number('top-p'),
    repetition_penalty: number('repetition-penalty'),
    seed: number('seed'),
  };
}

async function loadUrl(url) {
  $('model-info').textContent = `loading ${url} ...`;
  const info = await request({ type: 'load-url', url: new URL(url, location.href).href, dtype: $('dtype').value }, 'loaded');
  $('model-info').dataset.loaded = '1';
  return info;
}

function generate(prompt, options) {
  $('output-prompt').textContent = prompt;
  $('output-text').textContent = '';
  $('generate-button').disabled = true;
  $('stop-button').disabled = false;
  return request({ type: 'generate', prompt, options }, 'generated');
}

function train(steps, seed) {
  state.losses = [];
  drawLossChart($('loss-chart'), state.losses);
  $('train-button').disabled = true;
  $('train-stop').disabled = false;
  $('sum-button').disabled = true;
  return request({ type: 'train', steps, seed }, 'trained');
}

$('load-url').onclick = () => loadUrl($('model-url').value).catch(() => {});
$('model-files').onchange = async (e) => {
  const files = Array.from(e.target.files);
  $('model-info').textContent = `reading ${files.length} files ...`;
  await request({ type: 'load-files', files, dtype: $('dtype').value }, 'loaded').catch(() => {});
  $('model-info').dataset.loaded = '1';
};
$('generate-button').onclick = () => generate($('prompt').value, generateOptions()).catch(() => {});
$('stop-button').onclick = () => worker.postMessage({ type: 'stop' });
$('train-button').onclick = () => train(number('train-steps'), number('train-seed')).catch(() => {});
$('train-stop').onclick = () => worker.postMessage({ type: 'stop' });
$('sum-button').onclick = () => request({ type: 'answer', a: number('sum-a'), b: number('sum-b') }, 'answer').catch(() => {});

// Scripted runs (tests, benchmarks): everything from the query string.
async function scripted() {
  const has = (k) => params.has(k);
  const num = (k) => (has(k) ? Number(params.get(k)) : undefined);
  if (!has('model') && !has('train_steps')) return;
  document.body.dataset.status = 'running';
  if (has('model') && has('train_steps')) document.body.classList.add('show-all');
  else showTab(has('model') ? 'generate' : 'train');
  const result = {};
  try {
    await ready;
    if (has('dtype')) $('dtype').value = params.get('dtype');
    if (has('model')) {
      const prompt = params.get('prompt') ?? $('prompt').value;
      const options = {
        max_new_tokens: num('max_new_tokens'),
        temperature: num('temperature'),
        top_k: num('top_k'),
        top_p: num('top_p'),
        repetition_penalty: num('repetition_penalty'),
        seed: num('seed'),
      };
      $('model-url').value = params.get('model');
      $('prompt').value = prompt;
      for (const [k, id] of [['max_new_tokens', 'max-new-tokens'], ['temperature', 'temperature'], ['seed', 'seed']]) {
        if (has(k)) $(id).value = params.get(k);
      }
      await loadUrl(params.get('model'));
      Object.assign(result, await generate(prompt, options));
    }
    if (has('train_steps')) {
      const steps = num('train_steps');
      const seed = num('train_seed') ?? 1337;
      $('train-steps').value = steps;
      $('train-seed').value = seed;
      result.training = await train(steps, seed);
    }
    setStatus('done', result);
  } catch (e) {
    setStatus('error', String(e.message ?? e));
  }
}

drawLossChart($('loss-chart'), []);
await ready;
scripted();
