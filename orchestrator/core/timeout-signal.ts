/**
 * `AbortSignal.timeout(ms)` that fires even when nothing but `AbortSignal.any` holds it.
 *
 * Node 20 holds a timeout signal only weakly from its timer, and `AbortSignal.any` does not keep
 * its sources alive: `AbortSignal.any([run, AbortSignal.timeout(ms)])` loses its deadline when the
 * garbage collector runs first (nodejs/node#57736). A ready command that hung was then waited on
 * until the run's hard timeout. Here the timer holds the controller, so the signal lives until it
 * fires; the timer is unref'd (it keeps no process alive) and the reason is the same TimeoutError.
 */
export function timeoutSignal(ms: number): AbortSignal {
  const controller = new AbortController();
  setTimeout(() => controller.abort(new DOMException('The operation was aborted due to timeout', 'TimeoutError')), ms).unref();
  return controller.signal;
}
