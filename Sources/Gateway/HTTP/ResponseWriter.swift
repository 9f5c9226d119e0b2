import TokenCore

/// Every answer the gateway gives itself as HTTP/1.1 wire bytes: the status line, the fields
/// (`Content-Type`, `Content-Length`, `WWW-Authenticate` on a 401, `Retry-After`, `Connection:
/// close` when the connection ends after it) and the body, none for HEAD. JSON strings are escaped
/// by TokenCore's writer. The answers that do not vary are prebuilt, so giving one costs a copy.
enum ResponseWriter {
    static let continueLine: [UInt8] = Array("HTTP/1.1 100 Continue\r\n\r\n".utf8)

    /// The bytes of `response` (shaped for its route already, `LocalResponse.shaped`).
    static func bytes(_ response: LocalResponse, close: Bool, isHEAD: Bool = false) -> [UInt8] {
        let full = bytes(response, close: close)
        return isHEAD ? withoutBody(full) : full
    }

    private static func bytes(_ response: LocalResponse, close: Bool) -> [UInt8] {
        let c = close ? 1 : 0
        switch response {
        case .healthy: return healthy[c]
        case .ready: return ready[c]
        case .noContent: return noContent[c]
        case let .json(body): return json(200, body: body, close: close)
        case let .error(e, nil, nil): return errorPrebuilt[e.rawValue][c]
        case let .error(e, detail, retryAfter): return error(e, detail: detail ?? e.detail, retryAfter: retryAfter, close: close)
        case let .envelope(e, nil): return envelopePrebuilt[e.index][c]
        case let .envelope(e, retryAfter): return envelope(e, retryAfter: retryAfter, close: close)
        }
    }

    /// datarhei Core's error body: `{"code":N,"message":"<status text>","details":["<detail>"]}`.
    static func error(_ e: GatewayResponse, detail: String, retryAfter: Int?, close: Bool) -> [UInt8] {
        var body = JSONWriter(capacity: 128)
        body.raw("{\"code\":"); body.int(Int64(e.status))
        body.raw(",\"message\":"); body.string(e.reason)
        body.raw(",\"details\":["); body.string(detail); body.raw("]}")
        return head(e.status, e.reason, bodyCount: body.bytes.count, retryAfter: retryAfter, close: close) + body.bytes
    }

    /// The envelope profile's error body: `{"code":<its code>,"error":"<word>","desc":"<text>"}`.
    static func envelope(_ e: EnvelopeError, retryAfter: Int?, close: Bool) -> [UInt8] {
        var body = JSONWriter(capacity: 128)
        body.raw("{\"code\":"); body.int(Int64(e.rawValue))
        body.raw(",\"error\":"); body.string(e.word)
        body.raw(",\"desc\":"); body.string(e.desc); body.raw("}")
        return head(e.status.0, e.status.1, bodyCount: body.bytes.count, retryAfter: retryAfter, close: close) + body.bytes
    }

    static func json(_ status: Int, body: [UInt8], close: Bool) -> [UInt8] {
        head(status, status == 200 ? "OK" : "Error", bodyCount: body.count, retryAfter: nil, close: close) + body
    }

    private static func head(_ status: Int, _ reason: String, bodyCount: Int, retryAfter: Int?, close: Bool) -> [UInt8] {
        var text = "HTTP/1.1 \(status) \(reason)\r\nContent-Type: application/json\r\nContent-Length: \(bodyCount)\r\n"
        if status == 401 { text += "WWW-Authenticate: Bearer error=\"invalid_token\"\r\n" }
        if let retryAfter { text += "Retry-After: \(retryAfter)\r\n" }
        if close { text += "Connection: close\r\n" }
        return Array((text + "\r\n").utf8)
    }

    /// The head alone: a HEAD request is answered with the fields a GET would get.
    static func withoutBody(_ full: [UInt8]) -> [UInt8] {
        var i = 3
        while i < full.count && !(full[i - 3] == 13 && full[i - 2] == 10 && full[i - 1] == 13 && full[i] == 10) { i += 1 }
        return Array(full[0..<min(i + 1, full.count)])
    }

    // MARK: prebuilt, [keep-alive, close] each

    private static func both(_ make: (Bool) -> [UInt8]) -> [[UInt8]] { [make(false), make(true)] }

    private static let healthy = both { json(200, body: Array("{\"status\":\"ok\"}".utf8), close: $0) }
    private static let ready = both { json(200, body: Array("{\"status\":\"ready\"}".utf8), close: $0) }
    private static let noContent = both { Array("HTTP/1.1 204 No Content\r\n\($0 ? "Connection: close\r\n" : "")\r\n".utf8) }
    private static let errorPrebuilt = GatewayResponse.allCases.map { e in both { error(e, detail: e.detail, retryAfter: nil, close: $0) } }
    private static let envelopePrebuilt = EnvelopeError.allCases.map { e in both { envelope(e, retryAfter: nil, close: $0) } }
}

extension EnvelopeError {
    /// Position in `allCases`, for the prebuilt answers.
    var index: Int { Self.allCases.firstIndex(of: self)! }
}
