/** A message that could not be handed over: the mail server or the gateway refused it, failed, or did not answer in time. */
export class DeliveryError extends Error {
  constructor(
    message: string,
    readonly channel: 'email' | 'sms' | 'voice',
    /**
     * `timeout`: no answer in time (the message may have been taken before the silence); `rejected`: an error
     * answer; `unreachable`: no connection, or none that got as far as a command (nothing was sent).
     */
    readonly kind: 'timeout' | 'rejected' | 'unreachable',
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'DeliveryError';
  }
}
