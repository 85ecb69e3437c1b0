// The signed-in page: one Socket.IO connection to /chats (the token in the
// handshake's auth payload, as browsers cannot set headers), the
// conversation list and the open room. After a reconnect the open room is
// joined again with `since` its newest message, so what was sent meanwhile
// is replayed, then paged over HTTP if the replay was not complete.
import { io } from "./vendor/socket.io.esm.min.js";
import { PAGE } from "./api.js";
import { Conversations } from "./conversations.js";
import { $, toast } from "./dom.js";
import { OpenRoom } from "./room.js";

const ACK_TIMEOUT_MS = 10000;
const TYPING_EVERY_MS = 1000;

export class Chat {
  constructor(api, people, me, token) {
    this.api = api;
    this.people = people;
    this.me = me;
    this.room = null;
    this.lastTyping = 0;
    this.conversations = new Conversations(api, people, me, (roomId) => this.open(roomId).catch(report));
    this.socket = io("/chats", {
      auth: { token },
      reconnectionDelay: 300,
      reconnectionDelayMax: 3000,
    });
    this.listen();
  }

  listen() {
    const { socket } = this;
    socket.on("connect", () => {
      setStatus("online");
      this.conversations.refresh().catch(report);
      if (this.room) this.rejoin(this.room).catch(report);
    });
    socket.on("disconnect", (reason) => {
      setStatus("offline");
      // Who is online is not known while offline; the rejoin reads it again.
      if (this.room) {
        this.room.online.clear();
        this.room.renderHeader();
      }
      // The server ended the socket (a logout elsewhere): reconnect only if
      // the token still works; the API's 401 signs the page out otherwise.
      if (reason === "io server disconnect") this.api.me().then(() => socket.connect(), () => {});
    });
    socket.on("connect_error", (error) => {
      setStatus("offline");
      if (error.message === "unauthorized") this.api.me().catch(() => {});
    });
    socket.on("reply", (message) => this.received(message));
    socket.on("notification", ({ name, content }) => this.notified(name, content));
    socket.on("typing", ({ roomId, userId }) => {
      if (this.room?.id === roomId && userId !== this.me.id) this.room.showTyping(userId);
    });
    socket.on("error", (error) => toast(error.message ?? String(error)));
  }

  close() {
    this.socket.disconnect();
  }

  async open(roomId) {
    if (this.room?.id === roomId) return;
    if (this.room) this.socket.emit("leave", { roomId: this.room.id });
    const details = await this.api.room(roomId);
    await this.people.resolve(details.participantIds);
    const room = new OpenRoom(details, this.me, this.people);
    this.room = room;
    this.conversations.openId = roomId;
    this.conversations.render();
    $("empty").hidden = true;
    $("room").hidden = false;
    $("typing").textContent = "";
    room.renderHeader();
    room.render();
    // Join first, then read the history: a message sent in between comes
    // live, and either way each id is shown once. Offline, the join waits
    // for the connection and the reconnect joins again.
    await this.join(room, null).catch(report);
    const page = await this.api.history(roomId);
    room.hasOlder = page.length === PAGE;
    room.add(page);
    this.show(room);
  }

  /** Joins `room` on the socket, replaying what came after `since`. */
  async join(room, since) {
    const ack = await this.socket.timeout(ACK_TIMEOUT_MS)
      .emitWithAck("join", since ? { roomId: room.id, since } : { roomId: room.id });
    if (ack.status !== "ok") throw new Error(ack.error?.message ?? "could not join the room");
    return ack;
  }

  async rejoin(room) {
    const since = room.newest;
    const ack = await this.join(room, since);
    // Receipts and presence may have changed while the socket was away.
    room.update(await this.api.room(room.id));
    room.renderHeader();
    if (since && ack.complete === false) {
      // More than the replay's limit came meanwhile: page the rest.
      for (let after = room.newest; after;) {
        const page = await this.api.history(room.id, { after, limit: 100 });
        room.add(page);
        after = page.length === 100 ? page[0].id : null;
      }
    } else if (!since) {
      room.add(await this.api.history(room.id));
    }
    for (const pending of room.pending.values()) this.emitMessage(room, pending);
    this.show(room);
  }

  async older() {
    const room = this.room;
    if (!room?.oldest) return;
    const page = await this.api.history(room.id, { before: room.oldest });
    room.hasOlder = page.length === PAGE;
    room.add(page);
    room.render();
  }

  /** Renders the room and marks the newest message of others read. */
  show(room) {
    if (room !== this.room) return;
    room.render();
    const unread = room.unreadFromOthers();
    if (unread && document.visibilityState === "visible") {
      room.markRead(this.me.id, unread);
      this.socket.timeout(ACK_TIMEOUT_MS).emit("read", { roomId: room.id, messageId: unread }, () => {});
    }
  }

  received(message) {
    if (this.room?.id === message.roomId && this.room.add([message])) this.show(this.room);
    this.conversations.refresh().catch(report);
  }

  notified(name, content) {
    const room = this.room?.id === content.roomId ? this.room : null;
    switch (name) {
      case "sent":
        if (room) {
          room.stored.add(content.messageId);
          room.render();
        }
        break;
      case "read":
        if (room) {
          room.markRead(content.userId, content.messageId);
          room.render();
        }
        break;
      case "members":
        if (room) this.api.room(room.id).then((details) => this.people.resolve(details.participantIds)
          .then(() => { room.update(details); room.renderHeader(); })).catch(() => this.closeRoom());
        this.conversations.refresh().catch(report);
        return;
      case "presence":
        if (this.room) {
          if (content.online) this.room.online.add(content.userId);
          else this.room.online.delete(content.userId);
          this.room.renderHeader();
        }
        return;
      default:
        break;
    }
    if (name === "inbox" || name === "sent") this.conversations.refresh().catch(report);
  }

  closeRoom() {
    this.room = null;
    this.conversations.openId = null;
    $("room").hidden = true;
    $("empty").hidden = false;
  }

  send(text) {
    const room = this.room;
    if (!room) return;
    const pending = { clientMessageId: crypto.randomUUID(), text };
    room.pending.set(pending.clientMessageId, pending);
    room.render();
    this.emitMessage(room, pending);
  }

  /** Sends a pending message; a resend after a reconnect reuses its clientMessageId, so it is stored once. */
  emitMessage(room, pending) {
    const payload = {
      type: room.type,
      roomId: room.id,
      content: { type: "text", message: pending.text },
      clientMessageId: pending.clientMessageId,
    };
    this.socket.timeout(ACK_TIMEOUT_MS).emit("message", payload, (timedOut, ack) => {
      if (timedOut) return; // still pending: sent again on the next connect
      if (!room.pending.has(pending.clientMessageId)) return;
      if (ack.status === "accepted") {
        room.pending.delete(pending.clientMessageId);
        room.add([{
          id: ack.messageId,
          roomId: room.id,
          authorId: this.me.id,
          type: room.type,
          content: payload.content,
          createdAt: new Date().toISOString(),
          clientMessageId: pending.clientMessageId,
        }]);
      } else {
        pending.failed = ack.error?.message ?? "error";
      }
      if (room === this.room) room.render();
    });
  }

  typing() {
    const now = Date.now();
    if (!this.room || now - this.lastTyping < TYPING_EVERY_MS) return;
    this.lastTyping = now;
    this.socket.volatile.emit("typing", { roomId: this.room.id });
  }

  async leaveGroup() {
    await this.api.leaveGroup(this.room.id);
    this.closeRoom();
    await this.conversations.refresh();
  }

  async addMember(username) {
    const user = await this.people.byUsername(username);
    const details = await this.api.addMembers(this.room.id, [user.id]);
    this.room.update({ ...this.room.details, ...details });
    this.room.renderHeader();
  }
}

export function report(error) {
  toast(error.message ?? String(error));
}

function setStatus(state) {
  const node = $("status");
  node.dataset.state = state;
  node.textContent = state === "online" ? "online" : "offline, reconnecting…";
}

