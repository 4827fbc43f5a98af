import type { Decision } from '../smtp/decision.js';

/** One failed attempt, as the lane reports it to the retry loop. Internal: users see `DeliveryError`. */
export class AttemptFailure extends Error {
  override name = 'AttemptFailure' as const;
  readonly decision: Decision;
  readonly responseCode: number | undefined;
  readonly response: string | undefined;
  readonly lane: string;
  /** The server may have accepted the message: the connection was lost after the body went out. */
  readonly inDoubt: boolean;
  /** The server refused the envelope for having too many recipients (452 4.5.3): send it in parts. */
  readonly tooManyRecipients: boolean;

  constructor(
    decision: Decision,
    details: { responseCode?: number | undefined; response?: string | undefined; lane: string; message?: string; cause?: unknown; inDoubt?: boolean; tooManyRecipients?: boolean },
  ) {
    super(details.message ?? details.response ?? decision.kind, { cause: details.cause });
    this.decision = decision;
    this.responseCode = details.responseCode;
    this.response = details.response;
    this.lane = details.lane;
    this.inDoubt = details.inDoubt ?? false;
    this.tooManyRecipients = details.tooManyRecipients ?? false;
  }
}
