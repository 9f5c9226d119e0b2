import CGatewayShims
import FuzzSupport
@testable import Gateway

/// `HTTP2RequestHead`: any header list nghttp2 would pass on (names and values it accepts,
/// connection-specific fields refused, pseudo-fields first) either fails, or becomes a head the
/// strict HTTP/1.1 parser reads as exactly that request: the same method (GET for a WebSocket's
/// extended CONNECT), target and Host, and every field it sent, in order, none invented — so no
/// value can smuggle a line, a second Host or a framing field past the verdict.
///
/// Input: repeated [name length: 1 byte][name][value length: 2 bytes][value].
enum HTTP2HeadFuzz {
    static func check(_ input: UnsafeRawBufferPointer) {
        var fields: [([UInt8], [UInt8])] = []
        var i = 0
        while i < input.count && fields.count < 64 {
            let n = Int(input[i]); i += 1
            guard i + n + 2 <= input.count else { break }
            let name = Array(input[i..<(i + n)]); i += n
            let v = Int(input[i]) << 8 | Int(input[i + 1]); i += 2
            let value = Array(input[i..<min(input.count, i + v)]); i += v
            fields.append((name, value))
        }
        // What nghttp2 lets through to the gateway's callbacks.
        var sawRegular = false
        var list: [([UInt8], [UInt8])] = []
        for (name, value) in fields {
            guard !name.isEmpty else { return }
            // nghttp2's own checks (RFC 9113: no leading or trailing white space in a value).
            let ok = name.withUnsafeBufferPointer { nb in value.withUnsafeBufferPointer { vb in
                nghttp2_check_header_name(nb.baseAddress, nb.count) == 1 && nghttp2_check_header_value_rfc9113(vb.baseAddress, vb.count) == 1 } }
            let pseudo = name.first == UInt8(ascii: ":")
            if pseudo {
                let text = String(decoding: name, as: UTF8.self)
                guard !sawRegular, [":method", ":path", ":authority", ":scheme", ":protocol"].contains(text),
                      !list.contains(where: { $0.0 == name }) else { return }
                let valid = value.withUnsafeBufferPointer { vb -> Bool in
                    switch text {
                    case ":method": return nghttp2_check_method(vb.baseAddress, vb.count) == 1
                    case ":path": return nghttp2_check_path(vb.baseAddress, vb.count) == 1
                    case ":authority": return nghttp2_check_authority(vb.baseAddress, vb.count) == 1
                    default: return nghttp2_check_header_value_rfc9113(vb.baseAddress, vb.count) == 1
                    }
                }
                guard valid else { return }
            } else {
                guard ok else { return }
                sawRegular = true
                let text = String(decoding: name, as: UTF8.self)
                if ["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"].contains(text) { return }
                if text == "te" && value != Array("trailers".utf8) { return }
            }
            list.append((name, value))
        }
        func pseudo(_ n: String) -> [UInt8]? { list.first { $0.0 == Array(n.utf8) }?.1 }
        guard let method = pseudo(":method"), let path = pseudo(":path") else { return }

        let memory = UnsafeMutableRawPointer.allocate(byteCount: 65_536, alignment: 16)
        defer { memory.deallocate() }
        var buffer = ByteBuffer(base: memory, capacity: 65_536)
        var head = HTTP2RequestHead(limit: 32_768, pool: nil)
        head.webSocketKey = "a2V5a2V5a2V5a2V5a2V5a2=="
        for (name, value) in list {
            name.withUnsafeBytes { n in value.withUnsafeBytes { v in head.add(name: n, value: v, into: &buffer) } }
        }
        guard case let .success(range) = head.finish(.asSent, into: &buffer) else { return }
        let bytes = UnsafeRawBufferPointer(start: memory + range.lowerBound, count: range.count)
        let parsedFields = UnsafeMutablePointer<HeaderField>.allocate(capacity: 256)
        defer { parsedFields.deallocate() }
        guard case let .complete(h) = parseRequestHead(bytes, fields: parsedFields, limits: HTTPLimits(requestLineBytes: 32_768, headerBytes: 32_768, maxHeaderFields: 256)) else {
            return  // refused by the strict parser: nothing goes anywhere
        }
        precondition(h.headLength == bytes.count, "the head parsed shorter than it was written")
        func slice(_ r: ByteRange) -> [UInt8] { Array(bytes[r.start..<r.end]) }
        let webSocket = head.isWebSocket
        precondition(slice(h.method) == (webSocket ? Array("GET".utf8) : method), "the method changed")
        precondition(slice(h.target) == path, "the target changed")
        // Host: :authority when sent, else the host field.
        let authority = pseudo(":authority")
        let hostField = list.first { $0.0 == Array("host".utf8) }?.1
        if let expected = authority ?? hostField {
            precondition(h.host.map(slice) == expected, "the host changed")
        }
        // Every field the head carries, in order, is one the client sent (cookies joined).
        var expected: [([UInt8], [UInt8])] = []
        if let authority { expected.append((Array("host".utf8), authority)) }
        if webSocket {
            expected.append((Array("upgrade".utf8), Array("websocket".utf8)))
            expected.append((Array("connection".utf8), Array("upgrade".utf8)))
            expected.append((Array("sec-websocket-key".utf8), Array(head.webSocketKey.utf8)))
        }
        var cookies: [UInt8] = []
        for (name, value) in list where name.first != UInt8(ascii: ":") {
            if name == Array("cookie".utf8) {
                if !cookies.isEmpty { cookies += Array("; ".utf8) }
                cookies += value
            } else if name == Array("host".utf8) && authority != nil {
                continue
            } else {
                expected.append((name, value))
            }
        }
        if !cookies.isEmpty { expected.append((Array("cookie".utf8), cookies)) }
        precondition(h.fieldCount == expected.count, "\(h.fieldCount) fields parsed, \(expected.count) sent")
        for k in 0..<h.fieldCount {
            let trimmedValue = expected[k].1.drop { $0 == 0x20 || $0 == 0x09 }.reversed().drop { $0 == 0x20 || $0 == 0x09 }.reversed()
            precondition(slice(parsedFields[k].name) == expected[k].0, "field \(k) changed its name")
            precondition(slice(parsedFields[k].value) == Array(trimmedValue), "field \(k) changed its value")
        }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    HTTP2HeadFuzz.check(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}

@main enum Main {
    static func main() { FuzzReplay.main(fuzzOne) }
}
