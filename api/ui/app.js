// The dashboard's entry: the token (login / sign out) and the hash router
// (#/jobs, #/jobs/ID, #/submit, #/datasets). Each view returns a function that stops it.
import { getJson, token, whenUnauthorized } from "./api.js";
import { datasetsView } from "./datasets.js";
import { errorBox, h } from "./dom.js";
import { jobView } from "./job.js";
import { jobsView } from "./jobs.js";
import { submitView } from "./submit.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const loginForm = document.getElementById("login-form");
const loginInput = document.getElementById("login-token");
const loginMessage = document.getElementById("login-message");
const signOut = document.getElementById("sign-out");
let stopView = () => {};

function showLogin(message) {
  stopView();
  stopView = () => {};
  main.replaceChildren();
  nav.hidden = true;
  signOut.hidden = true;
  loginForm.hidden = false;
  loginMessage.replaceChildren(message || "");
  loginInput.focus();
}

function route() {
  stopView();
  if (!token.get()) { showLogin(); return; }
  loginForm.hidden = true;
  nav.hidden = false;
  signOut.hidden = false;
  const [path, query = ""] = (location.hash.slice(1) || "/jobs").split("?");
  const params = new URLSearchParams(query);
  const jobMatch = /^\/jobs\/(\d+)$/.exec(path);
  for (const link of nav.querySelectorAll("a")) {
    link.classList.toggle("active", path.startsWith(link.getAttribute("href").slice(1)));
  }
  if (jobMatch) stopView = jobView(main, Number(jobMatch[1]));
  else if (path === "/submit") stopView = submitView(main) || (() => {});
  else if (path === "/datasets") stopView = datasetsView(main);
  else stopView = jobsView(main, params);
}

whenUnauthorized((err) => {
  token.clear();
  showLogin(errorBox({ ...err, detail: `token rejected: ${err.detail}. Paste a valid token.`, errors: [] }));
});

loginForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const value = loginInput.value.trim();
  if (!value) { loginMessage.replaceChildren(errorBox({ detail: "token: paste a token first", errors: [] })); return; }
  token.set(value);
  try {
    await getJson("/jobs?limit=1"); // checks the token; a 401 comes back through whenUnauthorized
  } catch (err) {
    if (err.status !== 401) loginMessage.replaceChildren(errorBox(err));
    if (err.status === 401 || err.status === 0) return;
  }
  loginInput.value = "";
  loginMessage.replaceChildren();
  route();
});

signOut.addEventListener("click", () => {
  token.clear();
  showLogin(h("p", { className: "ok" }, "signed out; the token was removed from this browser"));
});

window.addEventListener("hashchange", route);
route();
