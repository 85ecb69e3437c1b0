// Entry point: signing in and out, and the forms' handlers.
import { Api } from "./api.js";
import { Chat, report } from "./chat.js";
import { $ } from "./dom.js";
import { People } from "./people.js";

const TOKEN_KEY = "chat-service.token";
let chat = null;

const api = new Api(() => sessionStorage.getItem(TOKEN_KEY), () => signOut("your session ended; log in again"));
const people = new People(api);

async function signIn(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
  const me = await api.me();
  people.remember(me);
  $("me").textContent = `${me.name} (@${me.username})`;
  $("auth").hidden = true;
  $("app").hidden = false;
  chat = new Chat(api, people, me, token);
}

function signOut(why) {
  sessionStorage.removeItem(TOKEN_KEY);
  chat?.close();
  chat = null;
  $("app").hidden = true;
  $("room").hidden = true;
  $("empty").hidden = false;
  $("conversations").replaceChildren();
  $("auth").hidden = false;
  $("auth-error").textContent = why ?? "";
}

/** Runs a form's action, showing its error; the form is disabled meanwhile. */
function handle(form, action, onError = report) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const fieldset = [...form.elements];
    fieldset.forEach((field) => { field.disabled = true; });
    try {
      await action();
    } catch (error) {
      onError(error);
    } finally {
      fieldset.forEach((field) => { field.disabled = false; });
    }
  });
}

const authError = (error) => { $("auth-error").textContent = error.message; };
const credentials = () => [$("username").value.trim(), $("password").value];

handle($("auth-form"), async () => {
  const [username, password] = credentials();
  await signIn((await api.login(username, password)).token);
}, authError);

$("register").addEventListener("click", async () => {
  const [username, password] = credentials();
  try {
    const name = $("name").value.trim() || username;
    await signIn((await api.register(username, name, password)).token);
  } catch (error) {
    authError(error);
  }
});

$("logout").addEventListener("click", async () => {
  await api.logout().catch(() => {});
  signOut();
});

handle($("new-chat"), async () => {
  const peer = await people.byUsername($("peer-username").value);
  const { roomId } = await api.privateRoom(peer.id);
  $("peer-username").value = "";
  await chat.open(roomId);
  await chat.conversations.refresh();
});

handle($("new-group"), async () => {
  const usernames = $("group-members").value.split(",").map((name) => name.trim()).filter(Boolean);
  const members = await Promise.all(usernames.map((name) => people.byUsername(name)));
  const room = await api.createGroup($("group-name").value.trim(), members.map((user) => user.id));
  $("group-name").value = "";
  $("group-members").value = "";
  await chat.open(room.roomId);
  await chat.conversations.refresh();
});

$("composer").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = $("message-input");
  if (!input.value.trim()) return;
  chat.send(input.value);
  input.value = "";
});
$("message-input").addEventListener("input", () => chat?.typing());

handle($("add-member"), async () => {
  await chat.addMember($("add-username").value);
  $("add-username").value = "";
});
$("leave-group").addEventListener("click", () => chat.leaveGroup().catch(report));
$("older").addEventListener("click", () => chat.older().catch(report));
$("more-conversations").addEventListener("click", () => chat.conversations.more().catch(report));

const saved = sessionStorage.getItem(TOKEN_KEY);
if (saved) signIn(saved).catch(() => signOut());
