// Server-Sent Events over fetch(): EventSource cannot send the Authorization header, and
// the token must never go into a URL. Reconnects with Last-Event-ID, so nothing is missed.
import { authHeaders } from "./api.js";

const RETRY_MS = 2000;

// Parses one SSE message block ("id: 7\nevent: progress\ndata: {...}").
function parseBlock(block) {
  const message = { id: null, event: "message", data: "" };
  const data = [];
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue; // a keep-alive comment
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "id") message.id = value;
    else if (field === "event") message.event = value;
    else if (field === "data") data.push(value);
  }
  message.data = data.join("\n");
  return data.length ? message : null;
}

// follow(url, {onEvent, onStatus, isFinished}) -> stop(). onEvent(kind, data, id) per message;
// the stream is reopened after a drop until isFinished() says the job is over.
export function follow(url, { onEvent, onStatus = () => {}, isFinished = () => false }) {
  const abort = new AbortController();
  let lastId = null;

  async function readOnce() {
    const headers = authHeaders({ Accept: "text/event-stream" });
    if (lastId !== null) headers["Last-Event-ID"] = lastId;
    const response = await fetch(url, { headers, signal: abort.signal });
    if (!response.ok) {
      const error = new Error(`events: HTTP ${response.status}`);
      error.status = response.status;
      throw error;
    }
    onStatus("live");
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value.replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const message = parseBlock(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
        if (!message) continue;
        if (message.id !== null) lastId = message.id;
        let data = {};
        try { data = JSON.parse(message.data); } catch { data = { raw: message.data }; }
        onEvent(message.event, data, message.id);
      }
    }
  }

  (async () => {
    while (!abort.signal.aborted) {
      try {
        await readOnce();
        if (isFinished()) { onStatus("ended"); return; }
      } catch (err) {
        if (abort.signal.aborted) return;
        if (err.status === 401 || err.status === 404) { onStatus(`stopped (${err.message})`); return; }
        onStatus(`reconnecting (${err.message})`);
      }
      await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
    }
  })();
  return () => abort.abort();
}
