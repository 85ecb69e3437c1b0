// The conversation list: the caller's rooms, latest activity first, with
// the last message and the unread count.
import { PAGE } from "./api.js";
import { $, el } from "./dom.js";

export class Conversations {
  constructor(api, people, me, onOpen) {
    this.api = api;
    this.people = people;
    this.me = me;
    this.onOpen = onOpen;
    this.items = [];
    this.openId = null;
    this.refreshing = null;
    this.again = false;
  }

  /** Reloads the first page; calls that come while one runs are folded into one more. */
  async refresh() {
    if (this.refreshing) {
      this.again = true;
      return this.refreshing;
    }
    this.refreshing = (async () => {
      do {
        this.again = false;
        const page = await this.api.conversations();
        await this.people.resolve(page.flatMap((item) => item.participantIds.slice(0, 2)));
        this.items = page;
        this.next = page.length === PAGE ? page[page.length - 1].cursor : null;
        this.render();
      } while (this.again);
    })().finally(() => { this.refreshing = null; });
    return this.refreshing;
  }

  async more() {
    if (!this.next) return;
    const page = await this.api.conversations(this.next);
    await this.people.resolve(page.flatMap((item) => item.participantIds.slice(0, 2)));
    this.items.push(...page);
    this.next = page.length === PAGE ? page[page.length - 1].cursor : null;
    this.render();
  }

  title(item) {
    if (item.type === "group") return item.name;
    const peer = item.participantIds.find((id) => id !== this.me.id);
    return this.people.name(peer);
  }

  render() {
    $("conversations").replaceChildren(...this.items.map((item) => {
      const last = item.lastMessage;
      const preview = last
        ? `${last.authorId === this.me.id ? "You" : this.people.name(last.authorId)}: ${last.content?.message ?? ""}`
        : "no messages yet";
      const unread = item.roomId === this.openId || !item.unread ? ""
        : `${item.unread}${item.unreadCapped ? "+" : ""}`;
      const node = el("li", { class: item.roomId === this.openId ? "conversation open" : "conversation", "data-room-id": item.roomId },
        el("span", { class: "title" }, this.title(item)),
        el("span", { class: "unread" }, unread),
        el("span", { class: "preview" }, preview));
      node.addEventListener("click", () => this.onOpen(item.roomId));
      return node;
    }));
    $("more-conversations").hidden = !this.next;
  }
}
