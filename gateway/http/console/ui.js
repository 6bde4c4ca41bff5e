// Small pieces every view uses.
import { html, useEffect, useState } from "./vendor/htm-preact.js";
import { ApiError } from "./api.js";

export function words(exc) {
  return exc instanceof ApiError ? exc.words : String(exc);
}

export function ErrorText({ error }) {
  return error ? html`<p class="error" role="alert">${error}</p>` : null;
}

// Runs `load` now and whenever `deps` change: [data, error, reload].
export function useLoad(load, deps) {
  const [data, setData] = useState(null);
  const [error, setError] = useState(null);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    setError(null);
    load()
      .then((value) => live && setData(value))
      .catch((exc) => live && setError(words(exc)));
    return () => {
      live = false;
    };
  }, [...deps, tick]);
  return [data, error, () => setTick((n) => n + 1)];
}

export function when(seconds) {
  return seconds ? new Date(seconds * 1000).toLocaleString() : "";
}

export function Field({ id, label, children, hint }) {
  return html`
    <div class="field">
      <label for=${id}>${label}</label>
      ${children}
      ${hint && html`<span class="hint" id=${id + "-hint"}>${hint}</span>`}
    </div>`;
}
