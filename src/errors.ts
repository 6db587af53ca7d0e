/** Every expected refusal has a code here; its HTTP status comes from this catalogue only. */
export type ErrorCode =
  | "NOT_FOUND"
  | "METHOD_NOT_ALLOWED"
  | "HTTPS_REQUIRED"
  | "BODY_TOO_LARGE"
  | "UNSUPPORTED_MEDIA_TYPE"
  | "MALFORMED_REQUEST"
  | "AUTH_TOKEN_INVALID"
  | "TOO_MANY_ATTEMPTS"
  | "IP_BLACKLISTED"
  | "MAIL_FILTERED"
  | "MAIL_DISPOSABLE"
  | "USERNAME_INVALID"
  | "PASSWORD_TOO_SHORT"
  | "USERNAME_RESERVED"
  | "USERNAME_PENDING"
  | "USERNAME_TAKEN"
  | "THROTTLED"
  | "MAIL_TAKEN"
  | "TOKEN_UNKNOWN"
  | "APPROVAL_NOT_FOUND"
  | "API_KEY_INVALID"
  | "INVITE_NOT_FOUND"
  | "INVITE_GONE"
  | "INVITE_NAME_MISMATCH"
  | "INVITE_QUOTA_EXCEEDED"
  | "ACCOUNT_TOO_NEW"
  | "LOGIN_FAILED"
  | "UNAUTHENTICATED"
  | "CROSS_SITE_REQUEST"
  | "STORAGE_FULL"
  | "REQUEST_INCOMPLETE"
  | "SERVER_BUSY"
  | "ACCOUNT_SERVER_UNAVAILABLE"
  | "USERNAME_TAKEN_DOWNSTREAM"
  | "STORE_UNAVAILABLE"
  | "POW_REQUIRED"
  | "POW_INVALID";

export function statusOf(code: ErrorCode): number {
  switch (code) {
    case "MALFORMED_REQUEST":
    case "PASSWORD_TOO_SHORT":
    case "POW_REQUIRED":
    case "REQUEST_INCOMPLETE":
      return 400;
    case "AUTH_TOKEN_INVALID":
    case "USERNAME_PENDING":
    case "LOGIN_FAILED":
    case "UNAUTHENTICATED":
      return 401;
    case "HTTPS_REQUIRED":
    case "API_KEY_INVALID":
    case "INVITE_NAME_MISMATCH":
    case "ACCOUNT_TOO_NEW":
    case "CROSS_SITE_REQUEST":
    case "POW_INVALID":
    case "IP_BLACKLISTED":
    case "MAIL_FILTERED":
    case "MAIL_DISPOSABLE":
    case "USERNAME_RESERVED":
      return 403;
    case "NOT_FOUND":
    case "TOKEN_UNKNOWN":
    case "APPROVAL_NOT_FOUND":
    case "INVITE_NOT_FOUND":
      return 404;
    case "METHOD_NOT_ALLOWED":
      return 405;
    case "USERNAME_INVALID":
      return 406;
    case "USERNAME_TAKEN":
    case "USERNAME_TAKEN_DOWNSTREAM":
    case "MAIL_TAKEN":
      return 409;
    case "INVITE_GONE":
      return 410;
    case "BODY_TOO_LARGE":
      return 413;
    case "UNSUPPORTED_MEDIA_TYPE":
      return 415;
    case "TOO_MANY_ATTEMPTS":
    case "INVITE_QUOTA_EXCEEDED":
      return 429;
    case "THROTTLED":
    case "STORAGE_FULL":
    case "SERVER_BUSY":
    case "ACCOUNT_SERVER_UNAVAILABLE":
    case "STORE_UNAVAILABLE":
      return 503;
  }
}

export interface AppErrorOptions {
  /** Seconds, for 429/503. */
  retryAfter?: number;
  /** Methods, for 405. */
  allow?: string[];
  /** Which variant of the refusal, for pages: the catalogue key `errors.CODE_detail` before `errors.CODE`. */
  detail?: string;
  /** Values the page's catalogue string may name (never a secret: they are shown to the person). */
  values?: Record<string, string | number>;
}

export class AppError extends Error {
  readonly status: number;
  constructor(readonly code: ErrorCode, message: string, readonly options: AppErrorOptions = {}) {
    // A refusal is an answer, not a fault: nobody reads its stack, and capturing one costs more
    // than the checks that led to it.
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(message);
    Error.stackTraceLimit = limit;
    this.name = "AppError";
    this.status = statusOf(code);
  }
}

export function isAppError(err: unknown): err is AppError {
  return err instanceof AppError;
}

/** The database's connections were lost and a retry did not help: an outage to warn about, not a fault. */
export function isStoreUnavailable(err: unknown): boolean {
  return err instanceof AppError && err.code === "STORE_UNAVAILABLE";
}
