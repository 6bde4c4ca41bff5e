// The console's shell: asks for a key, then shows the views the key may use.
import { html, render, useEffect, useState } from "./vendor/htm-preact.js";
import { ApiError, api, session } from "./api.js";
import { Agents } from "./agents.js";
import { Chat } from "./chat.js";
import { Models } from "./models.js";
import { Keys, Usage } from "./admin.js";

function useHash() {
  const [hash, setHash] = useState(location.hash || "#/agents");
  useEffect(() => {
    const onChange = () => setHash(location.hash || "#/agents");
    addEventListener("hashchange", onChange);
    return () => removeEventListener("hashchange", onChange);
  }, []);
  return hash.slice(2).split("/").map(decodeURIComponent);
}

function Login({ onReady, error }) {
  const [key, setKey] = useState("");
  const [problem, setProblem] = useState(error);
  const [busy, setBusy] = useState(false);
  async function submit(event) {
    event.preventDefault();
    setBusy(true);
    session.set(key.trim());
    try {
      await onReady();
    } catch (exc) {
      session.clear();
      setProblem(exc instanceof ApiError ? exc.words : String(exc));
    } finally {
      setBusy(false);
    }
  }
  return html`
    <main class="login">
      <h1>agent-gateway</h1>
      <form onSubmit=${submit}>
        <label for="key">Gateway key</label>
        <input id="key" type="password" autocomplete="off" value=${key}
          onInput=${(e) => setKey(e.target.value)}
          placeholder="sk-… (leave empty if the gateway has no keys)" />
        <p class="hint">Kept in this tab only; closing the tab forgets it.</p>
        <button type="submit" disabled=${busy}>Open the console</button>
        ${problem && html`<p class="error" role="alert">${problem}</p>`}
      </form>
    </main>`;
}


function App() {
  const [ready, setReady] = useState(false);
  const [admin, setAdmin] = useState(false);
  const [error, setError] = useState(null);
  const route = useHash();

  async function connect() {
    // Proves the key, and tells whether it is the admin's (keys and usage are theirs).
    const caller = await api("/v1/me");
    setAdmin(Boolean(caller.is_admin));
    setReady(true);
    setError(null);
  }

  useEffect(() => {
    if (session.key === null) return;
    connect().catch((exc) => {
      session.clear();
      setError(exc instanceof ApiError ? exc.words : String(exc));
    });
  }, []);

  if (!ready) return html`<${Login} onReady=${connect} error=${error} />`;

  const tabs = [
    ["agents", "Agents"],
    ["chat", "Chat"],
    ["models", "Models"],
    ...(admin ? [["keys", "Keys"], ["usage", "Usage"]] : []),
  ];
  const [view, ...rest] = route;
  function signOut() {
    session.clear();
    setReady(false);
  }
  let body;
  if (view === "chat") body = html`<${Chat} agent=${rest[0]} conversation=${rest[1]} />`;
  else if (view === "models") body = html`<${Models} />`;
  else if (view === "keys" && admin) body = html`<${Keys} />`;
  else if (view === "usage" && admin) body = html`<${Usage} />`;
  else body = html`<${Agents} name=${rest[0]} conversation=${rest[1]} />`;
  const current = tabs.some(([id]) => id === view) ? view : "agents";
  return html`
    <header>
      <span class="brand">agent-gateway</span>
      <nav aria-label="Sections">
        ${tabs.map(
          ([id, label]) => html`
            <a href="#/${id}" aria-current=${current === id ? "page" : undefined}>${label}</a>`,
        )}
      </nav>
      <button class="link" onClick=${signOut}>Sign out</button>
    </header>
    <main>${body}</main>`;
}

render(html`<${App} />`, document.getElementById("app"));
