/// Redis's serialisation protocol, RESP2 and RESP3 (the wire of `[cluster] redis`): commands
/// written as arrays of bulk strings, replies read incrementally from whatever bytes have come,
/// strictly and within limits — a reply is bytes from the network, parsed as carefully as a
/// request. Pure values: no socket, no allocation beyond the reply itself.
enum RESPValue: Equatable, Sendable {
    case simple(String)
    /// An error reply (`-ERR ...` or RESP3's bulk error).
    case error(String)
    case integer(Int64)
    case bulk([UInt8])
    /// RESP2's null bulk string or null array, and RESP3's null.
    case null
    case array([RESPValue])
    case boolean(Bool)
    /// RESP3's double, as the text Redis sent (`1.5`, `inf`, `nan`).
    case double(String)
    /// RESP3's big number, as its digits.
    case bigNumber(String)
    /// RESP3's verbatim string: its three-letter format and text.
    case verbatim(format: String, text: [UInt8])
    /// RESP3's map, as key/value pairs in the order sent.
    case map([(RESPValue, RESPValue)])
    case set([RESPValue])
    /// RESP3's out-of-band push (pub/sub messages, invalidations).
    case push([RESPValue])

    static func == (a: RESPValue, b: RESPValue) -> Bool {
        switch (a, b) {
        case let (.simple(x), .simple(y)), let (.error(x), .error(y)), let (.double(x), .double(y)), let (.bigNumber(x), .bigNumber(y)):
            return x == y
        case let (.integer(x), .integer(y)): return x == y
        case let (.bulk(x), .bulk(y)): return x == y
        case (.null, .null): return true
        case let (.array(x), .array(y)), let (.set(x), .set(y)), let (.push(x), .push(y)): return x == y
        case let (.boolean(x), .boolean(y)): return x == y
        case let (.verbatim(f, t), .verbatim(g, u)): return f == g && t == u
        case let (.map(x), .map(y)): return x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: return false
        }
    }

    /// The text of a simple string, bulk string or verbatim string.
    var text: String? {
        switch self {
        case let .simple(s): return s
        case let .bulk(b): return String(decoding: b, as: UTF8.self)
        case let .verbatim(_, t): return String(decoding: t, as: UTF8.self)
        default: return nil
        }
    }
}

enum RESP {
    /// Bounds on a reply: beyond them it is malformed, never truncated.
    struct Limits: Sendable {
        var maxBulkBytes = 1 << 20
        var maxElements = 100_000
        var maxDepth = 8
        var maxLineBytes = 64 * 1024
    }

    enum Parse: Equatable {
        /// A whole reply and how many bytes it took.
        case complete(RESPValue, consumed: Int)
        /// More bytes are needed (nothing is consumed).
        case incomplete
        case malformed(String)
    }

    /// A command as Redis reads it: an array of bulk strings.
    static func command(_ parts: [String]) -> [UInt8] { command(parts.map { Array($0.utf8) }) }

    static func command(_ parts: [[UInt8]]) -> [UInt8] {
        var out = Array("*\(parts.count)\r\n".utf8)
        for p in parts {
            out += Array("$\(p.count)\r\n".utf8)
            out += p
            out += [0x0D, 0x0A]
        }
        return out
    }

    /// Reads one reply from the start of `bytes`.
    static func parse(_ bytes: [UInt8], limits: Limits = Limits()) -> Parse {
        var reader = Reader(bytes: bytes, limits: limits)
        do throws(Failure) {
            let value = try reader.value(depth: 0)
            return .complete(value, consumed: reader.offset)
        } catch {
            switch error {
            case .incomplete: return .incomplete
            case let .malformed(why): return .malformed(why)
            }
        }
    }

    private enum Failure: Error {
        case incomplete
        case malformed(String)
    }

    private struct Reader {
        let bytes: [UInt8]
        let limits: Limits
        var offset = 0
        /// Elements read so far in this reply (all levels): bounds the work of one reply.
        var elements = 0

        init(bytes: [UInt8], limits: Limits) {
            self.bytes = bytes
            self.limits = limits
        }

        /// The line after the type byte, without its CRLF; a bare CR or LF inside is malformed.
        mutating func line() throws(Failure) -> ArraySlice<UInt8> {
            let start = offset
            while true {
                guard offset < bytes.count else {
                    if offset - start > limits.maxLineBytes { throw .malformed("a line longer than \(limits.maxLineBytes) bytes") }
                    throw .incomplete
                }
                let b = bytes[offset]
                if b == 0x0D {
                    guard offset + 1 < bytes.count else { throw .incomplete }
                    guard bytes[offset + 1] == 0x0A else { throw .malformed("CR without LF") }
                    let line = bytes[start..<offset]
                    offset += 2
                    return line
                }
                if b == 0x0A { throw .malformed("LF without CR") }
                offset += 1
                if offset - start > limits.maxLineBytes { throw .malformed("a line longer than \(limits.maxLineBytes) bytes") }
            }
        }

        /// A decimal integer: an optional minus, then 1 to 19 digits (no plus, no spaces).
        func integer(_ s: ArraySlice<UInt8>) throws(Failure) -> Int64 {
            var digits = s[...]
            let negative = digits.first == UInt8(ascii: "-")
            if negative { digits = digits.dropFirst() }
            guard !digits.isEmpty, digits.count <= 19, digits.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
                throw .malformed("not an integer: \(String(decoding: s.prefix(24), as: UTF8.self))")
            }
            var v: Int64 = 0
            for d in digits {
                let (m, o1) = v.multipliedReportingOverflow(by: 10)
                let (n, o2) = m.addingReportingOverflow(Int64(d - 0x30))
                guard !o1, !o2 else { throw .malformed("an integer out of range") }
                v = n
            }
            return negative ? -v : v
        }

        /// `count` bytes then CRLF.
        mutating func blob(_ count: Int) throws(Failure) -> [UInt8] {
            guard count <= limits.maxBulkBytes else { throw .malformed("a bulk of \(count) bytes (at most \(limits.maxBulkBytes))") }
            guard bytes.count - offset >= count + 2 else { throw .incomplete }
            guard bytes[offset + count] == 0x0D, bytes[offset + count + 1] == 0x0A else { throw .malformed("a bulk not ended by CRLF") }
            let b = Array(bytes[offset..<(offset + count)])
            offset += count + 2
            return b
        }

        /// An aggregate's length line: -1 (null, where allowed) or 0...maxElements.
        mutating func length(nullAllowed: Bool) throws(Failure) -> Int? {
            let n = try integer(try line())
            if n == -1 && nullAllowed { return nil }
            guard n >= 0, n <= Int64(limits.maxElements) else { throw .malformed("a length of \(n)") }
            return Int(n)
        }

        mutating func elements(_ n: Int, depth: Int) throws(Failure) -> [RESPValue] {
            elements += n
            guard elements <= limits.maxElements else { throw .malformed("more than \(limits.maxElements) elements in one reply") }
            var out: [RESPValue] = []
            out.reserveCapacity(min(n, 1024))
            for _ in 0..<n { out.append(try value(depth: depth + 1)) }
            return out
        }

        mutating func value(depth: Int) throws(Failure) -> RESPValue {
            guard depth <= limits.maxDepth else { throw .malformed("nested deeper than \(limits.maxDepth)") }
            guard offset < bytes.count else { throw .incomplete }
            let type = bytes[offset]
            offset += 1
            switch type {
            case UInt8(ascii: "+"): return .simple(String(decoding: try line(), as: UTF8.self))
            case UInt8(ascii: "-"): return .error(String(decoding: try line(), as: UTF8.self))
            case UInt8(ascii: ":"): return .integer(try integer(try line()))
            case UInt8(ascii: "$"):
                guard let n = try length(nullAllowed: true) else { return .null }
                return .bulk(try blob(n))
            case UInt8(ascii: "!"):
                guard let n = try length(nullAllowed: false) else { return .null }
                return .error(String(decoding: try blob(n), as: UTF8.self))
            case UInt8(ascii: "="):
                guard let n = try length(nullAllowed: false) else { return .null }
                let b = try blob(n)
                guard b.count >= 4, b[3] == UInt8(ascii: ":") else { throw .malformed("a verbatim string without its format") }
                return .verbatim(format: String(decoding: b[0..<3], as: UTF8.self), text: Array(b[4...]))
            case UInt8(ascii: "*"), UInt8(ascii: "~"), UInt8(ascii: ">"):
                guard let n = try length(nullAllowed: type == UInt8(ascii: "*")) else { return .null }
                let items = try elements(n, depth: depth)
                return type == UInt8(ascii: "*") ? .array(items) : type == UInt8(ascii: "~") ? .set(items) : .push(items)
            case UInt8(ascii: "%"):
                guard let n = try length(nullAllowed: false), n <= limits.maxElements / 2 else { throw .malformed("a map too large") }
                let flat = try elements(2 * n, depth: depth)
                return .map(stride(from: 0, to: flat.count, by: 2).map { (flat[$0], flat[$0 + 1]) })
            case UInt8(ascii: "|"):
                // An attribute annotates the reply that follows: read, then passed over.
                guard let n = try length(nullAllowed: false), n <= limits.maxElements / 2 else { throw .malformed("an attribute too large") }
                _ = try elements(2 * n, depth: depth)
                return try value(depth: depth)
            case UInt8(ascii: "_"):
                guard try line().isEmpty else { throw .malformed("a null with a payload") }
                return .null
            case UInt8(ascii: "#"):
                let l = try line()
                guard l.count == 1, l.first == UInt8(ascii: "t") || l.first == UInt8(ascii: "f") else { throw .malformed("a boolean not t or f") }
                return .boolean(l.first == UInt8(ascii: "t"))
            case UInt8(ascii: ","):
                let l = try line()
                let allowed = Set("0123456789+-.eE".utf8)
                let text = String(decoding: l, as: UTF8.self)
                guard !l.isEmpty, ["inf", "-inf", "nan"].contains(text) || l.allSatisfy(allowed.contains) else {
                    throw .malformed("not a double: \(String(text.prefix(24)))")
                }
                return .double(text)
            case UInt8(ascii: "("):
                let l = try line()
                var digits = l[...]
                if digits.first == UInt8(ascii: "-") { digits = digits.dropFirst() }
                guard !digits.isEmpty, digits.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { throw .malformed("not a big number") }
                return .bigNumber(String(decoding: l, as: UTF8.self))
            default:
                throw .malformed("unknown type byte 0x\(String(type, radix: 16))")
            }
        }
    }
}
