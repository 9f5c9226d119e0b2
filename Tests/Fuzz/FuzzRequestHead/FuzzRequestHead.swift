import FuzzSupport
@testable import Gateway

/// The request head parser, the rewriter and the chunked decoder, by their properties:
/// - the verdict on a head does not depend on how its bytes were split across reads;
/// - what the rewriter writes parses back as the same request with the same framing, or is
///   not written at all (the buffer unchanged);
/// - a chunked body decodes to the same data and the same end whether fed whole or in pieces.
enum RequestHeadFuzz {
    nonisolated(unsafe) static let fields = UnsafeMutablePointer<HeaderField>.allocate(capacity: 64)
    nonisolated(unsafe) static let reparsed = UnsafeMutablePointer<HeaderField>.allocate(capacity: 64)
    nonisolated(unsafe) static let memory = UnsafeMutableRawPointer.allocate(byteCount: 16_384, alignment: 16)

    static func check(_ input: UnsafeRawBufferPointer) {
        var choices = FuzzChoices(input, count: 4)
        let lineLimit = 32 + Int(choices.byte() & 0x7F) * 8
        let limits = HTTPLimits(requestLineBytes: lineLimit, headerBytes: lineLimit + Int(choices.byte()) * 16,
                                maxHeaderFields: 1 + Int(choices.byte() % 64))
        let seed = Int(choices.byte())
        let bytes = choices.rest
        let whole = parseRequestHead(bytes, fields: fields, limits: limits)
        for k in 0..<6 where bytes.count > 0 {
            let cut = (seed &* 7919 &+ k &* 104_729) % (bytes.count + 1)
            let part = parseRequestHead(UnsafeRawBufferPointer(rebasing: bytes[0..<cut]), fields: reparsed, limits: limits)
            precondition(part == .incomplete || part == whole, "a split changed the verdict: \(part) vs \(whole)")
        }
        guard case let .complete(head) = parseRequestHead(bytes, fields: fields, limits: limits) else { return }
        // An HTTP/1.0 request without Host is refused before rewriting (it would go up as
        // HTTP/1.1 without one): the first finding of this target, fixed in RequestDispatch.
        guard head.host != nil else { return }
        checkRewrite(head, bytes, limits: limits, capacity: 64 + seed * 61)
        if head.chunked { checkChunked(UnsafeRawBufferPointer(rebasing: bytes[head.headLength...]), seed: seed) }
    }

    static let strip = StrippedFields(GatewayConfig.Server().stripRequestFields)

    static func checkRewrite(_ head: RequestHead, _ bytes: UnsafeRawBufferPointer, limits: HTTPLimits, capacity: Int) {
        var out = ByteBuffer(base: memory, capacity: capacity)
        let subject: [UInt8] = Array("alice".utf8)
        let written = subject.withUnsafeBytes { s in
            RequestRewriter.write(.init(buffer: bytes, head: head, fields: fields, forwardAuthorization: head.headLength & 1 == 0,
                                        subject: s, peer: PeerAddress(), tunnel: head.upgradeWebSocket, strip: strip),
                                  into: &out, requestID: { $0.append("id") })
        }
        guard written else {
            precondition(out.writerIndex == 0, "a refused head left bytes behind")
            return
        }
        let big = HTTPLimits(requestLineBytes: 16_384, headerBytes: 16_384, maxHeaderFields: 64)
        guard case let .complete(up) = parseRequestHead(out.readable, fields: reparsed, limits: big) else {
            preconditionFailure("the rewritten head does not parse: \(parseRequestHead(out.readable, fields: reparsed, limits: big))")
        }
        precondition(up.headLength == out.readableBytes, "bytes after the rewritten head")
        precondition(out.readable[up.method.start..<up.method.end].elementsEqual(bytes[head.method.start..<head.method.end]))
        precondition(out.readable[up.target.start..<up.target.end].elementsEqual(bytes[head.target.start..<head.target.end]))
        precondition(up.chunked == head.chunked, "chunked framing changed")
        precondition((up.contentLength ?? 0) == (head.contentLength ?? 0), "length changed")
        precondition(up.upgradeWebSocket == head.upgradeWebSocket, "upgrade changed")
        var identities = 0
        for i in 0..<up.fieldCount where HeaderName.equalsIdentity(UnsafeRawBufferPointer(rebasing: out.readable[reparsed[i].name.start..<reparsed[i].name.end])) {
            identities += 1
        }
        precondition(identities == 1, "the identity field is the gateway's alone")
    }

    static func checkChunked(_ body: UnsafeRawBufferPointer, seed: Int) {
        let (wholeData, wholeEnd) = decode(body, pieces: [body.count])
        var pieces: [Int] = []
        var left = body.count, s = seed
        while left > 0 {
            s = (s &* 1_103_515_245 &+ 12_345) & 0x7FFF_FFFF
            let n = min(left, 1 + s % 17)
            pieces.append(n)
            left -= n
        }
        let (splitData, splitEnd) = decode(body, pieces: pieces)
        precondition(splitEnd == wholeEnd, "the chunked verdict depends on the split")
        if wholeEnd != .error { precondition(splitData == wholeData, "the chunked data depends on the split") }
    }

    /// Feeds `body` to a decoder piece by piece (as reads would), collecting the data.
    static func decode(_ body: UnsafeRawBufferPointer, pieces: [Int]) -> ([UInt8], ChunkedDecoder.Step) {
        var decoder = ChunkedDecoder()
        var data: [UInt8] = []
        var fed = 0, consumed = 0
        for n in pieces {
            fed += n
            while true {
                let view = UnsafeRawBufferPointer(rebasing: body[consumed..<fed])
                let (step, offset) = decoder.next(view, from: 0)
                consumed += offset
                switch step {
                case let .data(r): data += view[r.start..<r.end]
                case .needMore: break
                case .done, .error: return (data, step)
                }
                if case .needMore = step { break }
            }
        }
        return (data, .needMore)
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    RequestHeadFuzz.check(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}

@main enum Main {
    static func main() { FuzzReplay.main(fuzzOne) }
}
