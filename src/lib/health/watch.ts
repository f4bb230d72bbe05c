/**
 * Runs `tick` now and then every `intervalMs` until Ctrl-C (SIGINT) or SIGTERM: the tick in
 * progress finishes, then it resolves. A failing tick is handed to `onError` and the loop goes on:
 * a watch is most useful while the cluster is failing.
 */
export async function everyUntilInterrupted(intervalMs: number, tick: () => Promise<void>, onError: (err: unknown) => void): Promise<void> {
  let stop = false
  let wake: () => void = () => {}
  const interrupt = () => {
    stop = true
    wake()
  }
  process.on('SIGINT', interrupt)
  process.on('SIGTERM', interrupt)
  try {
    while (!stop) {
      await tick().catch(onError)
      if (stop) break
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, intervalMs)
        wake = () => {
          clearTimeout(timer)
          resolve()
        }
      })
    }
  } finally {
    process.off('SIGINT', interrupt)
    process.off('SIGTERM', interrupt)
  }
}
