import FuzzSupport
@testable import Gateway

/// The upstream answer parser and the answer head the gateway writes for its client:
/// - the verdict on a prefix (copied to its own allocation, so AddressSanitizer sees any read
///   past it) is `.incomplete` or the verdict on the whole; a complete head keeps its verdict
///   when cut right after it, and its offsets lie inside the head;
/// - for every answer the exchange forwards (status >= 200, not 101), what `HTTP1AnswerHead`
///   writes is written whole or not at all, and re-parses as one head with the same status line
///   after the version, the framing the client must get (same Content-Length, chunked, until
///   close, none), never Transfer-Encoding with Content-Length, and, before the gateway's own
///   framing and Connection lines, exactly the upstream's fields minus those to drop (hop-by-hop
///   per RFC 9110 7.6.1, Trailer, Proxy-Authorization, and every field its Connection names).
enum ResponseHeadFuzz {
    nonisolated(unsafe) static let fields = UnsafeMutablePointer<HeaderField>.allocate(capacity: 256)
    nonisolated(unsafe) static let reparsed = UnsafeMutablePointer<HeaderField>.allocate(capacity: 256)
    nonisolated(unsafe) static let memory = UnsafeMutableRawPointer.allocate(byteCount: 16_384, alignment: 16)

    static func check(_ input: UnsafeRawBufferPointer) {
        var choices = FuzzChoices(input, count: 4)
        let limits = HTTPLimits(requestLineBytes: 8192, headerBytes: 24 + Int(choices.byte()) * 40,
                                maxHeaderFields: 1 + Int(choices.byte() % 128))
        let seed = Int(choices.byte())
        let flags = choices.byte()
        let bytes = choices.rest
        let whole = parseResponseHead(bytes, fields: fields, limits: limits)
        for k in 0..<6 where bytes.count > 0 {
            let cut = (seed &* 7919 &+ k &* 104_729) % (bytes.count + 1)
            let part = parsed(UnsafeRawBufferPointer(rebasing: bytes[0..<cut]), limits: limits)
            precondition(part == .incomplete || part == whole, "a split changed the verdict: \(part) vs \(whole)")
        }
        guard case let .complete(head) = parseResponseHead(bytes, fields: fields, limits: limits) else { return }
        precondition(head.headLength >= 16 && head.headLength <= bytes.count && head.headLength <= limits.headerBytes)
        precondition(bytes[(head.headLength - 4)..<head.headLength].elementsEqual([13, 10, 13, 10]), "head does not end in CRLFCRLF")
        precondition(head.fieldCount <= limits.maxHeaderFields)
        for i in 0..<head.fieldCount {
            let f = fields[i]
            precondition(f.name.start < f.name.end && f.value.start <= f.value.end && f.name.end <= f.value.start
                && f.value.end <= head.headLength - 4, "field offsets out of the head")
        }
        precondition(parsed(UnsafeRawBufferPointer(rebasing: bytes[0..<head.headLength]), limits: limits) == .complete(head),
                     "the bytes after the head changed its verdict")
        // Interim answers are dropped and 101 starts a tunnel (ProxyExchange.relayResponse).
        guard head.status >= 200 else { return }
        checkAnswer(head, UnsafeRawBufferPointer(rebasing: bytes[0...]), flags: flags, capacity: 16 + seed * 61)
    }

    /// Parses `bytes` copied into an allocation of exactly their size.
    static func parsed(_ bytes: UnsafeRawBufferPointer, limits: HTTPLimits) -> ResponseParse {
        let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 1)
        defer { copy.deallocate() }
        copy.copyMemory(from: bytes)
        return parseResponseHead(UnsafeRawBufferPointer(copy), fields: reparsed, limits: limits)
    }

    /// Writes the answer head as `ClientConnection.writeResponseHead` does and reads it back.
    static func checkAnswer(_ h: ResponseHead, _ bytes: UnsafeRawBufferPointer, flags: UInt8, capacity: Int) {
        let wasHEAD = flags & 1 != 0, client11 = flags & 2 != 0, clientKeepAlive = flags & 4 != 0
        let framing = responseBody(h, requestWasHEAD: wasHEAD)
        let body: ForwardedResponseHead.Body
        switch framing {
        case .none: body = .none
        case let .contentLength(n): body = .length(n)
        case .chunked, .untilClose: body = .unknown
        }
        let forwarded = ForwardedResponseHead(h, body: body, buffer: bytes, fields: fields)
        let chunked = body == .unknown && client11
        let keep = clientKeepAlive && !(body == .unknown && !client11)
        let connection: HTTP1AnswerHead.ConnectionField = !keep ? .close : (client11 ? .none : .keepAlive)

        let before = Int(flags >> 3)  // bytes already waiting in the client's buffer
        var out = ByteBuffer(base: memory, capacity: before + capacity)
        for i in 0..<before { _ = out.append(byte: UInt8(i)) }
        guard HTTP1AnswerHead.write(forwarded, chunked: chunked, connection: connection, into: &out) else {
            precondition(out.writerIndex == before, "a head that did not fit left bytes behind")
            return
        }
        let written = UnsafeRawBufferPointer(rebasing: out.readable[before...])
        let big = HTTPLimits(requestLineBytes: 65_536, headerBytes: 65_536, maxHeaderFields: 256)
        guard case let .complete(up) = parseResponseHead(written, fields: reparsed, limits: big) else {
            preconditionFailure("the answer head does not parse: \(parseResponseHead(written, fields: reparsed, limits: big))")
        }
        precondition(up.headLength == written.count, "bytes after the answer head")
        precondition(up.status == h.status && up.version == .http11)
        precondition(line(written)[8...].elementsEqual(line(bytes)[8...]), "the status line changed")
        precondition(up.keepAlive == (connection != .close), "the client's connection is not what was decided")
        let client = responseBody(up, requestWasHEAD: wasHEAD)
        switch body {
        case .none: precondition(client == .none)
        case let .length(n): precondition(client == .contentLength(n) && !up.chunked, "length lost: \(client)")
        case .unknown: precondition(client == (client11 ? .chunked : .untilClose), "framing lost: \(client)")
        }

        // The upstream's fields that must reach the client, by an independent reading. Known
        // deviation (ProxyStream.swift, outside this target's fixes): where no body follows,
        // Content-Length is forwarded even when the upstream's Connection names it.
        let options = connectionOptions(bytes, h)
        var expected: [(ArraySlice<UInt8>, ArraySlice<UInt8>)] = []
        for i in 0..<h.fieldCount {
            let name = slice(bytes, fields[i].name), lower = name.map(lowered)
            let isLength = lower.elementsEqual("content-length".utf8)
            // Kept only where no body follows and it describes one (HEAD, 304), never on a 204.
            if isLength { if body == .none && h.status != 204 { expected.append((name, slice(bytes, fields[i].value))) }; continue }
            if dropped.contains(where: { $0.elementsEqual(lower) }) || options.contains(where: { $0.elementsEqual(lower) }) { continue }
            expected.append((name, slice(bytes, fields[i].value)))
        }
        var own: [String] = []
        if case let .length(n) = body { own.append("content-length: \(n)") }
        if chunked { own.append("transfer-encoding: chunked") }
        if connection == .close { own.append("connection: close") }
        if connection == .keepAlive { own.append("connection: keep-alive") }
        precondition(up.fieldCount == expected.count + own.count, "\(up.fieldCount) fields, expected \(expected.count) + \(own.count)")
        for (i, (name, value)) in expected.enumerated() {
            precondition(slice(written, reparsed[i].name) == name && slice(written, reparsed[i].value) == value, "field \(i) changed")
        }
        for (k, text) in own.enumerated() {
            let f = reparsed[expected.count + k]
            let got = String(decoding: slice(written, f.name).map(lowered) + Array(": ".utf8) + slice(written, f.value), as: UTF8.self)
            precondition(got == text, "the gateway's own line is \(got), expected \(text)")
        }
        var te = false, cl = false
        for i in 0..<up.fieldCount {
            let lower = slice(written, reparsed[i].name).map(lowered)
            te = te || lower.elementsEqual("transfer-encoding".utf8)
            cl = cl || lower.elementsEqual("content-length".utf8)
        }
        precondition(!(te && cl), "Transfer-Encoding together with Content-Length")
    }

    /// Lower-case names never forwarded: RFC 9110 7.6.1 plus Trailer and Proxy-Authorization.
    static let dropped: [[UInt8]] = ["connection", "proxy-connection", "keep-alive", "te", "transfer-encoding", "upgrade",
                                     "trailer", "proxy-authorization"].map { Array($0.utf8) }

    /// The options of every Connection field, lower-cased.
    static func connectionOptions(_ bytes: UnsafeRawBufferPointer, _ h: ResponseHead) -> [[UInt8]] {
        var options: [[UInt8]] = []
        for i in 0..<h.fieldCount where slice(bytes, fields[i].name).map(lowered).elementsEqual("connection".utf8) {
            for element in slice(bytes, fields[i].value).split(separator: UInt8(ascii: ",")) {
                var t = Array(element)
                while let c = t.first, c == 32 || c == 9 { t.removeFirst() }
                while let c = t.last, c == 32 || c == 9 { t.removeLast() }
                if !t.isEmpty { options.append(t.map(lowered)) }
            }
        }
        return options
    }

    static func line(_ b: UnsafeRawBufferPointer) -> ArraySlice<UInt8> {
        var i = 0
        while i + 1 < b.count && !(b[i] == 13 && b[i + 1] == 10) { i += 1 }
        return ArraySlice(b[0..<i])
    }

    static func slice(_ b: UnsafeRawBufferPointer, _ r: ByteRange) -> ArraySlice<UInt8> { ArraySlice(b[r.start..<r.end]) }
    static func lowered(_ c: UInt8) -> UInt8 { c >= 65 && c <= 90 ? c | 0x20 : c }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    ResponseHeadFuzz.check(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}

@main enum Main {
    static func main() { FuzzReplay.main(fuzzOne) }
}
