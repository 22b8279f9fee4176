// A small line chart on a canvas: a few series over time, the latest value in the title.

const COLORS = ["#2f6fde", "#e0692b", "#1f9d55", "#9b51e0"];

export function chart(title, series, {unit = "", digits = 1} = {}) {
  const canvas = document.createElement("canvas");
  const now = document.createElement("span");
  now.className = "now";
  const heading = document.createElement("h3");
  heading.append(title, now);
  const legend = document.createElement("div");
  legend.className = "legend";
  series.forEach((s, i) => {
    const item = document.createElement("span");
    item.style.setProperty("--swatch", COLORS[i % COLORS.length]);
    item.textContent = `${s.label} `;
    legend.append(item);
  });
  const box = document.createElement("div");
  box.className = "chart";
  box.append(heading, canvas);
  if (series.length > 1) box.append(legend);

  function draw(samples) {
    const width = canvas.clientWidth || 300;
    const height = canvas.clientHeight || 112;
    const ratio = window.devicePixelRatio || 1;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    const g = canvas.getContext("2d");
    g.scale(ratio, ratio);
    g.clearRect(0, 0, width, height);
    const values = series.map((s) => samples.map((sample) => s.value(sample)));
    const finite = values.flat().filter((v) => v !== null && v !== undefined && Number.isFinite(v));
    const top = Math.max(1e-9, ...finite) * 1.1;
    const pad = {left: 4, right: 4, top: 14, bottom: 4};
    const plotW = width - pad.left - pad.right;
    const plotH = height - pad.top - pad.bottom;
    g.strokeStyle = "#e3e6eb";
    g.lineWidth = 1;
    g.beginPath();
    g.moveTo(pad.left, pad.top + plotH + 0.5);
    g.lineTo(pad.left + plotW, pad.top + plotH + 0.5);
    g.stroke();
    g.fillStyle = "#6b7280";
    g.font = "11px system-ui, sans-serif";
    g.fillText(`max ${format(top / 1.1, digits)}${unit}`, pad.left, 10);
    const count = samples.length;
    values.forEach((points, i) => {
      g.strokeStyle = COLORS[i % COLORS.length];
      g.lineWidth = 1.5;
      g.beginPath();
      let drawing = false;
      points.forEach((v, j) => {
        if (v === null || v === undefined || !Number.isFinite(v)) { drawing = false; return; }
        const x = pad.left + (count > 1 ? (j / (count - 1)) * plotW : plotW);
        const y = pad.top + plotH - (v / top) * plotH;
        if (drawing) g.lineTo(x, y); else g.moveTo(x, y);
        drawing = true;
      });
      g.stroke();
    });
    const latest = samples[samples.length - 1];
    now.textContent = latest ? series.map((s) => `${format(s.value(latest), digits)}${unit}`).join(" / ") : "";
    box.dataset.points = String(count);
  }

  return {element: box, draw};
}

function format(value, digits) {
  if (value === null || value === undefined || !Number.isFinite(value)) return "—";
  return Number(value).toLocaleString(undefined, {maximumFractionDigits: digits});
}
