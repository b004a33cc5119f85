/**
 * Ingress: where a device's receive batches meet the classifier. Each frame is stamped
 * (ingress device, receive time), classified, and queued at its path end; frames nothing
 * claims are counted and freed.
 * @module
 */
import type { Classifier } from './classifier.js'
import type { Clock } from './clock.js'
import type { Device } from './device.js'
import type { Msg } from './msg.js'

/** Counters of a bound device. */
export interface IngressStats {
  /** Frames queued at a path end. */
  classified: number
  /** Frames no path claimed (dropped). */
  unclaimed: number
}

/** A device bound to a classifier; `unbind()` detaches it. */
export interface IngressBinding {
  /** Counters. */
  readonly stats: IngressStats
  /** Stops feeding the classifier from this device. */
  unbind(): void
}

/**
 * Feeds every frame `device` receives through `classifier` to its path end.
 * `index` is written to `msg.ingress` so stages can tell devices apart.
 */
export function bindDevice(device: Device, classifier: Classifier, clock: Clock, index: number): IngressBinding {
  const stats: IngressStats = { classified: 0, unclaimed: 0 }
  device.onReceive((batch: Msg[], count: number) => {
    const now = clock.now()
    for (let i = 0; i < count; i++) {
      const m = batch[i]!
      m.ingress = index
      m.rxTime = now
      const end = classifier.classify(m)
      if (end === null) {
        stats.unclaimed++
        m.free()
      } else {
        stats.classified++
        end.enqueue(m)
      }
    }
  })
  return { stats, unbind: () => device.onReceive(null) }
}
