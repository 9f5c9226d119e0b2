import Glibc
import TokenCore

/// Everything one scrape reports: the workers' counters summed, and what the server knows.
struct MetricsSnapshot {
    var workers = WorkerMetrics()
    var keys: [(kid: String, state: String, createdAt: Int64)] = []
    var revocations = 0
    var reloadsOK: UInt64 = 0
    var reloadsFailed: UInt64 = 0
    var startedAt: Int64 = 0
    var now: Int64 = 0
    /// Workers that did not answer the scrape in time (their counters are missing).
    var missingWorkers = 0
}

/// The Prometheus text exposition format 0.0.4 of a `MetricsSnapshot`: HELP and TYPE for every
/// family, label values escaped, histograms cumulative with `+Inf`, `_sum` and `_count`.
enum MetricsExposition {
    static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    static func render(_ s: MetricsSnapshot) -> String {
        var out = ""
        func family(_ name: String, _ type: String, _ help: String) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
        }
        func sample(_ name: String, _ labels: [(String, String)] = [], _ value: String) {
            out += name
            if !labels.isEmpty { out += "{" + labels.map { "\($0.0)=\"\(escape($0.1))\"" }.joined(separator: ",") + "}" }
            out += " \(value)\n"
        }
        let w = s.workers

        family("gateway_requests_total", "counter", "Requests answered, by route prefix (\"own\": the gateway's endpoints) and status code.")
        for (i, label) in w.routeLabels.enumerated() {
            for (code, n) in w.requests[i].enumerated() where n > 0 { sample("gateway_requests_total", [("route", label), ("code", String(code))], String(n)) }
        }
        histogram(&out, "gateway_request_duration_seconds", "From a request's head judged to its answer's head.", w.requestLatency)
        histogram(&out, "gateway_upstream_duration_seconds", "From an exchange's start to the upstream's answer head.", w.upstreamLatency)

        family("gateway_token_rejections_total", "counter", "Bearer and refresh tokens refused, by the rule they broke.")
        for (reason, n) in w.tokenRejections.sorted(by: { $0.key < $1.key }) { sample("gateway_token_rejections_total", [("reason", reason)], String(n)) }

        family("gateway_logins_total", "counter", "Login attempts by API and result.")
        for (key, n) in w.logins.sorted(by: { $0.key < $1.key }) {
            let parts = key.split(separator: "/", maxSplits: 1).map(String.init)
            sample("gateway_logins_total", [("api", parts[0]), ("result", parts.count > 1 ? parts[1] : "")], String(n))
        }

        family("gateway_connections", "gauge", "Open client connections by protocol (tls counts those over HTTPS, of either protocol).")
        sample("gateway_connections", [("protocol", "http1")], String(w.connectionsHTTP1))
        sample("gateway_connections", [("protocol", "h2")], String(w.connectionsHTTP2))
        sample("gateway_connections", [("protocol", "tls")], String(w.connectionsTLS))

        family("gateway_upstream_connections", "gauge", "Connections to each upstream: idle in the pools, or busy with an exchange.")
        for url in Set(w.upstreamIdle.keys).union(w.upstreamBusy.keys).sorted() {
            sample("gateway_upstream_connections", [("upstream", url), ("state", "idle")], String(w.upstreamIdle[url] ?? 0))
            sample("gateway_upstream_connections", [("upstream", url), ("state", "busy")], String(w.upstreamBusy[url] ?? 0))
        }

        family("gateway_signing_key_age_seconds", "gauge", "Age of each signing key (active signs; verify only verifies).")
        for k in s.keys where k.createdAt > 0 {
            sample("gateway_signing_key_age_seconds", [("kid", k.kid), ("state", k.state)], String(max(0, s.now - k.createdAt)))
        }
        family("gateway_revocations", "gauge", "Revocation entries held (token ids and user cut-offs).")
        sample("gateway_revocations", [], String(s.revocations))
        family("gateway_config_reloads_total", "counter", "Configuration reloads by result.")
        sample("gateway_config_reloads_total", [("result", "success")], String(s.reloadsOK))
        sample("gateway_config_reloads_total", [("result", "failure")], String(s.reloadsFailed))
        family("gateway_scrape_missing_workers", "gauge", "Workers whose counters this scrape lacks (they did not answer within a second).")
        sample("gateway_scrape_missing_workers", [], String(s.missingWorkers))
        family("gateway_build_info", "gauge", "The gateway's version.")
        sample("gateway_build_info", [("version", Version.number)], "1")

        let process = ProcessStats.read()
        family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.")
        sample("process_resident_memory_bytes", [], String(process.residentBytes))
        family("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.")
        sample("process_cpu_seconds_total", [], number(process.cpuSeconds))
        family("process_open_fds", "gauge", "Number of open file descriptors.")
        sample("process_open_fds", [], String(process.openFDs))
        family("process_start_time_seconds", "gauge", "Start time of the process since the Unix epoch in seconds.")
        sample("process_start_time_seconds", [], String(s.startedAt))
        return out
    }

    private static func histogram(_ out: inout String, _ name: String, _ help: String, _ h: LatencyHistogram) {
        out += "# HELP \(name) \(help)\n# TYPE \(name) histogram\n"
        var cumulative: UInt64 = 0
        for (i, bound) in LatencyHistogram.bounds.enumerated() {
            cumulative += h.counts[i]
            out += "\(name)_bucket{le=\"\(number(bound))\"} \(cumulative)\n"
        }
        out += "\(name)_bucket{le=\"+Inf\"} \(h.count)\n"
        out += "\(name)_sum \(number(Double(h.sumNanos) / 1e9))\n"
        out += "\(name)_count \(h.count)\n"
    }

    /// A float as Prometheus's own clients write it: whole numbers without ".0" (so `le="1"`
    /// is one series with what other exporters write), others in their shortest exact form.
    static func number(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : "\(value)"
    }

    /// A label value as the format wants it: backslash, quote and newline escaped.
    static func escape(_ s: String) -> String {
        var out = ""
        for c in s.unicodeScalars {
            switch c {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }
}


/// What /proc says about this process.
struct ProcessStats {
    var residentBytes = 0
    var cpuSeconds = 0.0
    var openFDs = 0

    static func read() -> ProcessStats {
        var s = ProcessStats()
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        if let stat = file("/proc/self/stat"), let close = stat.lastIndex(of: ")") {
            // Fields after "(comm)": state is field 3; utime and stime are fields 14 and 15.
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            if fields.count > 13, let u = Double(fields[11]), let k = Double(fields[12]) { s.cpuSeconds = (u + k) / ticks }
        }
        if let statm = file("/proc/self/statm") {
            let parts = statm.split(separator: " ")
            if parts.count > 1, let pages = Int(parts[1]) { s.residentBytes = pages * Int(sysconf(Int32(_SC_PAGESIZE))) }
        }
        if let dir = opendir("/proc/self/fd") {
            while let entry = readdir(dir) {
                if entry.pointee.d_name.0 != CChar(UInt8(ascii: ".")) { s.openFDs += 1 }
            }
            closedir(dir)
            s.openFDs -= 1   // the directory's own descriptor
        }
        return s
    }

    private static func file(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = Glibc.read(fd, &buffer, buffer.count)
        return n > 0 ? String(decoding: buffer[0..<n], as: UTF8.self) : nil
    }
}
