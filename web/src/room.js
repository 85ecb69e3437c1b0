// The open room: its messages (history, live and replayed, each once),
// the sender's pending messages, read markers, typing and presence.
import { $, compareIds, el, time } from "./dom.js";

const TYPING_SHOWN_MS = 3000;

export class OpenRoom {
  constructor(details, me, people) {
    this.id = details.roomId;
    this.me = me;
    this.people = people;
    this.messages = new Map();
    /** Messages sent from this page and not acknowledged yet, by clientMessageId. */
    this.pending = new Map();
    /** Own messages whose `sent` notification arrived. */
    this.stored = new Set();
    this.typing = new Map();
    this.hasOlder = false;
    this.markers = new Map();
    this.update(details);
  }

  /** Takes the room's details; read markers only move forward. */
  update(details) {
    this.details = details;
    this.type = details.type;
    for (const [userId, messageId] of Object.entries(details.readMarkers ?? {})) this.markRead(userId, messageId);
    this.online = new Set(details.online ?? []);
  }

  get newest() {
    let newest = null;
    for (const id of this.messages.keys()) if (!newest || compareIds(id, newest) > 0) newest = id;
    return newest;
  }

  get oldest() {
    let oldest = null;
    for (const id of this.messages.keys()) if (!oldest || compareIds(id, oldest) < 0) oldest = id;
    return oldest;
  }

  /** Adds messages not seen yet; true when one of them was new. */
  add(messages) {
    let added = false;
    for (const message of messages) {
      if (this.messages.has(message.id)) continue;
      this.messages.set(message.id, message);
      if (message.clientMessageId) this.pending.delete(message.clientMessageId);
      this.stopTyping(message.authorId);
      added = true;
    }
    return added;
  }

  /**
   * The message to mark read when others wrote past this user's marker:
   * their newest. Not this user's own newer one: an own message is shown
   * once accepted, before it is stored, and the service refuses a marker
   * on a message it has not stored (`chat_404`).
   */
  unreadFromOthers() {
    let theirs = null;
    for (const [id, message] of this.messages) {
      if (message.authorId !== this.me.id && (!theirs || compareIds(id, theirs) > 0)) theirs = id;
    }
    const mine = this.markers.get(this.me.id);
    return !theirs || (mine && compareIds(mine, theirs) >= 0) ? null : theirs;
  }

  markRead(userId, messageId) {
    const current = this.markers.get(userId);
    if (!current || compareIds(messageId, current) > 0) this.markers.set(userId, messageId);
  }

  /** Own message status: read by someone, stored (`sent`), or accepted. */
  statusOf(message) {
    const readers = [...this.markers]
      .filter(([user, upTo]) => user !== this.me.id && compareIds(upTo, message.id) >= 0).length;
    if (readers > 0) return ["read", this.type === "group" ? `read by ${readers}` : "read"];
    if (this.stored.has(message.id)) return ["sent", "sent"];
    return ["accepted", "accepted"];
  }

  showTyping(userId) {
    clearTimeout(this.typing.get(userId));
    this.typing.set(userId, setTimeout(() => this.stopTyping(userId), TYPING_SHOWN_MS));
    this.renderTyping();
  }

  stopTyping(userId) {
    if (!this.typing.has(userId)) return;
    clearTimeout(this.typing.get(userId));
    this.typing.delete(userId);
    this.renderTyping();
  }

  renderTyping() {
    const names = [...this.typing.keys()].map((id) => this.people.name(id));
    $("typing").textContent = names.length === 0 ? ""
      : `${names.join(" and ")} ${names.length === 1 ? "is" : "are"} typing…`;
  }

  renderHeader() {
    const { details } = this;
    const others = details.participantIds.filter((id) => id !== this.me.id);
    $("room-title").textContent = details.type === "group"
      ? `${details.name} (${details.participantIds.length} members)`
      : this.people.name(others[0]);
    const online = others.filter((id) => this.online.has(id)).length;
    $("room-online").textContent = details.type === "group"
      ? (online ? `${online} online` : "")
      : (online ? "online" : "");
    $("add-member").hidden = details.type !== "group";
    $("leave-group").hidden = details.type !== "group";
  }

  render() {
    const list = $("messages");
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    const ordered = [...this.messages.values()].sort((a, b) => compareIds(a.id, b.id));
    list.replaceChildren(
      ...ordered.map((message) => this.renderMessage(message)),
      ...[...this.pending.values()].map((pending) => this.renderPending(pending)),
    );
    $("older").hidden = !this.hasOlder;
    if (atBottom) list.scrollTop = list.scrollHeight;
  }

  renderMessage(message) {
    const mine = message.authorId === this.me.id;
    let status;
    if (mine) {
      const [state, label] = this.statusOf(message);
      status = el("span", { class: "status", "data-status": state }, label);
    }
    return el("li", { class: mine ? "message mine" : "message", "data-id": message.id },
      mine ? undefined : el("div", { class: "author" }, this.people.name(message.authorId)),
      el("div", { class: "text" }, message.content?.message ?? ""),
      el("div", { class: "meta" }, time(message.createdAt), status ? " · " : "", status));
  }

  renderPending({ clientMessageId, text, failed }) {
    const state = failed ? "failed" : "sending";
    return el("li", { class: "message mine", "data-client-id": clientMessageId },
      el("div", { class: "text" }, text),
      el("div", { class: "meta" },
        el("span", { class: "status", "data-status": state }, failed ? `not sent: ${failed}` : "sending…")));
  }
}
