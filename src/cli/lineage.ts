import { walkInviteTree, type InviteTreeNode } from "../domain/users.ts";
import type { AccountLineage } from "../store/store.ts";

/** Key names are anyone's text: no control character reaches the operator's terminal. */
function printable(text: string): string {
  return text.replace(/\p{Cc}/gu, "?");
}

/** Who invited an account, for `users list`: an account's name, `key:NAME`, `admin`, or `-` for a registration. */
export function describeInviter(account: AccountLineage): string {
  if (account.inviterKind === null || account.invitedBy === null) return "-";
  const name = printable(account.invitedBy);
  if (account.inviterKind === "key") return `key:${name}`;
  if (account.inviterKind === "admin") return "admin";
  return account.inviterDeleted ? `${name} (deleted)` : name;
}

/** `2026-01-31 14:05 UTC`: a creation time as a person reads it in a tree. */
export function readableTime(ms: number): string {
  return new Date(ms).toISOString().replace(/^(\d{4}-\d\d-\d\d)T(\d\d:\d\d).*$/, "$1 $2 UTC");
}

/**
 * The trees of who invited whom, drawn with box-drawing lines; each line names the account and
 * when it was made, and a root also how it came to be.
 */
export function drawInviteTrees(roots: readonly InviteTreeNode[]): string[] {
  const lines: string[] = [];
  for (const root of roots) {
    walkInviteTree(root, (node, depth, last) => {
      const { account } = node;
      const label = `${printable(account.username)}  ${readableTime(account.createdAt)}`;
      if (depth === 0) {
        const inviter = describeInviter(account);
        lines.push(`${label}  ${inviter === "-" ? "registered" : `invited by ${inviter}`}`);
        return;
      }
      const indent = last.slice(0, -1).map((isLast) => (isLast ? "    " : "│   ")).join("");
      lines.push(`${indent}${last[last.length - 1] ? "└── " : "├── "}${label}`);
    });
  }
  return lines;
}
