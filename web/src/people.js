// Names for user ids, fetched in batches and kept for the page's life.

export class People {
  /** @param {import("./api.js").Api} api */
  constructor(api) {
    this.api = api;
    this.users = new Map();
  }

  remember(user) { this.users.set(user.id, user); }

  name(id) { return this.users.get(id)?.name ?? "someone"; }

  /** Fetches the ids not known yet (at most 200 a call). */
  async resolve(ids) {
    const missing = [...new Set(ids)].filter((id) => !this.users.has(id));
    for (let i = 0; i < missing.length; i += 200) {
      for (const user of await this.api.usersById(missing.slice(i, i + 200))) this.remember(user);
    }
  }

  /** The user with this username, or an error naming it. */
  async byUsername(username) {
    const [user] = await this.api.userByName(username.trim());
    if (!user) throw new Error(`no user named ${username.trim()}`);
    this.remember(user);
    return user;
  }
}
