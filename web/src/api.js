// The HTTP API under /api/v1, with the caller's token.

/** An HTTP error in the API's shape: {statusCode, error, message}. */
/** Messages in a history page and rooms in a conversation-list page: a full page means there may be more. */
export const PAGE = 30;

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export class Api {
  /** @param {() => string | null} token  @param {() => void} onUnauthorized */
  constructor(token, onUnauthorized) {
    this.token = token;
    this.onUnauthorized = onUnauthorized;
  }

  async request(method, path, body) {
    const headers = { Accept: "application/json" };
    const token = this.token();
    if (token) headers.Authorization = token;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(`/api/v1${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch {
      throw new ApiError(0, "the server cannot be reached");
    }
    if (response.status === 204) return null;
    const payload = await response.json().catch(() => null);
    if (!response.ok) {
      if (response.status === 401 && token) this.onUnauthorized();
      const message = payload?.message ?? response.statusText;
      throw new ApiError(response.status, Array.isArray(message) ? message.join("; ") : message);
    }
    return payload;
  }

  register(username, name, password) {
    return this.request("POST", "/accounts/register", { username, name, ...(password ? { password } : {}) });
  }
  login(username, password) {
    return this.request("POST", "/accounts/login", { username, ...(password ? { password } : {}) });
  }
  logout() { return this.request("POST", "/accounts/logout"); }
  me() { return this.request("GET", "/accounts/me"); }
  userByName(username) {
    return this.request("GET", `/accounts?username=${encodeURIComponent(username)}`);
  }
  usersById(ids) { return this.request("GET", `/accounts?ids=${ids.join(",")}`); }
  privateRoom(peerId) { return this.request("GET", `/rooms?peerId=${peerId}`); }
  createGroup(name, participantIds) { return this.request("POST", "/rooms", { name, participantIds }); }
  addMembers(roomId, userIds) { return this.request("POST", `/rooms/${roomId}/members`, { userIds }); }
  leaveGroup(roomId) { return this.request("DELETE", `/rooms/${roomId}/members/me`); }
  room(roomId) { return this.request("GET", `/rooms/${roomId}`); }
  conversations(before) {
    return this.request("GET", `/rooms?limit=${PAGE}${before ? `&before=${encodeURIComponent(before)}` : ""}`);
  }
  /** A page of history, newest first: the newest, or just before or after `id`. */
  history(roomId, { before, after, limit = PAGE } = {}) {
    const around = before ? `&latestMessageId=${before}&context=before`
      : after ? `&latestMessageId=${after}&context=after` : "";
    return this.request("GET", `/rooms/${roomId}/messages?limit=${limit}${around}`);
  }
}
