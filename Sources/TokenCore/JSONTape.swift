/// Why a JSON text was refused.
public enum JSONError: Error, Equatable, Sendable {
    case truncated
    case unexpectedByte(offset: Int)
    case invalidString(offset: Int)
    case invalidNumber(offset: Int)
    case duplicateKey(offset: Int)
    case tooDeep
    case tooManyValues
    case tooLarge
    case trailingData(offset: Int)
}

/// Bounds applied while parsing, so hostile input cannot make the parser work or hold without end.
public struct JSONLimits: Sendable {
    public var maxBytes: Int
    public var maxDepth: Int
    public var maxValues: Int
    public init(maxBytes: Int, maxDepth: Int, maxValues: Int) {
        self.maxBytes = maxBytes
        self.maxDepth = maxDepth
        self.maxValues = maxValues
    }
    /// JOSE headers and JWT claims: small, flat objects.
    public static let token = JSONLimits(maxBytes: 8192, maxDepth: 8, maxValues: 256)
    /// Configuration-sized documents (JWK Sets, request bodies).
    public static let document = JSONLimits(maxBytes: 1 << 20, maxDepth: 32, maxValues: 65536)
}

/// One parsed value: offsets into the parsed bytes, never a copy of them.
public struct JSONNode: Sendable {
    public enum Kind: UInt8, Sendable { case object, array, string, number, bool, null }
    public var kind: Kind
    /// Strings: the content contains a backslash escape. Numbers: has a fraction or exponent.
    public var flag: Bool
    /// Strings: content between the quotes. Numbers: the literal. Booleans: true or false range.
    public var start: Int32
    public var end: Int32
    /// Index of the node that follows this value and everything inside it.
    public var next: Int32
    /// Objects: member count. Arrays: element count.
    public var count: Int32
}

/// A strict RFC 8259 parser that records each value as a `JSONNode` in a flat array (a "tape").
///
/// The tape is meant to be kept and reused (`parse` clears it but keeps its capacity), so parsing
/// a token's header and claims allocates nothing once warm. Object members are stored as key node,
/// value node, key node, ... after their object node. Duplicate keys (compared after unescaping)
/// are an error, strings must be valid UTF-8 with valid escapes (no lone surrogates), and depth,
/// size and value count are bounded.
public struct JSONTape: Sendable {
    public private(set) var nodes: [JSONNode] = []

    public init() {}

    /// Parses one JSON text (surrounding whitespace allowed) into `nodes`; the root is `nodes[0]`.
    public mutating func parse(_ bytes: UnsafeRawBufferPointer, limits: JSONLimits) throws(JSONError) {
        nodes.removeAll(keepingCapacity: true)
        guard bytes.count <= limits.maxBytes else { throw .tooLarge }
        var parser = Parser(bytes: bytes, limits: limits)
        parser.skipSpace()
        try parser.value(into: &nodes, depth: 0)
        parser.skipSpace()
        if parser.pos != bytes.count { throw .trailingData(offset: parser.pos) }
    }

    public mutating func parse(_ bytes: [UInt8], limits: JSONLimits) throws(JSONError) {
        var failure: JSONError?
        bytes.withUnsafeBytes { raw in
            do throws(JSONError) { try parse(raw, limits: limits) } catch { failure = error }
        }
        if let failure { throw failure }
    }
}

private struct Parser {
    let bytes: UnsafeRawBufferPointer
    let limits: JSONLimits
    var pos = 0

    init(bytes: UnsafeRawBufferPointer, limits: JSONLimits) {
        self.bytes = bytes
        self.limits = limits
    }

    @inline(__always)
    mutating func skipSpace() {
        while pos < bytes.count {
            let b = bytes[pos]
            guard b == 0x20 || b == 0x0A || b == 0x0D || b == 0x09 else { return }
            pos += 1
        }
    }

    @inline(__always)
    func peek() throws(JSONError) -> UInt8 {
        guard pos < bytes.count else { throw .truncated }
        return bytes[pos]
    }

    mutating func append(_ node: JSONNode, to nodes: inout [JSONNode]) throws(JSONError) -> Int {
        guard nodes.count < limits.maxValues else { throw .tooManyValues }
        nodes.append(node)
        return nodes.count - 1
    }

    mutating func value(into nodes: inout [JSONNode], depth: Int) throws(JSONError) {
        let b = try peek()
        switch b {
        case UInt8(ascii: "{"):
            try container(object: true, into: &nodes, depth: depth)
        case UInt8(ascii: "["):
            try container(object: false, into: &nodes, depth: depth)
        case UInt8(ascii: "\""):
            try string(into: &nodes)
        case UInt8(ascii: "t"):
            try literal("true", kind: .bool, into: &nodes)
        case UInt8(ascii: "f"):
            try literal("false", kind: .bool, into: &nodes)
        case UInt8(ascii: "n"):
            try literal("null", kind: .null, into: &nodes)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            try number(into: &nodes)
        default:
            throw .unexpectedByte(offset: pos)
        }
    }

    mutating func literal(_ word: StaticString, kind: JSONNode.Kind, into nodes: inout [JSONNode]) throws(JSONError) {
        let n = word.utf8CodeUnitCount
        guard pos + n <= bytes.count else { throw .truncated }
        for i in 0..<n where bytes[pos + i] != word.utf8Start[i] { throw .unexpectedByte(offset: pos + i) }
        let start = pos
        pos += n
        let index = try append(JSONNode(kind: kind, flag: false, start: Int32(start), end: Int32(pos), next: 0, count: 0), to: &nodes)
        nodes[index].next = Int32(nodes.count)
    }

    mutating func container(object: Bool, into nodes: inout [JSONNode], depth: Int) throws(JSONError) {
        guard depth < limits.maxDepth else { throw .tooDeep }
        let start = pos
        let index = try append(JSONNode(kind: object ? .object : .array, flag: false, start: Int32(start), end: 0, next: 0, count: 0), to: &nodes)
        pos += 1
        skipSpace()
        let close = object ? UInt8(ascii: "}") : UInt8(ascii: "]")
        var count: Int32 = 0
        if try peek() == close {
            pos += 1
        } else {
            while true {
                if object {
                    guard try peek() == UInt8(ascii: "\"") else { throw .unexpectedByte(offset: pos) }
                    try string(into: &nodes)
                    skipSpace()
                    guard try peek() == UInt8(ascii: ":") else { throw .unexpectedByte(offset: pos) }
                    pos += 1
                    skipSpace()
                }
                try value(into: &nodes, depth: depth + 1)
                count += 1
                skipSpace()
                let b = try peek()
                pos += 1
                if b == close { break }
                guard b == UInt8(ascii: ",") else { throw .unexpectedByte(offset: pos - 1) }
                skipSpace()
            }
        }
        nodes[index].end = Int32(pos)
        nodes[index].count = count
        nodes[index].next = Int32(nodes.count)
        if object && count > 1 { try rejectDuplicateKeys(object: index, nodes: nodes) }
    }

    /// Pairwise comparison of the object's keys after unescaping. Objects here are small (token
    /// claims, JWKs); the size bound on the input bounds the quadratic cost.
    func rejectDuplicateKeys(object: Int, nodes: [JSONNode]) throws(JSONError) {
        var i = object + 1
        let end = Int(nodes[object].next)
        while i < end {
            var j = Int(nodes[i + 1].next)
            while j < end {
                if JSONText.stringsEqual(nodes[i], nodes[j], in: bytes) { throw .duplicateKey(offset: Int(nodes[j].start)) }
                j = Int(nodes[j + 1].next)
            }
            i = Int(nodes[i + 1].next)
        }
    }

    mutating func string(into nodes: inout [JSONNode]) throws(JSONError) {
        pos += 1  // opening quote
        let start = pos
        var escaped = false
        let n = bytes.count
        while true {
            guard pos < n else { throw .truncated }
            let b = bytes[pos]
            if b == UInt8(ascii: "\"") { break }
            if b == UInt8(ascii: "\\") {
                escaped = true
                try escape()
            } else if b < 0x20 {
                throw .invalidString(offset: pos)
            } else if b < 0x80 {
                pos += 1
            } else {
                try utf8Sequence()
            }
        }
        let index = try append(JSONNode(kind: .string, flag: escaped, start: Int32(start), end: Int32(pos), next: 0, count: 0), to: &nodes)
        nodes[index].next = Int32(nodes.count)
        pos += 1  // closing quote
    }

    mutating func escape() throws(JSONError) {
        guard pos + 1 < bytes.count else { throw .truncated }
        switch bytes[pos + 1] {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"),
             UInt8(ascii: "f"), UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
            pos += 2
        case UInt8(ascii: "u"):
            let unit = try hex4(at: pos + 2)
            pos += 6
            if unit >= 0xD800 && unit <= 0xDBFF {
                // A high surrogate must be followed by an escaped low surrogate.
                guard pos + 1 < bytes.count, bytes[pos] == UInt8(ascii: "\\"), bytes[pos + 1] == UInt8(ascii: "u") else {
                    throw .invalidString(offset: pos)
                }
                let low = try hex4(at: pos + 2)
                guard low >= 0xDC00 && low <= 0xDFFF else { throw .invalidString(offset: pos) }
                pos += 6
            } else if unit >= 0xDC00 && unit <= 0xDFFF {
                throw .invalidString(offset: pos - 6)
            }
        default:
            throw .invalidString(offset: pos)
        }
    }

    func hex4(at offset: Int) throws(JSONError) -> UInt32 {
        guard offset + 4 <= bytes.count else { throw .truncated }
        var v: UInt32 = 0
        for i in 0..<4 {
            guard let d = JSONText.hexValue(bytes[offset + i]) else { throw .invalidString(offset: offset + i) }
            v = v << 4 | UInt32(d)
        }
        return v
    }

    /// Validates one multi-byte UTF-8 sequence (RFC 3629: no overlongs, no surrogates, <= U+10FFFF).
    mutating func utf8Sequence() throws(JSONError) {
        let b0 = bytes[pos]
        let length: Int
        var lower: UInt8 = 0x80, upper: UInt8 = 0xBF
        switch b0 {
        case 0xC2...0xDF: length = 2
        case 0xE0: length = 3; lower = 0xA0
        case 0xE1...0xEC, 0xEE...0xEF: length = 3
        case 0xED: length = 3; upper = 0x9F
        case 0xF0: length = 4; lower = 0x90
        case 0xF1...0xF3: length = 4
        case 0xF4: length = 4; upper = 0x8F
        default: throw .invalidString(offset: pos)
        }
        guard pos + length <= bytes.count else { throw .truncated }
        let b1 = bytes[pos + 1]
        guard b1 >= lower && b1 <= upper else { throw .invalidString(offset: pos + 1) }
        for i in 2..<max(2, length) where bytes[pos + i] & 0xC0 != 0x80 {
            throw .invalidString(offset: pos + i)
        }
        pos += length
    }

    mutating func number(into nodes: inout [JSONNode]) throws(JSONError) {
        let start = pos
        let n = bytes.count
        var fractional = false
        if bytes[pos] == UInt8(ascii: "-") { pos += 1 }
        guard pos < n else { throw .truncated }
        if bytes[pos] == UInt8(ascii: "0") {
            pos += 1
        } else if bytes[pos] >= UInt8(ascii: "1") && bytes[pos] <= UInt8(ascii: "9") {
            while pos < n && isDigit(bytes[pos]) { pos += 1 }
        } else {
            throw .invalidNumber(offset: pos)
        }
        if pos < n && bytes[pos] == UInt8(ascii: ".") {
            fractional = true
            pos += 1
            guard pos < n, isDigit(bytes[pos]) else { throw .invalidNumber(offset: pos) }
            while pos < n && isDigit(bytes[pos]) { pos += 1 }
        }
        if pos < n && (bytes[pos] == UInt8(ascii: "e") || bytes[pos] == UInt8(ascii: "E")) {
            fractional = true
            pos += 1
            if pos < n && (bytes[pos] == UInt8(ascii: "+") || bytes[pos] == UInt8(ascii: "-")) { pos += 1 }
            guard pos < n, isDigit(bytes[pos]) else { throw .invalidNumber(offset: pos) }
            while pos < n && isDigit(bytes[pos]) { pos += 1 }
        }
        let index = try append(JSONNode(kind: .number, flag: fractional, start: Int32(start), end: Int32(pos), next: 0, count: 0), to: &nodes)
        nodes[index].next = Int32(nodes.count)
    }

    @inline(__always)
    func isDigit(_ b: UInt8) -> Bool { b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") }
}
