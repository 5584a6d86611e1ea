// The live loss curve: a plain canvas line chart (no library), redrawn per step.
export function drawLossChart(canvas, losses) {
  const ctx = canvas.getContext('2d');
  const { width, height } = canvas;
  const pad = { left: 48, right: 12, top: 12, bottom: 28 };
  ctx.clearRect(0, 0, width, height);
  ctx.fillStyle = '#fff';
  ctx.fillRect(0, 0, width, height);
  ctx.strokeStyle = '#999';
  ctx.strokeRect(pad.left, pad.top, width - pad.left - pad.right, height - pad.top - pad.bottom);
  ctx.fillStyle = '#444';
  ctx.font = '12px sans-serif';
  if (losses.length === 0) {
    ctx.fillText('training loss (per step) appears here', pad.left + 10, pad.top + 20);
    return;
  }
  const max = Math.max(...losses);
  const min = Math.min(0, ...losses);
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const x = (i) => pad.left + (losses.length === 1 ? 0 : (i / (losses.length - 1)) * plotW);
  const y = (v) => pad.top + (1 - (v - min) / (max - min || 1)) * plotH;
  for (const v of [min, (min + max) / 2, max]) ctx.fillText(v.toFixed(2), 4, y(v) + 4);
  ctx.fillText(`step ${losses.length}`, width - pad.right - 60, height - 8);
  ctx.fillText('1', pad.left, height - 8);
  ctx.strokeStyle = '#c33';
  ctx.lineWidth = 2;
  ctx.beginPath();
  losses.forEach((v, i) => (i === 0 ? ctx.moveTo(x(i), y(v)) : ctx.lineTo(x(i), y(v))));
  ctx.stroke();
}
