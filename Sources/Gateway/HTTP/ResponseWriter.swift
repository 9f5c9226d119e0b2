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
        http1(message(.error(e, detail: detail, retryAfter: retryAfter)), close: close)
    }

    /// The envelope profile's error body: `{"code":<its code>,"error":"<word>","desc":"<text>"}`.
    static func envelope(_ e: EnvelopeError, retryAfter: Int?, close: Bool) -> [UInt8] {
        http1(message(.envelope(e, retryAfter: retryAfter)), close: close)
    }

    static func json(_ status: Int, body: [UInt8], close: Bool) -> [UInt8] {
        http1(LocalMessage(status: status, reason: status == 200 ? "OK" : "Error", body: body, retryAfter: nil), close: close)
    }

    /// `response` as status, reason, body and Retry-After, before any protocol frames it (HTTP/2
    /// streams take it from here).
    static func message(_ response: LocalResponse) -> LocalMessage {
        switch response {
        case .healthy: return LocalMessage(status: 200, reason: "OK", body: Array("{\"status\":\"ok\"}".utf8), retryAfter: nil)
        case .ready: return LocalMessage(status: 200, reason: "OK", body: Array("{\"status\":\"ready\"}".utf8), retryAfter: nil)
        case .noContent: return LocalMessage(status: 204, reason: "No Content", body: nil, retryAfter: nil)
        case let .json(body): return LocalMessage(status: 200, reason: "OK", body: body, retryAfter: nil)
        case let .error(e, detail, retryAfter):
            var body = JSONWriter(capacity: 128)
            body.raw("{\"code\":"); body.int(Int64(e.status))
            body.raw(",\"message\":"); body.string(e.reason)
            body.raw(",\"details\":["); body.string(detail ?? e.detail); body.raw("]}")
            return LocalMessage(status: e.status, reason: e.reason, body: body.bytes, retryAfter: retryAfter)
        case let .envelope(e, retryAfter):
            var body = JSONWriter(capacity: 128)
            body.raw("{\"code\":"); body.int(Int64(e.rawValue))
            body.raw(",\"error\":"); body.string(e.word)
            body.raw(",\"desc\":"); body.string(e.desc); body.raw("}")
            return LocalMessage(status: e.status.0, reason: e.status.1, body: body.bytes, retryAfter: retryAfter)
        }
    }

    /// The message as HTTP/1.1 bytes.
    private static func http1(_ m: LocalMessage, close: Bool) -> [UInt8] {
        var text = "HTTP/1.1 \(m.status) \(m.reason)\r\n"
        if let body = m.body { text += "Content-Type: application/json\r\nContent-Length: \(body.count)\r\n" }
        if m.challengesBearer { text += "WWW-Authenticate: \(LocalMessage.bearerChallenge)\r\n" }
        if let retryAfter = m.retryAfter { text += "Retry-After: \(retryAfter)\r\n" }
        if close { text += "Connection: close\r\n" }
        return Array((text + "\r\n").utf8) + (m.body ?? [])
    }

    /// The head alone: a HEAD request is answered with the fields a GET would get.
    static func withoutBody(_ full: [UInt8]) -> [UInt8] {
        var i = 3
        while i < full.count && !(full[i - 3] == 13 && full[i - 2] == 10 && full[i - 1] == 13 && full[i] == 10) { i += 1 }
        return Array(full[0..<min(i + 1, full.count)])
    }

    // MARK: prebuilt, [keep-alive, close] each

    private static func both(_ make: (Bool) -> [UInt8]) -> [[UInt8]] { [make(false), make(true)] }

    private static let healthy = both { http1(message(.healthy), close: $0) }
    private static let ready = both { http1(message(.ready), close: $0) }
    private static let noContent = both { http1(message(.noContent), close: $0) }
    private static let errorPrebuilt = GatewayResponse.allCases.map { e in both { error(e, detail: e.detail, retryAfter: nil, close: $0) } }
    private static let envelopePrebuilt = EnvelopeError.allCases.map { e in both { envelope(e, retryAfter: nil, close: $0) } }
}

extension EnvelopeError {
    /// Position in `allCases`, for the prebuilt answers.
    var index: Int { Self.allCases.firstIndex(of: self)! }
}

/// An answer of the gateway's own before a protocol frames it: JSON bodies go with
/// `Content-Type: application/json` and their length; a 401 challenges for a Bearer token.
struct LocalMessage {
    let status: Int
    let reason: String
    /// nil: no body and no Content-Type (204).
    let body: [UInt8]?
    let retryAfter: Int?

    var challengesBearer: Bool { status == 401 }

    static let bearerChallenge = "Bearer error=\"invalid_token\""
}
