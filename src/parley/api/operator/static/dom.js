// Small DOM and formatting helpers. Data only ever reaches the page as text nodes.

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key in el && typeof value !== "string") el[key] = value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

export function table(columns, rows, {id, onSort, sort, order} = {}) {
  const head = h("tr", null, columns.map((column) => {
    const sortable = column.sort && onSort;
    const classes = [column.num ? "num" : "", sortable ? "sortable" : "",
      sortable && sort === column.sort ? `sorted ${order === "desc" ? "desc" : ""}` : ""];
    return h("th", {
      class: classes.join(" ").trim() || null,
      dataset: column.sort ? {sort: column.sort} : undefined,
      onclick: sortable ? () => onSort(column.sort) : null,
    }, column.title);
  }));
  const body = h("tbody", null, rows.map((row) => {
    const tr = h("tr", {class: row._class || null},
      columns.map((column) => {
        const value = column.cell ? column.cell(row) : row[column.key];
        return h("td", {class: [column.class || column.key, column.num ? "num" : ""].join(" ").trim()},
          value === null || value === undefined ? "" : value);
      }));
    return tr;
  }));
  return h("div", {class: "scroll"}, h("table", {id}, h("thead", null, head), body));
}

export function fields(pairs) {
  return h("dl", {class: "fields"}, pairs.map(([name, value]) => [h("dt", null, name),
    h("dd", null, value === null || value === undefined ? "—" : value)]));
}

export function ago(iso) {
  if (!iso) return "—";
  const seconds = (Date.now() - Date.parse(iso)) / 1000;
  return `${duration(seconds)} ago`;
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "—";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

export function bytes(n) {
  if (n === null || n === undefined) return "—";
  const units = ["B", "KiB", "MiB", "GiB"];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
  return `${value.toFixed(unit ? 1 : 0)} ${units[unit]}`;
}

export function number(n, digits = 0) {
  if (n === null || n === undefined) return "—";
  return Number(n).toLocaleString(undefined, {maximumFractionDigits: digits});
}

export function statusBadge(status) {
  return h("span", {class: `status ${status}`}, status);
}

export function pager(total, offset, limit, go) {
  const last = Math.min(offset + limit, total);
  return h("div", {class: "pager"},
    h("button", {type: "button", class: "prev", disabled: offset <= 0,
      onclick: () => go(Math.max(0, offset - limit))}, "‹ Prev"),
    h("span", {class: "range"}, total ? `${offset + 1}–${last} of ${number(total)}` : "none"),
    h("button", {type: "button", class: "next", disabled: last >= total,
      onclick: () => go(offset + limit)}, "Next ›"));
}

export function flash(message, {error = false} = {}) {
  const box = document.getElementById("flash");
  box.textContent = message;
  box.className = error ? "error" : "";
  clearTimeout(flash.timer);
  flash.timer = setTimeout(() => { box.textContent = ""; }, 6000);
}
