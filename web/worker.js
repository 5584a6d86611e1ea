// The model runs here, in a module Web Worker, so the page stays responsive while a
// token or a training step is computed. Messages in: load-url, load-files, generate,
// train, answer, stop. Messages out: ready, loaded, token, generated, loss, trained,
// answer, error.
import init, { WasmModel, GenerateSettings, AdditionTrainer, matmulEngine } from './pkg/rg_wasm.js';

const TOKENIZER_FILES = ['tokenizer.json', 'vocab.json', 'merges.txt', 'char_tokenizer.json'];

let model = null;
let trainer = null;
let stopRequested = false;

const post = (message) => self.postMessage(message);
// Lets queued messages (a stop request) in between tokens or steps.
const yieldToEvents = () => new Promise((resolve) => setTimeout(resolve, 0));

async function fetchFile(base, name, required) {
  const response = await fetch(new URL(name, base));
  if (response.ok) return response;
  if (required) throw new Error(`${new URL(name, base)}: HTTP ${response.status}`);
  return null;
}

async function loadFromUrl(url, dtype) {
  const base = new URL(url.endsWith('/') ? url : url + '/', self.location.href);
  const config = await (await fetchFile(base, 'config.json', true)).text();
  const weights = new Uint8Array(await (await fetchFile(base, 'model.safetensors', true)).arrayBuffer());
  const texts = {};
  for (const name of TOKENIZER_FILES) {
    const response = await fetchFile(base, name, false);
    if (response) texts[name] = await response.text();
    if (name === 'tokenizer.json' && texts[name] !== undefined) break;
  }
  return build(config, weights, texts, dtype);
}

async function loadFromFiles(files, dtype) {
  const byName = Object.fromEntries(files.map((f) => [f.name, f]));
  for (const name of ['config.json', 'model.safetensors']) {
    if (!byName[name]) throw new Error(`${name} is missing among the chosen files`);
  }
  const texts = {};
  for (const name of TOKENIZER_FILES) if (byName[name]) texts[name] = await byName[name].text();
  const weights = new Uint8Array(await byName['model.safetensors'].arrayBuffer());
  return build(await byName['config.json'].text(), weights, texts, dtype);
}

function build(config, weights, texts, dtype) {
  if (model) model.free();
  model = new WasmModel(config, weights, texts['tokenizer.json'], texts['vocab.json'],
    texts['merges.txt'], texts['char_tokenizer.json'], dtype);
  return { params: model.paramCount(), context: model.contextLength(), dtype };
}

function settingsFrom(options) {
  const s = new GenerateSettings();
  if (options.max_new_tokens !== undefined) s.maxNewTokens = options.max_new_tokens;
  if (options.temperature !== undefined) s.temperature = options.temperature;
  if (options.top_k !== undefined) s.topK = options.top_k;
  if (options.top_p !== undefined) s.topP = options.top_p;
  if (options.repetition_penalty !== undefined) s.repetitionPenalty = options.repetition_penalty;
  if (options.seed !== undefined) s.seed = options.seed;
  return s;
}

async function generate({ prompt, options }) {
  if (!model) throw new Error('load a model first');
  const session = model.generate(prompt, settingsFrom(options));
  stopRequested = false;
  try {
    let count = 0;
    for (let id = session.nextToken(); id !== undefined; id = session.nextToken()) {
      post({ type: 'token', id, text: session.text(), decode_tokens_per_s: session.decodeTokensPerS });
      if (++count % 8 === 0) await yieldToEvents();
      if (stopRequested) break;
    }
    post({
      type: 'generated',
      result: {
        prompt_ids: Array.from(session.promptIds),
        generated_ids: Array.from(session.generatedIds),
        text: session.text(),
        decode_tokens_per_s: session.decodeTokensPerS,
        prefill_tokens_per_s: session.prefillTokensPerS,
      },
    });
  } finally {
    session.free();
  }
}

async function train({ steps, seed }) {
  if (trainer) trainer.free();
  trainer = new AdditionTrainer(steps, seed);
  stopRequested = false;
  const losses = [];
  const start = performance.now();
  for (let step = 1; step <= steps && !stopRequested; step++) {
    const loss = trainer.trainStep();
    losses.push(loss);
    post({ type: 'loss', step, loss });
    await yieldToEvents();
  }
  const seconds = (performance.now() - start) / 1000;
  post({ type: 'trained', result: { steps: losses.length, seed, losses, final_loss: losses[losses.length - 1], steps_per_s: losses.length / seconds } });
}

const handlers = {
  'load-url': async (m) => post({ type: 'loaded', info: await loadFromUrl(m.url, m.dtype) }),
  'load-files': async (m) => post({ type: 'loaded', info: await loadFromFiles(m.files, m.dtype) }),
  generate,
  train,
  answer: async ({ a, b }) => {
    if (!trainer) throw new Error('train first');
    post({ type: 'answer', a, b, text: trainer.answer(a, b) });
  },
  stop: async () => { stopRequested = true; },
};

// Messages are handled one at a time, except stop, which must reach a running loop.
let queue = Promise.resolve();
self.onmessage = ({ data }) => {
  const handler = handlers[data.type];
  const run = async () => {
    try {
      if (!handler) throw new Error(`unknown message ${data.type}`);
      await handler(data);
    } catch (e) {
      post({ type: 'error', during: data.type, message: String(e && e.message ? e.message : e) });
    }
  };
  if (data.type === 'stop') run();
  else queue = queue.then(run);
};

await init();
post({ type: 'ready', engine: matmulEngine() });
