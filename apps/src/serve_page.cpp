// The chat page at "/": plain HTML, CSS and JavaScript in one string, nothing fetched
// from elsewhere. It keeps the conversation in the page, sends all of it with each turn
// to /v1/chat/completions with stream: true, and shows the answer as chunks arrive.
//
// For scripts and tests, URL parameters drive it: every `q` is sent as a turn in order
// ("/clear" presses the clear button), and `temperature`, `max_tokens` and `key` set
// those fields. When the last turn is answered, <body> gets data-state="done".
#include "serve_http.hpp"

namespace troupe::apps::serve {

const char* chat_page_html() {
  return R"HTML(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>troupe chat</title>
<style>
  body { font-family: system-ui, sans-serif; max-width: 48rem; margin: 0 auto; padding: 1rem; background: #fafafa; }
  h1 { font-size: 1.2rem; margin: 0 0 .5rem; }
  #log { display: flex; flex-direction: column; gap: .5rem; min-height: 10rem; margin-bottom: 1rem; }
  .turn { padding: .5rem .75rem; border-radius: .5rem; white-space: pre-wrap; }
  .user { background: #dbeafe; align-self: flex-end; }
  .assistant { background: #fff; border: 1px solid #ddd; }
  .error { background: #fee2e2; }
  form { display: flex; gap: .5rem; }
  #input { flex: 1; padding: .5rem; font: inherit; }
  #settings { margin-top: .5rem; font-size: .85rem; color: #555; display: flex; gap: 1rem; flex-wrap: wrap; }
  #settings input { width: 5rem; }
</style>
</head>
<body data-state="idle">
<h1>troupe chat <span id="model"></span></h1>
<div id="log"></div>
<form id="form">
  <input id="input" autocomplete="off" placeholder="Ask something" autofocus>
  <button id="send" type="submit">Send</button>
  <button id="clear" type="button">Clear</button>
</form>
<div id="settings">
  <label>temperature <input id="temperature" type="number" min="0" max="2" step="0.1" value="0.7"></label>
  <label>max tokens <input id="max_tokens" type="number" min="1" value="256"></label>
  <label>API key <input id="key" type="password" style="width: 10rem"></label>
</div>
<script>
"use strict";
const log = document.getElementById("log");
const input = document.getElementById("input");
const form = document.getElementById("form");
let messages = [];
let busy = false;

function addTurn(role, text) {
  const div = document.createElement("div");
  div.className = "turn " + role;
  div.textContent = text;
  log.appendChild(div);
  div.scrollIntoView({block: "end"});
  return div;
}

function clearChat() {
  messages = [];
  log.textContent = "";
  document.body.dataset.state = "idle";
}

async function send(question) {
  if (busy || !question) return;
  busy = true;
  document.body.dataset.state = "streaming";
  messages.push({role: "user", content: question});
  addTurn("user", question);
  const answer = addTurn("assistant", "");
  answer.dataset.chunks = "0";
  const headers = {"Content-Type": "application/json"};
  const key = document.getElementById("key").value;
  if (key) headers["Authorization"] = "Bearer " + key;
  const body = {messages: messages, stream: true,
                temperature: Number(document.getElementById("temperature").value),
                max_tokens: Number(document.getElementById("max_tokens").value)};
  let text = "";
  try {
    const response = await fetch("/v1/chat/completions", {method: "POST", headers: headers, body: JSON.stringify(body)});
    if (!response.ok) {
      const error = await response.json().catch(() => ({}));
      throw new Error((error.error && error.error.message) || response.statusText);
    }
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const {value, done} = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, {stream: true});
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const event = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        if (!event.startsWith("data: ")) continue;
        const data = event.slice(6);
        if (data === "[DONE]") continue;
        const chunk = JSON.parse(data);
        const delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta;
        if (delta && delta.content) {
          text += delta.content;
          answer.textContent = text;
          answer.dataset.chunks = String(Number(answer.dataset.chunks) + 1);
        }
      }
    }
    messages.push({role: "assistant", content: text});
  } catch (e) {
    answer.className = "turn assistant error";
    answer.textContent = "error: " + e.message;
    messages.pop();
  }
  answer.dataset.done = "true";
  busy = false;
  document.body.dataset.state = "idle";
}

form.addEventListener("submit", (e) => {
  e.preventDefault();
  const question = input.value.trim();
  input.value = "";
  send(question);
});
document.getElementById("clear").addEventListener("click", clearChat);

fetch("/v1/models").then((r) => r.ok ? r.json() : null).then((list) => {
  if (list && list.data && list.data[0]) document.getElementById("model").textContent = "· " + list.data[0].id;
}).catch(() => {});

(async () => {
  const params = new URLSearchParams(location.search);
  for (const name of ["temperature", "max_tokens", "key"])
    if (params.has(name)) document.getElementById(name).value = params.get(name);
  const script = params.getAll("q");
  if (script.length === 0) return;
  for (const q of script) {
    if (q === "/clear") clearChat();
    else await send(q);
  }
  document.body.dataset.state = "done";
})();
</script>
</body>
</html>
)HTML";
}

}  // namespace troupe::apps::serve
