import TokenCore

/// The fields of one access-log line, gathered while a request is handled. Byte arrays keep
/// their capacity between requests, so filling them allocates nothing once warm. Holds no token,
/// password or secret: only method, path (without the query, which may carry secrets), user,
/// request id, status, bytes and the rule a token failed on.
struct AccessLogEntry {
    private(set) var methodBytes: [UInt8] = []
    private(set) var pathBytes: [UInt8] = []
    private(set) var userBytes: [UInt8] = []
    private(set) var requestID: [UInt8] = []
    /// The answer's status; setting it marks when the answer's head went (for `/metrics`).
    var status = 0 {
        didSet { if startNanos != 0 && headNanos == 0 { headNanos = monotonicNanos() } }
    }
    var bytes: Int64 = 0
    /// The route that took the request (an index into the snapshot's routes), -1 for the
    /// gateway's own endpoints and requests no route took.
    var route = -1
    /// When the request's head was judged and its answer's head went (monotonic nanoseconds;
    /// 0 when metrics are off).
    var startNanos: UInt64 = 0
    var headNanos: UInt64 = 0
    var rule: BearerFailureRule?
    /// Why the connection ended before the exchange did (a reset, an upstream that broke off, a
    /// token that expired mid-stream), with the errno of the failed call when there was one.
    var closed: StaticString?
    var closedErrno: Int32 = 0
    /// Off when access logging is: the fields are then not copied at all.
    var enabled = true
    /// The request came on an HTTP/2 stream (the line says `proto=HTTP/2`).
    var http2 = false

    static let maxField = 256

    mutating func reset() {
        closed = nil
        closedErrno = 0
        route = -1
        startNanos = 0
        headNanos = 0
        guard enabled else { status = 0; bytes = 0; rule = nil; return }
        methodBytes.removeAll(keepingCapacity: true)
        pathBytes.removeAll(keepingCapacity: true)
        userBytes.removeAll(keepingCapacity: true)
        requestID.removeAll(keepingCapacity: true)
        status = 0
        bytes = 0
        rule = nil
    }

    mutating func method(_ b: UnsafeRawBufferPointer) { Self.copy(b, into: &methodBytes, if: enabled) }
    mutating func method(_ s: StaticString) {
        Self.copy(UnsafeRawBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount), into: &methodBytes, if: enabled)
    }

    /// The path up to `?`: query strings are not logged.
    mutating func path(_ target: UnsafeRawBufferPointer) {
        guard enabled else { return }
        var end = 0
        while end < target.count && target[end] != UInt8(ascii: "?") { end += 1 }
        Self.copy(UnsafeRawBufferPointer(rebasing: target[0..<end]), into: &pathBytes, if: enabled)
    }

    mutating func user(_ b: UnsafeRawBufferPointer) { Self.copy(b, into: &userBytes, if: enabled) }
    mutating func requestID(_ b: UnsafeRawBufferPointer) { Self.copy(b, into: &requestID, if: enabled) }

    private static func copy(_ b: UnsafeRawBufferPointer, into a: inout [UInt8], if enabled: Bool) {
        guard enabled else { return }
        a.removeAll(keepingCapacity: true)
        // Printable ASCII only (values are already validated; this keeps log lines one line).
        for c in b.prefix(maxField) { a.append(c > 0x20 && c < 0x7F ? c : UInt8(ascii: "?")) }
    }

    /// Appends the line: `<unix time> <peer> <method> <path> <status> <bytes> <ms>ms user=<u> rid=<id>
    /// [rule=<r>] [proto=HTTP/2] [closed=<why> [errno=<n>]]`.
    func write(to out: inout [UInt8], unixTime: Int64, peer: PeerAddress, durationMs: Int64) {
        func add(_ s: String) { out.append(contentsOf: s.utf8) }
        func add(_ b: [UInt8]) { if b.isEmpty { out.append(UInt8(ascii: "-")) } else { out.append(contentsOf: b) } }
        add(String(unixTime)); out.append(0x20)
        add(peer.text); out.append(0x20)
        add(methodBytes); out.append(0x20)
        add(pathBytes); out.append(0x20)
        add(String(status)); out.append(0x20)
        add(String(bytes)); out.append(0x20)
        add(String(durationMs)); add("ms user=")
        add(userBytes); add(" rid=")
        add(requestID)
        if let rule {
            add(" rule=")
            if let t = rule.tokenError { add(t.rule) } else if let s = rule.text { add(s.description) }
        }
        if http2 { add(" proto=HTTP/2") }
        if let closed {
            add(" closed=")
            add(closed.description)
            if closedErrno != 0 { add(" errno=\(closedErrno)") }
        }
        out.append(0x0A)
    }

    /// The same fields as one JSON object: `time` (RFC 3339, milliseconds), `level`, `msg`
    /// ("access"), `method`, `path`, `status`, `bytes`, `duration_ms`, `user`, `request_id`,
    /// `protocol`, `client`, and `rule` / `closed` / `errno` when there is one. Absent values
    /// are null.
    func writeJSON(to out: inout [UInt8], ms: Int64, peer: PeerAddress, durationMs: Int64) {
        func text(_ name: StaticString, _ value: [UInt8]) {
            LogLine.raw(&out, name)
            if value.isEmpty { LogLine.raw(&out, "null") } else { LogLine.string(&out, value) }
        }
        LogLine.open(&out, ms: ms, level: "info")
        LogLine.raw(&out, "\"access\"")
        text(",\"method\":", methodBytes)
        text(",\"path\":", pathBytes)
        LogLine.raw(&out, ",\"status\":"); LogLine.decimal(&out, Int64(status))
        LogLine.raw(&out, ",\"bytes\":"); LogLine.decimal(&out, bytes)
        LogLine.raw(&out, ",\"duration_ms\":"); LogLine.decimal(&out, durationMs)
        text(",\"user\":", userBytes)
        text(",\"request_id\":", requestID)
        LogLine.raw(&out, http2 ? ",\"protocol\":\"HTTP/2\"" : ",\"protocol\":\"HTTP/1.1\"")
        LogLine.raw(&out, ",\"client\":"); LogLine.string(&out, peer.text.utf8)
        if let rule {
            LogLine.raw(&out, ",\"rule\":")
            if let t = rule.tokenError { LogLine.string(&out, t.rule.utf8) } else if let s = rule.text {
                LogLine.string(&out, UnsafeBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
            }
        }
        if let closed {
            LogLine.raw(&out, ",\"closed\":")
            LogLine.string(&out, UnsafeBufferPointer(start: closed.utf8Start, count: closed.utf8CodeUnitCount))
            if closedErrno != 0 { LogLine.raw(&out, ",\"errno\":"); LogLine.decimal(&out, Int64(closedErrno)) }
        }
        LogLine.raw(&out, "}\n")
    }
}
