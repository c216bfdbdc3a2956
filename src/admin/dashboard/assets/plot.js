// Line charts on <canvas>, small and without a library: the last `windowSeconds` of samples, a nice upper bound
// for the scale, three grid lines, and the time axis counted back from now. The line takes the canvas's CSS
// `color`, the grid its `border-color`, so the stylesheet decides colours.

/** 0, 1, 2, 5, 10, 20, 50, ...: the smallest such bound at or above `value`. */
export function niceBound(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) if (value <= step * power) return step * power;
  return 10 * power;
}

/**
 * Draws `samples` ([{ t: ms, v }], oldest first) on `canvas`, the time axis ending at `now`. `format` writes the
 * scale's numbers.
 */
export function drawChart(canvas, samples, { windowSeconds = 300, now = Date.now(), format = String } = {}) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth;
  const height = canvas.clientHeight;
  if (width === 0 || height === 0) return; // hidden: drawn when shown
  if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
  }
  const g = canvas.getContext('2d');
  g.setTransform(ratio, 0, 0, ratio, 0, 0);
  g.clearRect(0, 0, width, height);
  const style = getComputedStyle(canvas);
  const line = style.color;
  const grid = style.borderTopColor;
  const text = style.getPropertyValue('--axis-text') || '#888';
  g.font = `11px ${style.fontFamily}`;

  const left = 44;
  const right = width - 8;
  const top = 8;
  const bottom = height - 18;
  const start = now - windowSeconds * 1000;
  const visible = samples.filter((s) => s.t >= start && Number.isFinite(s.v));
  const bound = niceBound(Math.max(0, ...visible.map((s) => s.v)));
  const x = (t) => left + ((t - start) / (windowSeconds * 1000)) * (right - left);
  const y = (v) => bottom - (v / bound) * (bottom - top);

  g.lineWidth = 1;
  g.strokeStyle = grid;
  g.fillStyle = text;
  g.textBaseline = 'middle';
  g.textAlign = 'right';
  for (const fraction of [0, 0.5, 1]) {
    const v = bound * fraction;
    g.beginPath();
    g.moveTo(left, Math.round(y(v)) + 0.5);
    g.lineTo(right, Math.round(y(v)) + 0.5);
    g.stroke();
    g.fillText(format(v), left - 6, y(v));
  }
  g.textBaseline = 'top';
  const minutes = (s) => `-${Number((s / 60).toFixed(1))} min`;
  for (const [fraction, label] of [[0, minutes(windowSeconds)], [0.5, minutes(windowSeconds / 2)], [1, 'now']]) {
    g.textAlign = fraction === 0 ? 'left' : fraction === 1 ? 'right' : 'center';
    g.fillText(label, left + fraction * (right - left), bottom + 4);
  }
  if (visible.length < 2) return;

  g.beginPath();
  visible.forEach((s, i) => (i === 0 ? g.moveTo(x(s.t), y(s.v)) : g.lineTo(x(s.t), y(s.v))));
  g.strokeStyle = line;
  g.lineWidth = 1.5;
  g.lineJoin = 'round';
  g.stroke();
  g.lineTo(x(visible[visible.length - 1].t), bottom);
  g.lineTo(x(visible[0].t), bottom);
  g.closePath();
  g.globalAlpha = 0.12;
  g.fillStyle = line;
  g.fill();
  g.globalAlpha = 1;
}
