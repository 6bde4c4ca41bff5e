// The chat pane: one agent, one conversation; a turn streams in as it runs. Tool calls
// and their results show up as each step is stored (the pane reads the conversation's
// new messages while the reply streams), all through the public API.
import { html, useEffect, useRef, useState } from "./vendor/htm-preact.js";
import { api, streamChat } from "./api.js";
import { MessageList } from "./agents.js";
import { ErrorText, Field, useLoad, words } from "./ui.js";

const enc = encodeURIComponent;
const POLL_MS = 700;

function newConversation() {
  return `ui-${new Date().toISOString().slice(0, 10)}-${Math.random().toString(36).slice(2, 8)}`;
}

export function Chat({ agent, conversation }) {
  const [agents] = useLoad(() => api("/v1/agents"), []);
  const [convs] = useLoad(
    () => (agent ? api(`/v1/agents/${enc(agent)}/conversations`) : Promise.resolve(null)),
    [agent],
  );
  const go = (a, c) => (location.hash = `#/chat/${enc(a)}${c ? `/${enc(c)}` : ""}`);
  const choices = convs ? convs.data.map((c) => c.id) : [];
  if (conversation && !choices.includes(conversation)) choices.unshift(conversation);
  return html`
    <section aria-labelledby="chat-title">
      <h1 id="chat-title">Chat</h1>
      <div class="row wrap">
        <${Field} id="chat-agent" label="Agent">
          <select id="chat-agent" value=${agent || ""} onChange=${(e) => go(e.target.value)}>
            <option value="">Choose an agent…</option>
            ${(agents ? agents.data : []).map((a) => html`<option value=${a.name}>${a.name}</option>`)}
          </select>
        <//>
        ${agent && html`
          <${Field} id="chat-conversation" label="Conversation">
            <select id="chat-conversation" value=${conversation || ""}
              onChange=${(e) => go(agent, e.target.value)}>
              <option value="">Choose a conversation…</option>
              ${choices.map((c) => html`<option value=${c}>${c}</option>`)}
            </select>
          <//>
          <button onClick=${() => go(agent, newConversation())}>New conversation</button>`}
      </div>
      ${agent && conversation && html`
        <${Conversation} key=${agent + "/" + conversation} agent=${agent} conversation=${conversation} />`}
    </section>`;
}

function Conversation({ agent, conversation }) {
  const [messages, setMessages] = useState([]);
  const [draft, setDraft] = useState("");
  const [reply, setReply] = useState(null); // the streaming reply's text so far
  const [error, setError] = useState(null);
  const lastId = useRef(0);
  const end = useRef(null);

  async function fetchNew() {
    const query = new URLSearchParams({ conversation, limit: "200" });
    if (lastId.current) query.set("after", String(lastId.current));
    const page = await api(`/v1/agents/${enc(agent)}/messages?${query}`);
    if (page.data.length) {
      lastId.current = page.data[page.data.length - 1].id;
      setMessages((old) => [...old, ...page.data]);
    }
  }

  useEffect(() => {
    fetchNew().catch((exc) => setError(words(exc)));
  }, []);
  useEffect(() => end.current && end.current.scrollIntoView({ block: "end" }), [messages, reply]);

  async function send(event) {
    event.preventDefault();
    const content = draft.trim();
    if (!content || reply !== null) return;
    setDraft("");
    setError(null);
    setReply("");
    const poll = setInterval(() => fetchNew().catch(() => {}), POLL_MS);
    try {
      const chunks = streamChat(
        { model: `agent/${agent}`, messages: [{ role: "user", content }] },
        { "X-Conversation-Id": conversation },
      );
      for await (const chunk of chunks) {
        const delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta;
        if (delta && delta.content) setReply((text) => (text || "") + delta.content);
      }
    } catch (exc) {
      setError(words(exc));
    } finally {
      clearInterval(poll);
      await fetchNew().catch((exc) => setError(words(exc)));
      setReply(null);
    }
  }

  return html`
    <div class="chat">
      <${MessageList} messages=${messages} />
      ${reply !== null && html`
        <div class="msg assistant streaming" aria-live="polite" data-role="streaming">
          <div class="who">assistant</div><div class="content">${reply || "…"}</div>
        </div>`}
      <div ref=${end}></div>
      <${ErrorText} error=${error} />
      <form class="composer" onSubmit=${send}>
        <label for="chat-input" class="sr-only">Message</label>
        <textarea id="chat-input" rows="2" placeholder="Message (Enter to send, Shift+Enter for a new line)"
          value=${draft} onInput=${(e) => setDraft(e.target.value)}
          onKeyDown=${(e) => {
            if (e.key === "Enter" && !e.shiftKey) {
              e.preventDefault();
              send(e);
            }
          }} />
        <button type="submit" disabled=${reply !== null}>Send</button>
      </form>
    </div>`;
}
