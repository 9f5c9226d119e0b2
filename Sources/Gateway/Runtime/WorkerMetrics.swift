import Glibc

/// A latency histogram with Prometheus's cumulative buckets (upper bounds in seconds, from
/// half a millisecond), counted as plain integers.
struct LatencyHistogram: Sendable {
    static let bounds: [Double] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
    /// Observations per bucket (not cumulative; the last is +Inf).
    var counts = [UInt64](repeating: 0, count: LatencyHistogram.bounds.count + 1)
    var sumNanos: UInt64 = 0
    var count: UInt64 = 0

    mutating func record(nanos: UInt64) {
        let seconds = Double(nanos) / 1e9
        var i = 0
        while i < Self.bounds.count && seconds > Self.bounds[i] { i += 1 }
        counts[i] &+= 1
        sumNanos &+= nanos
        count &+= 1
    }

    mutating func add(_ other: LatencyHistogram) {
        for i in counts.indices { counts[i] &+= other.counts[i] }
        sumNanos &+= other.sumNanos
        count &+= other.count
    }
}

/// What one worker counts for `/metrics`: plain values changed only on its own loop (no atomics
/// and no locks on the request path), copied out by a job each scrape posts to the loop.
struct WorkerMetrics: Sendable {
    /// Request counts by route slot (`routeLabels`) and status (0...599).
    var requests: [[UInt64]] = []
    /// `own` (the gateway's endpoints, and requests no route matched), then each route prefix
    /// seen, in the order first seen: slots are never reused, so counters only grow.
    var routeLabels: [String] = []
    var requestLatency = LatencyHistogram()
    var upstreamLatency = LatencyHistogram()
    /// Refused bearer tokens by the verifier's rule.
    var tokenRejections: [String: UInt64] = [:]
    /// Logins by API (`datarhei`, `envelope`, `idp`) and result (`success`, `invalid`, `throttled`).
    var logins: [String: UInt64] = [:]

    // Gauges, filled in when the snapshot is taken.
    var connectionsHTTP1 = 0
    var connectionsHTTP2 = 0
    var connectionsTLS = 0
    /// Per upstream URL: idle pooled and busy connections.
    var upstreamIdle: [String: Int] = [:]
    var upstreamBusy: [String: Int] = [:]

    init() { slot(for: "own") }

    /// The slot of `label`, made when first seen.
    @discardableResult
    mutating func slot(for label: String) -> Int {
        if let i = routeLabels.firstIndex(of: label) { return i }
        routeLabels.append(label)
        requests.append([UInt64](repeating: 0, count: 600))
        return routeLabels.count - 1
    }

    mutating func countRequest(slot: Int, status: Int, latencyNanos: UInt64?) {
        requests[slot][min(max(status, 0), 599)] &+= 1
        if let latencyNanos { requestLatency.record(nanos: latencyNanos) }
    }

    mutating func countLogin(api: StaticString, result: StaticString) {
        logins["\(api)/\(result)", default: 0] &+= 1
    }

    /// Adds `other` (another worker's) into this one, matching routes by label.
    mutating func add(_ other: WorkerMetrics) {
        for (i, label) in other.routeLabels.enumerated() {
            let mine = slot(for: label)
            for s in 0..<600 { requests[mine][s] &+= other.requests[i][s] }
        }
        requestLatency.add(other.requestLatency)
        upstreamLatency.add(other.upstreamLatency)
        for (k, v) in other.tokenRejections { tokenRejections[k, default: 0] &+= v }
        for (k, v) in other.logins { logins[k, default: 0] &+= v }
        connectionsHTTP1 += other.connectionsHTTP1
        connectionsHTTP2 += other.connectionsHTTP2
        connectionsTLS += other.connectionsTLS
        for (k, v) in other.upstreamIdle { upstreamIdle[k, default: 0] += v }
        for (k, v) in other.upstreamBusy { upstreamBusy[k, default: 0] += v }
    }
}
