import TokenCore

/// How a worker feeds its `WorkerMetrics`: at the end of every request (both protocols), at an
/// upstream's answer head, at a login's outcome; and the copy a scrape takes on the loop.
extension Worker {
    /// A request's end: counted for `/metrics`, then written to the access log when it is on.
    func requestEnded(_ entry: inout AccessLogEntry, peer: PeerAddress, durationMs: Int64, logged: Bool) {
        let slot = entry.route >= 0 && entry.route < routeSlots.count ? routeSlots[entry.route] : 0
        let latency = entry.startNanos > 0 && entry.headNanos >= entry.startNanos ? entry.headNanos - entry.startNanos : nil
        metrics.countRequest(slot: slot, status: entry.status, latencyNanos: latency)
        if let rule = entry.rule {
            let name = rule.tokenError?.rule ?? rule.text.map { $0.description } ?? "unknown"
            metrics.tokenRejections[name, default: 0] &+= 1
        }
        if logged { logAccess(&entry, peer: peer, durationMs: durationMs) }
    }

    /// An upstream's answer head arrived `nanos` after its exchange began.
    func upstreamAnswered(afterNanos nanos: UInt64) {
        metrics.upstreamLatency.record(nanos: nanos)
    }

    /// Route slots for the routes of `snapshot` (by prefix: a reload keeps a route's counters).
    func routeSlots(for snapshot: GatewayState) -> [Int] {
        snapshot.routes.map { metrics.slot(for: String(decoding: $0.prefix, as: UTF8.self)) }
    }

    /// The counters, with the gauges filled in now (on the loop: a scrape posts this).
    func metricsSnapshot() -> WorkerMetrics {
        var m = metrics
        let h2 = loop.http2Connections()
        m.connectionsHTTP2 = h2.count
        let h1 = loop.clientConnections()
        m.connectionsHTTP1 = h1.count
        m.connectionsTLS = h1.filter { if case .tls = $0.transport { true } else { false } }.count
            + h2.filter { if case .tls = $0.transport { true } else { false } }.count
        for p in poolsForMetrics { m.upstreamIdle[p.target.url, default: 0] += p.idleCount }
        for u in loop.upstreamConnections() where u.phase == .active || u.phase == .connecting {
            m.upstreamBusy[u.pool.target.url, default: 0] += 1
        }
        return m
    }
}
