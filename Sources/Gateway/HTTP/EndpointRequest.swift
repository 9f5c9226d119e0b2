import Foundation
import Glibc
import TokenCore

/// A request as the gateway's own endpoints see it: its head, its bytes so far (the head, then as
/// much body as has arrived), the worker it runs on and the snapshot it started with. Handlers
/// read it and return an `EndpointOutcome`; they never touch a connection, a buffer or a timer,
/// so any protocol's connection can serve them.
struct EndpointRequest {
    let head: RequestHead
    let bytes: UnsafeRawBufferPointer
    let fields: UnsafeMutablePointer<HeaderField>
    let worker: Worker
    let snapshot: GatewayState
    let peer: PeerAddress

    /// Answers `endpoint` (one of the gateway's own; never `.proxy`).
    func answer(_ endpoint: Endpoint, log: inout AccessLogEntry) -> EndpointOutcome {
        switch endpoint {
        case .health:
            return .respond(.healthy)
        case .ready:
            guard let readiness = snapshot.readiness, !readiness.isReady else { return .respond(.ready) }
            return .respond(.error(.serviceUnavailable, detail: readiness.problems.joined(separator: "; ")))
        case .about:
            guard isMethod("GET") || isMethod("HEAD") else { return .respond(.error(.methodNotAllowed)) }
            return about()
        case .login(.envelope), .refresh(.envelope):
            guard acceptsJSON() else { return .respond(.envelope(.notAcceptable)) }
            guard isMethod("POST") else { return .respond(.envelope(.methodNotAllowed)) }
            return endpoint == .login(.envelope) ? login(envelope: true, log: &log) : envelopeRefresh(log: &log)
        case .login(.datarhei):
            guard isMethod("POST") else { return .respond(.error(.methodNotAllowed)) }
            return login(envelope: false, log: &log)
        case .refresh(.datarhei):
            guard isMethod("GET") else { return .respond(.error(.methodNotAllowed)) }
            return refresh(log: &log)
        case .logout:
            guard isMethod("POST") else { return .respond(.error(.methodNotAllowed)) }
            return logout(log: &log)
        case .proxy, .notFound:
            return .respond(.error(.notFound))
        }
    }

    // MARK: reading the request

    func slice(_ r: ByteRange) -> UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: bytes[r.start..<r.end]) }

    func isMethod(_ name: StaticString) -> Bool {
        let m = slice(head.method)
        return m.count == name.utf8CodeUnitCount && memcmp(m.baseAddress!, name.utf8Start, m.count) == 0
    }

    /// The Bearer token of the one Authorization field; nil when absent, repeated or not Bearer.
    var bearerToken: UnsafeRawBufferPointer? {
        guard head.authorizationCount == 1, let auth = head.authorization else { return nil }
        return BearerCheck.token(in: slice(auth))
    }

    /// The values of every field named `name` (lower-case), in order.
    func values(of name: StaticString) -> [UnsafeRawBufferPointer] {
        (0..<head.fieldCount).compactMap { i in
            HeaderName.equals(slice(fields[i].name), name) ? slice(fields[i].value) : nil
        }
    }

    /// `Content-Type` is `application/json`, parameters such as charset allowed.
    var isJSONContentType: Bool {
        guard let v = values(of: "content-type").first else { return false }
        let type = "application/json".utf8.count
        guard v.count >= type, HeaderName.equals(UnsafeRawBufferPointer(rebasing: v[0..<type]), "application/json") else { return false }
        return v.count == type || v[type] == UInt8(ascii: ";") || v[type] == 0x20
    }

    /// `Accept` allows JSON: absent, `application/json`, `application/*` or `*/*` (q > 0).
    func acceptsJSON() -> Bool {
        let accepts = values(of: "accept")
        guard !accepts.isEmpty else { return true }
        for field in accepts {
            for range in String(decoding: field, as: UTF8.self).split(separator: ",") {
                let parts = range.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
                guard let type = parts.first else { continue }
                let refused = parts.dropFirst().contains { ["q=0", "q=0.0", "q=0.00", "q=0.000"].contains($0.replacingOccurrences(of: " ", with: "")) }
                if !refused && (type == "application/json" || type == "application/*" || type == "*/*") { return true }
            }
        }
        return false
    }

    /// A small JSON body (at most 4 KiB, Content-Length framed), or what to answer instead.
    enum SmallBody {
        case outcome(EndpointOutcome)
        case body(UnsafeRawBufferPointer)
    }

    func smallJSONBody(malformed: LocalResponse) -> SmallBody {
        guard !head.chunked else { return .outcome(.respondAndClose(.badRequest)) }
        guard let length = head.contentLength else { return .outcome(.respond(malformed)) }
        guard length <= 4096 else { return .outcome(.respondAndClose(.payloadTooLarge)) }
        // Wait for the whole (small) body; the head is handled again when it is complete.
        guard bytes.count >= head.headLength + Int(length) else { return .outcome(.awaitBody) }
        guard isJSONContentType else { return .outcome(.respond(malformed, bodyRead: true)) }
        return .body(UnsafeRawBufferPointer(rebasing: bytes[head.headLength..<(head.headLength + Int(length))]))
    }

    /// Two members, both non-empty strings, from a JSON object body.
    static func strings(in body: UnsafeRawBufferPointer, _ first: StaticString, _ second: StaticString) -> ([UInt8], [UInt8])? {
        let tape = JSONTape(capacity: 16)
        guard (try? tape.parse(body, limits: JSONLimits(maxBytes: 4096, maxDepth: 4, maxValues: 64))) != nil,
              tape[0].kind == .object,
              let u = JSONText.member(first, of: 0, in: tape, bytes: body), tape[u].kind == .string,
              let p = JSONText.member(second, of: 0, in: tape, bytes: body), tape[p].kind == .string else { return nil }
        let a = Array(JSONText.DecodedBytes(tape[u], in: body))
        let b = Array(JSONText.DecodedBytes(tape[p], in: body))
        guard !a.isEmpty, !b.isEmpty, a.count <= 8192 else { return nil }
        return (a, b)
    }

    /// The client's address: the socket peer, or, when the peer is a trusted proxy, the
    /// rightmost X-Forwarded-For entry that is not one (never believed from anyone else).
    func clientAddress() -> LoginThrottle.PeerKey {
        let peerKey = LoginThrottle.PeerKey(high: peer.high, low: peer.low)
        let trusted = snapshot.config.server.trustedProxies
        guard !trusted.isEmpty, trusted.contains(peer.text) else { return peerKey }
        let entries = values(of: "x-forwarded-for").flatMap { v in
            String(decoding: v, as: UTF8.self).split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        }
        for e in entries.reversed() where !trusted.contains(e) {
            if let key = Self.addressKey(e) { return key }
            break
        }
        return peerKey
    }

    static func addressKey(_ text: String) -> LoginThrottle.PeerKey? {
        var v6 = in6_addr(), v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 { return .init(high: 0, low: UInt64(v4.s_addr)) }
        if inet_pton(AF_INET6, text, &v6) == 1 {
            return withUnsafeBytes(of: &v6) { .init(high: $0.load(as: UInt64.self), low: $0.load(fromByteOffset: 8, as: UInt64.self)) }
        }
        return nil
    }
}
