// Tornado's demos/chat/static/chat.js, without jQuery: post messages, and
// long-poll for new ones (the request stays open until there are some).
function getCookie(name) {
  const m = document.cookie.match("\\b" + name + "=([^;]*)\\b");
  return m ? m[1] : undefined;
}

function form(fields) {
  fields._xsrf = getCookie("_xsrf");
  return new URLSearchParams(fields);
}

let cursor = null;

function show(messages) {
  const inbox = document.getElementById("inbox");
  for (const message of messages) {
    if (document.getElementById("m" + message.id)) continue;
    inbox.insertAdjacentHTML("beforeend", message.html);
    cursor = message.id;
  }
}

async function poll() {
  const fields = cursor ? { cursor } : {};
  try {
    const response = await fetch("/a/message/updates", { method: "POST", body: form(fields) });
    if (response.ok) show((await response.json()).messages);
  } catch (e) {
    await new Promise((r) => setTimeout(r, 1000));
  }
  poll();
}

document.getElementById("messageform").onsubmit = async (event) => {
  event.preventDefault();
  const input = document.getElementById("message");
  const response = await fetch("/a/message/new", { method: "POST", body: form({ body: input.value }) });
  if (response.ok) show([await response.json()]);
  input.value = "";
};

const last = document.querySelector("#inbox .message:last-child");
if (last) cursor = last.id.slice(1);
poll();
