// Admin views: virtual keys (create with allow-lists and limits, the secret shown once,
// revoke) and usage (requests, tokens and cost by key, model or day, as a chart).
import { html, useState } from "./vendor/htm-preact.js";
import { api } from "./api.js";
import { ErrorText, Field, useLoad, when, words } from "./ui.js";

const enc = encodeURIComponent;

function list(text) {
  const items = text.split(",").map((s) => s.trim()).filter(Boolean);
  return items.length ? items : undefined;
}

function number(text) {
  return text.trim() === "" ? undefined : Number(text);
}

export function Keys() {
  const [keys, error, reload] = useLoad(() => api("/v1/keys"), []);
  const [failure, setFailure] = useState(null);
  async function revoke(key) {
    if (!confirm(`Revoke the key ${key.name}? Requests with it stop within seconds.`)) return;
    try {
      await api(`/v1/keys/${enc(key.id)}`, { method: "DELETE" });
      reload();
    } catch (exc) {
      setFailure(words(exc));
    }
  }
  return html`
    <section aria-labelledby="keys-title">
      <h1 id="keys-title">Keys</h1>
      <${CreateKey} onCreated=${reload} />
      <${ErrorText} error=${error || failure} />
      ${keys && html`
        <table>
          <caption class="sr-only">Virtual keys</caption>
          <thead><tr>
            <th scope="col">Name</th><th scope="col">Models</th><th scope="col">Limits</th>
            <th scope="col">Budget</th><th scope="col">Expires</th><th scope="col">State</th>
            <th scope="col"><span class="sr-only">Actions</span></th>
          </tr></thead>
          <tbody>
            ${keys.data.map((k) => html`
              <tr key=${k.id}>
                <td>${k.name}</td>
                <td>${k.models ? k.models.join(", ") : "all"}</td>
                <td>${[k.rpm && `${k.rpm} rpm`, k.tpm && `${k.tpm} tpm`].filter(Boolean).join(" · ") || "none"}</td>
                <td>${k.max_budget_usd != null ? `$${k.max_budget_usd} ${k.budget_period || "total"}` : "none"}</td>
                <td>${k.expires_at ? when(k.expires_at) : "never"}</td>
                <td>${k.revoked_at ? "revoked" : "active"}</td>
                <td>${!k.revoked_at && html`
                  <button class="danger" onClick=${() => revoke(k)}>Revoke ${k.name}</button>`}</td>
              </tr>`)}
          </tbody>
        </table>`}
    </section>`;
}

function CreateKey({ onCreated }) {
  const empty = { name: "", models: "", agents: "", mcp_tools: "", rpm: "", tpm: "", budget: "", period: "", expires: "" };
  const [form, setForm] = useState(empty);
  const [secret, setSecret] = useState(null);
  const [error, setError] = useState(null);
  const input = (field, label, props = {}) => html`
    <${Field} id=${`key-${field}`} label=${label} hint=${props.hint}>
      <input id=${`key-${field}`} value=${form[field]} type=${props.type || "text"}
        min=${props.min} step=${props.step} required=${props.required}
        onInput=${(e) => setForm({ ...form, [field]: e.target.value })} />
    <//>`;
  async function submit(event) {
    event.preventDefault();
    setError(null);
    const body = {
      name: form.name,
      models: list(form.models),
      agents: list(form.agents),
      mcp_tools: list(form.mcp_tools),
      rpm: number(form.rpm),
      tpm: number(form.tpm),
      max_budget_usd: number(form.budget),
      budget_period: form.period || undefined,
      expires_at: form.expires ? Math.floor(new Date(form.expires).getTime() / 1000) : undefined,
    };
    try {
      const created = await api("/v1/keys", { method: "POST", body });
      setSecret({ name: created.name, key: created.key });
      setForm(empty);
      onCreated();
    } catch (exc) {
      setError(words(exc));
    }
  }
  return html`
    <form class="card" onSubmit=${submit} aria-label="New key">
      <h2>New key</h2>
      <div class="grid">
        ${input("name", "Name", { required: true })}
        ${input("models", "Models", { hint: "Comma-separated handles or globs (kimi/*); empty = all" })}
        ${input("agents", "Agents", { hint: "Names or globs; empty = all" })}
        ${input("mcp_tools", "MCP tools", { hint: "Tool names or globs; empty = all" })}
        ${input("rpm", "Requests per minute", { type: "number", min: 1 })}
        ${input("tpm", "Tokens per minute", { type: "number", min: 1 })}
        ${input("budget", "Budget (USD)", { type: "number", min: 0, step: "0.01" })}
        <${Field} id="key-period" label="Budget period">
          <select id="key-period" value=${form.period} onChange=${(e) => setForm({ ...form, period: e.target.value })}>
            <option value="">total (never resets)</option>
            <option value="daily">daily</option>
            <option value="monthly">monthly</option>
          </select>
        <//>
        ${input("expires", "Expires", { type: "datetime-local" })}
      </div>
      <${ErrorText} error=${error} />
      <button type="submit">Create key</button>
      ${secret && html`
        <div class="secret" role="status">
          <p>The secret of <strong>${secret.name}</strong>, shown this once; copy it now:</p>
          <code data-secret>${secret.key}</code>
        </div>`}
    </form>`;
}

// Cents for real spend; small test-sized amounts keep their digits.
function usd(value) {
  if (value === 0) return "$0";
  return value < 0.01 ? `$${value.toFixed(6)}` : `$${value.toFixed(2)}`;
}

const GROUPS = [["key", "Key"], ["model", "Model"], ["day", "Day"]];

export function Usage() {
  const [group, setGroup] = useState("day");
  const [usage, error] = useLoad(() => api(`/v1/usage?group_by=${group}`), [group]);
  const rows = usage ? usage.data : [];
  const label = (row) =>
    group === "key" ? row.key_name || row.key_id || "static keys" : String(row[group] ?? "");
  const cost = (row) => Number(row.cost_usd ?? row.spend_usd ?? 0);
  const tokens = (row) =>
    Number(row.total_tokens ?? (row.prompt_tokens || 0) + (row.completion_tokens || 0));
  return html`
    <section aria-labelledby="usage-title">
      <h1 id="usage-title">Usage</h1>
      <${Field} id="usage-group" label="Group by">
        <select id="usage-group" value=${group} onChange=${(e) => setGroup(e.target.value)}>
          ${GROUPS.map(([id, name]) => html`<option value=${id}>${name}</option>`)}
        </select>
      <//>
      <${ErrorText} error=${error} />
      ${usage && rows.length === 0 && html`<p>No usage recorded yet.</p>`}
      ${rows.length > 0 && html`
        <${BarChart} title="Cost (USD)" rows=${rows} label=${label} value=${cost} format=${usd} />
        <${BarChart} title="Tokens" rows=${rows} label=${label} value=${tokens} format=${(v) => v.toLocaleString()} />
        <table>
          <caption class="sr-only">Usage by ${group}</caption>
          <thead><tr>
            <th scope="col">${group}</th><th scope="col" class="num">Requests</th>
            <th scope="col" class="num">Prompt tokens</th><th scope="col" class="num">Completion tokens</th>
            <th scope="col" class="num">Cost (USD)</th>
          </tr></thead>
          <tbody>
            ${rows.map((r) => html`
              <tr key=${label(r)}>
                <td>${label(r)}</td><td class="num">${r.requests ?? ""}</td>
                <td class="num">${(r.prompt_tokens ?? 0).toLocaleString()}</td>
                <td class="num">${(r.completion_tokens ?? 0).toLocaleString()}</td>
                <td class="num">${usd(cost(r))}</td>
              </tr>`)}
          </tbody>
        </table>`}
    </section>`;
}

// A horizontal bar chart in SVG; the table below carries the same numbers for screen readers.
function BarChart({ title, rows, label, value, format }) {
  const max = Math.max(...rows.map(value), 0) || 1;
  const bar = 22;
  const height = rows.length * (bar + 6) + 8;
  return html`
    <figure class="chart">
      <figcaption>${title}</figcaption>
      <svg role="img" aria-label=${`${title} by group`} viewBox="0 0 600 ${height}" width="600" height=${height}>
        ${rows.map((r, i) => {
          const y = 4 + i * (bar + 6);
          const w = Math.max(2, (value(r) / max) * 330);
          return html`
            <g key=${i}>
              <text x="0" y=${y + 15} class="label">${label(r).slice(0, 22)}</text>
              <rect x="170" y=${y} width=${w} height=${bar} rx="3" />
              <text x=${176 + w} y=${y + 15} class="value">${format(value(r))}</text>
            </g>`;
        })}
      </svg>
    </figure>`;
}
