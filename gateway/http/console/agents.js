// Agents: list, create, edit (model, description, system prompt, memory blocks), delete;
// each agent's conversations and their history, tool calls shown as such.
import { html, useState } from "./vendor/htm-preact.js";
import { api } from "./api.js";
import { ErrorText, Field, useLoad, when, words } from "./ui.js";

const enc = encodeURIComponent;
// Agent names and block labels; `-` escaped for the `v`-flag regexps browsers use.
const NAME_PATTERN = "[A-Za-z0-9_\\-]{1,64}";

export function Agents({ name, conversation }) {
  if (name) return html`<${AgentDetail} name=${name} conversation=${conversation} />`;
  return html`<${AgentList} />`;
}

function AgentList() {
  const [list, error, reload] = useLoad(() => api("/v1/agents"), []);
  const [creating, setCreating] = useState(false);
  return html`
    <section aria-labelledby="agents-title">
      <div class="row">
        <h1 id="agents-title">Agents</h1>
        <button onClick=${() => setCreating(!creating)} aria-expanded=${creating}>
          ${creating ? "Cancel" : "New agent"}
        </button>
      </div>
      ${creating && html`<${CreateAgent} onCreated=${(a) => (location.hash = `#/agents/${enc(a.name)}`)} />`}
      <${ErrorText} error=${error} />
      ${list && list.data.length === 0 && html`<p>No agents yet.</p>`}
      ${list && list.data.length > 0 && html`
        <table>
          <caption class="sr-only">Agents</caption>
          <thead><tr><th scope="col">Name</th><th scope="col">Model</th><th scope="col">Description</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
          <tbody>
            ${list.data.map((a) => html`
              <tr key=${a.id}>
                <td><a href="#/agents/${enc(a.name)}">${a.name}</a></td>
                <td><code>${a.model}</code></td>
                <td>${a.description}</td>
                <td><a href="#/chat/${enc(a.name)}">Chat</a></td>
              </tr>`)}
          </tbody>
        </table>`}
      <button class="link" onClick=${reload}>Refresh</button>
    </section>`;
}

// The models an agent may run on: every listed model that is not itself an agent.
function useModels() {
  const [models] = useLoad(() => api("/v1/models"), []);
  return models ? models.data.filter((m) => !m.id.startsWith("agent/")) : null;
}

function ModelSelect({ id, value, onChange, models }) {
  const known = models && models.some((m) => m.id === value);
  return html`
    <select id=${id} onChange=${(e) => onChange(e.target.value)} required>
      ${!value && html`<option value="">Choose a model…</option>`}
      ${value && !known && html`<option value=${value} selected>${value}${models ? " (not listed)" : ""}</option>`}
      ${(models || []).map((m) => html`
        <option value=${m.id} selected=${m.id === value}>
          ${m.id}${m.context_window ? ` · ${m.context_window.toLocaleString()} tokens` : ""}
        </option>`)}
    </select>`;
}

function BlocksEditor({ blocks, setBlocks }) {
  function change(i, field, value) {
    setBlocks(blocks.map((b, j) => (j === i ? { ...b, [field]: value } : b)));
  }
  return html`
    <fieldset>
      <legend>Memory blocks</legend>
      ${blocks.map((b, i) => {
        const over = b.value.length > b.limit;
        return html`
          <div class="block" key=${i}>
            <${Field} id=${`block-${i}-label`} label="Label">
              <input id=${`block-${i}-label`} value=${b.label} required pattern=${NAME_PATTERN}
                onInput=${(e) => change(i, "label", e.target.value)} />
            <//>
            <${Field} id=${`block-${i}-value`} label=${`Value of “${b.label || "block"}”`}
              hint=${`${b.value.length.toLocaleString()} / ${Number(b.limit).toLocaleString()} characters`}>
              <textarea id=${`block-${i}-value`} rows="3" value=${b.value} aria-invalid=${over}
                aria-describedby=${`block-${i}-value-hint`}
                onInput=${(e) => change(i, "value", e.target.value)} />
            <//>
            <${Field} id=${`block-${i}-limit`} label="Limit (characters)">
              <input id=${`block-${i}-limit`} type="number" min="1" max="1000000" value=${b.limit}
                onInput=${(e) => change(i, "limit", Number(e.target.value))} />
            <//>
            <button type="button" class="link" onClick=${() => setBlocks(blocks.filter((_, j) => j !== i))}>
              Remove block “${b.label}”
            </button>
          </div>`;
      })}
      <button type="button" onClick=${() => setBlocks([...blocks, { label: "", value: "", limit: 2000 }])}>
        Add memory block
      </button>
    </fieldset>`;
}

function AgentFields({ form, set, models, withName }) {
  return html`
    ${withName && html`
      <${Field} id="agent-name" label="Name" hint="Letters, digits, _ and -; up to 64.">
        <input id="agent-name" value=${form.name} required pattern=${NAME_PATTERN}
          onInput=${(e) => set({ ...form, name: e.target.value })} />
      <//>`}
    <${Field} id="agent-model" label="Model">
      <${ModelSelect} id="agent-model" value=${form.model} models=${models}
        onChange=${(model) => set({ ...form, model })} />
    <//>
    <${Field} id="agent-description" label="Description">
      <input id="agent-description" value=${form.description}
        onInput=${(e) => set({ ...form, description: e.target.value })} />
    <//>
    <${Field} id="agent-system" label="System prompt">
      <textarea id="agent-system" rows="5" value=${form.system}
        onInput=${(e) => set({ ...form, system: e.target.value })} />
    <//>
    <${BlocksEditor} blocks=${form.memory_blocks}
      setBlocks=${(memory_blocks) => set({ ...form, memory_blocks })} />`;
}

function CreateAgent({ onCreated }) {
  const models = useModels();
  const [form, setForm] = useState({
    name: "", model: "", description: "", system: "",
    memory_blocks: [{ label: "human", value: "", limit: 2000 }, { label: "persona", value: "", limit: 2000 }],
  });
  const [error, setError] = useState(null);
  async function submit(event) {
    event.preventDefault();
    try {
      onCreated(await api("/v1/agents", { method: "POST", body: form }));
    } catch (exc) {
      setError(words(exc));
    }
  }
  return html`
    <form class="card" onSubmit=${submit} aria-label="New agent">
      <h2>New agent</h2>
      <${AgentFields} form=${form} set=${setForm} models=${models} withName=${true} />
      <${ErrorText} error=${error} />
      <button type="submit">Create agent</button>
    </form>`;
}

function AgentDetail({ name, conversation }) {
  const [agent, error, reload] = useLoad(() => api(`/v1/agents/${enc(name)}`), [name]);
  if (error) return html`<${ErrorText} error=${error} /><a href="#/agents">All agents</a>`;
  if (!agent) return html`<p aria-busy="true">Loading…</p>`;
  return html`
    <p><a href="#/agents">← All agents</a></p>
    <div class="row">
      <h1>${agent.name}</h1>
      <a class="button" href="#/chat/${enc(agent.name)}">Chat with ${agent.name}</a>
    </div>
    <p class="muted">Created ${when(agent.created_at)} · id <code>${agent.id}</code></p>
    <div class="columns">
      <${EditAgent} key=${agent.updated_at} agent=${agent} onSaved=${reload} />
      <${Conversations} agent=${agent} selected=${conversation} />
    </div>`;
}

function EditAgent({ agent, onSaved }) {
  const models = useModels();
  const [form, setForm] = useState({
    model: agent.model, description: agent.description, system: agent.system,
    memory_blocks: agent.memory_blocks,
  });
  const [status, setStatus] = useState(null);
  const [error, setError] = useState(null);
  const [confirming, setConfirming] = useState(false);
  async function save(event) {
    event.preventDefault();
    setError(null);
    try {
      await api(`/v1/agents/${enc(agent.id)}`, { method: "PATCH", body: form });
      setStatus("Saved.");
      onSaved();
    } catch (exc) {
      setError(words(exc));
    }
  }
  async function remove() {
    try {
      await api(`/v1/agents/${enc(agent.id)}`, { method: "DELETE" });
      location.hash = "#/agents";
    } catch (exc) {
      setError(words(exc));
    }
  }
  return html`
    <section class="card" aria-labelledby="settings-title">
      <h2 id="settings-title">Settings and memory</h2>
      <form onSubmit=${save}>
        <${AgentFields} form=${form} set=${setForm} models=${models} withName=${false} />
        <${ErrorText} error=${error} />
        ${status && html`<p role="status">${status}</p>`}
        <button type="submit">Save changes</button>
      </form>
      <div class="danger">
        ${!confirming && html`<button class="danger" onClick=${() => setConfirming(true)}>Delete agent</button>`}
        ${confirming && html`
          <div role="alertdialog" aria-labelledby="confirm-text">
            <p id="confirm-text">Delete ${agent.name} and all its conversations? This cannot be undone.</p>
            <button class="danger" onClick=${remove}>Yes, delete ${agent.name}</button>
            <button onClick=${() => setConfirming(false)}>Keep it</button>
          </div>`}
      </div>
    </section>`;
}

function Conversations({ agent, selected }) {
  const [list, error] = useLoad(() => api(`/v1/agents/${enc(agent.id)}/conversations`), [agent.id]);
  return html`
    <section class="card" aria-labelledby="conversations-title">
      <h2 id="conversations-title">Conversations</h2>
      <${ErrorText} error=${error} />
      ${list && list.data.length === 0 && html`<p>No conversations yet.</p>`}
      <ul class="conversations">
        ${(list ? list.data : []).map((c) => html`
          <li key=${c.id}>
            <a href="#/agents/${enc(agent.name)}/${enc(c.id)}"
              aria-current=${selected === c.id ? "true" : undefined}>${c.id}</a>
            <span class="muted"> · ${c.message_count} messages · ${when(c.last_message_at || c.created_at)}</span>
          </li>`)}
      </ul>
      ${selected && html`<${History} key=${selected} agent=${agent} conversation=${selected} />`}
    </section>`;
}

const PAGE = 20;

function History({ agent, conversation }) {
  const [pages, setPages] = useState([]);
  const [more, setMore] = useState(false);
  const [error, setError] = useState(null);
  async function load(before) {
    const query = new URLSearchParams({ conversation, limit: String(PAGE) });
    if (before) query.set("before", String(before));
    try {
      const page = await api(`/v1/agents/${enc(agent.id)}/messages?${query}`);
      setPages((old) => [page.data, ...(before ? old : [])]);
      setMore(page.has_more);
    } catch (exc) {
      setError(words(exc));
    }
  }
  useLoad(() => load(null), [conversation]);
  const messages = pages.flat();
  return html`
    <h3>History of ${conversation}</h3>
    <${ErrorText} error=${error} />
    ${more && html`<button onClick=${() => load(messages[0].id)}>Older messages</button>`}
    <${MessageList} messages=${messages} />`;
}

export function MessageList({ messages }) {
  return html`
    <ol class="messages">
      ${messages.map((m) => html`<li key=${m.id}><${Message} message=${m} /></li>`)}
    </ol>`;
}

function text(content) {
  if (content == null) return "";
  if (typeof content === "string") return content;
  return content.map((part) => (part.type === "text" ? part.text : `[${part.type}]`)).join("\n");
}

function Message({ message }) {
  const m = message;
  if (m.role === "tool") {
    return html`
      <div class="msg tool" data-role="tool">
        <div class="who">Tool result${m.name ? ` · ${m.name}` : ""}</div>
        <pre>${text(m.content)}</pre>
      </div>`;
  }
  return html`
    <div class="msg ${m.role}" data-role=${m.role}>
      <div class="who">${m.role}</div>
      ${m.content && html`<div class="content">${text(m.content)}</div>`}
      ${(m.tool_calls || []).map((call) => html`
        <div class="tool-call" data-role="tool-call">
          <span class="who">Tool call</span> <code>${call.function.name}</code>
          <pre>${call.function.arguments}</pre>
        </div>`)}
    </div>`;
}
