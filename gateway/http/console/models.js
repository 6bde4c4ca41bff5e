// Models: every handle the key may use, where the entry came from, its context window.
import { html } from "./vendor/htm-preact.js";
import { api } from "./api.js";
import { ErrorText, useLoad } from "./ui.js";

const SOURCES = {
  live: "live (the provider's list)",
  fallback: "fallback (built-in list)",
  config: "config file",
  agent: "agent",
  group: "model group",
};

export function Models() {
  const [list, error] = useLoad(() => api("/v1/models"), []);
  return html`
    <section aria-labelledby="models-title">
      <h1 id="models-title">Models</h1>
      <${ErrorText} error=${error} />
      ${list && html`
        <table>
          <caption class="sr-only">Models</caption>
          <thead><tr>
            <th scope="col">Handle</th><th scope="col">Provider</th>
            <th scope="col">Source</th><th scope="col" class="num">Context window</th>
          </tr></thead>
          <tbody>
            ${list.data.map((m) => html`
              <tr key=${m.id}>
                <td><code>${m.id}</code></td>
                <td>${m.owned_by}</td>
                <td>${SOURCES[m.source] || m.source || ""}</td>
                <td class="num">${m.context_window ? m.context_window.toLocaleString() : "—"}</td>
              </tr>`)}
          </tbody>
        </table>`}
      ${list && html`<${Groups} groups=${list.data.filter((m) => m.source === "group")} />`}
    </section>`;
}

// Model groups: their targets in order of preference, and which are resting after failures.
function Groups({ groups }) {
  if (!groups.length) return null;
  return html`
    <h2>Model groups</h2>
    <table>
      <caption class="sr-only">Model groups</caption>
      <thead><tr><th scope="col">Group</th><th scope="col">Strategy</th><th scope="col">Targets</th></tr></thead>
      <tbody>
        ${groups.map((g) => html`
          <tr key=${g.id}>
            <td><code>${g.id}</code></td>
            <td>${g.strategy}</td>
            <td>
              <ol class="targets">
                ${(g.targets || []).map((t) => html`
                  <li>
                    <code>${t}</code>
                    ${(g.cooling_down || []).includes(t) && html` <strong class="cooling">cooling down</strong>`}
                  </li>`)}
              </ol>
            </td>
          </tr>`)}
      </tbody>
    </table>`;
}
