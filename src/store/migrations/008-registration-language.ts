import type { Migration } from "./types.ts";

/**
 * The language a registration was made in (DESIGN §10: a website may pass `lang`), so every mail
 * about it (the verification, and later ones such as a moderator's answer) is written in it. Kept
 * after activation: it is no secret, and mail about the account may follow. Null: the default.
 */
export const registrationLanguage: Migration = {
  name: "008-registration-language",
  async up(db) {
    await db.schema.alterTable("users").addColumn("lang", "text").execute();
  },
};
