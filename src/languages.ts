/**
 * Choosing among the offered languages (config `languages`, DESIGN §10). Pure: pages negotiate
 * with it (http/respond.ts), the domain settles a registration's `lang` with it.
 */

/**
 * The offered language that `tag` asks for: the same tag (case aside, `_` read as `-`, as POSIX
 * locales write it), else one with the same primary language (de-AT asks for de; de asks for
 * de-CH when only that is offered), else none.
 */
export function matchLanguage(tag: string, offered: readonly string[]): string | undefined {
  const wanted = tag.trim().replace(/_/g, "-").toLowerCase();
  if (!wanted || wanted.length > 64) return undefined;
  const exact = offered.find((code) => code.toLowerCase() === wanted);
  if (exact) return exact;
  const primary = wanted.split("-")[0];
  return offered.find((code) => code.toLowerCase() === primary) ?? offered.find((code) => code.toLowerCase().split("-")[0] === primary);
}

/** `tag` when it names an offered language, else the default (the first offered). */
export function offeredLanguage(tag: string | undefined, offered: readonly string[]): string {
  return (tag !== undefined ? matchLanguage(tag, offered) : undefined) ?? offered[0]!;
}
