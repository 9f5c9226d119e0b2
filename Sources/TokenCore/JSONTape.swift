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

/// A strict RFC 8259 parser that records each value as a `JSONNode` in a flat buffer (a "tape").
///
/// A tape is meant to be kept and reused (`parse` overwrites it and keeps its memory), so parsing
/// a token's header and claims allocates nothing once warm. Object members are stored as key node,
/// value node, key node, ... after their object node. Duplicate keys (compared after unescaping)
/// are an error, strings must be valid UTF-8 with valid escapes (no lone surrogates), and depth,
/// size and value count are bounded. Not thread-safe: one tape per thread.
public final class JSONTape {
    private var storage: UnsafeMutablePointer<JSONNode>
    private var capacity: Int
    /// Number of nodes of the last successful parse.
    public private(set) var count = 0

    public init(capacity: Int = 64) {
        self.capacity = max(capacity, 8)
        storage = .allocate(capacity: self.capacity)
    }

    deinit { storage.deallocate() }

    @inline(__always)
    public subscript(index: Int) -> JSONNode { storage[index] }

    /// The nodes as an array (set-up code and tests).
    public var nodes: [JSONNode] { Array(UnsafeBufferPointer(start: storage, count: count)) }

    /// Parses one JSON text (surrounding whitespace allowed); the root is node 0.
    public func parse(_ bytes: UnsafeRawBufferPointer, limits: JSONLimits) throws(JSONError) {
        count = 0
        guard bytes.count <= limits.maxBytes else { throw .tooLarge }
        guard let base = bytes.baseAddress else { throw .truncated }
        var parser = Parser(base: base.assumingMemoryBound(to: UInt8.self), count: bytes.count, limits: limits,
                            nodes: storage, capacity: capacity)
        defer {
            storage = parser.nodes
            capacity = parser.capacity
        }
        parser.skipSpace()
        try parser.value(depth: 0)
        parser.skipSpace()
        if parser.pos != bytes.count { throw .trailingData(offset: parser.pos) }
        count = parser.used
    }

    public func parse(_ bytes: [UInt8], limits: JSONLimits) throws(JSONError) {
        var failure: JSONError?
        bytes.withUnsafeBytes { raw in
            do throws(JSONError) { try parse(raw, limits: limits) } catch { failure = error }
        }
        if let failure { throw failure }
    }
}

/// Byte classes inside a JSON string: 0 plain ASCII, 1 quote, 2 backslash, 3 control, 4 non-ASCII.
nonisolated(unsafe) private let stringClasses: UnsafePointer<UInt8> = {
    let t = UnsafeMutablePointer<UInt8>.allocate(capacity: 256)
    for i in 0..<256 {
        t[i] = i < 0x20 ? 3 : i == 0x22 ? 1 : i == 0x5C ? 2 : i >= 0x80 ? 4 : 0
    }
    return UnsafePointer(t)
}()

private struct Parser {
    let bytes: UnsafePointer<UInt8>
    let n: Int
    let limits: JSONLimits
    let classes: UnsafePointer<UInt8>
    var pos = 0
    var nodes: UnsafeMutablePointer<JSONNode>
    var capacity: Int
    var used = 0

    init(base: UnsafePointer<UInt8>, count: Int, limits: JSONLimits, nodes: UnsafeMutablePointer<JSONNode>, capacity: Int) {
        self.bytes = base
        self.n = count
        self.limits = limits
        self.classes = stringClasses
        self.nodes = nodes
        self.capacity = capacity
    }

    /// The raw bytes, for the helpers that take a buffer.
    var buffer: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: bytes, count: n) }

    mutating func skipSpace() {
        while pos < n {
            let b = bytes[pos]
            guard b == 0x20 || b == 0x0A || b == 0x0D || b == 0x09 else { return }
            pos += 1
        }
    }

    @inline(__always)
    func peek() throws(JSONError) -> UInt8 {
        guard pos < n else { throw .truncated }
        return bytes[pos]
    }

    /// Appends a node and returns its index.
    @inline(__always)
    mutating func append(_ kind: JSONNode.Kind, flag: Bool, start: Int, end: Int) throws(JSONError) -> Int {
        if used == capacity {
            guard capacity < limits.maxValues else { throw .tooManyValues }
            let bigger = UnsafeMutablePointer<JSONNode>.allocate(capacity: min(capacity * 2, limits.maxValues))
            bigger.moveInitialize(from: nodes, count: used)
            nodes.deallocate()
            nodes = bigger
            capacity = min(capacity * 2, limits.maxValues)
        }
        guard used < limits.maxValues else { throw .tooManyValues }
        nodes[used] = JSONNode(kind: kind, flag: flag, start: Int32(start), end: Int32(end), next: Int32(used + 1), count: 0)
        used += 1
        return used - 1
    }

    mutating func value(depth: Int) throws(JSONError) {
        let b = try peek()
        switch b {
        case UInt8(ascii: "{"):
            try container(object: true, depth: depth)
        case UInt8(ascii: "["):
            try container(object: false, depth: depth)
        case UInt8(ascii: "\""):
            try string()
        case UInt8(ascii: "t"):
            try literal("true", kind: .bool)
        case UInt8(ascii: "f"):
            try literal("false", kind: .bool)
        case UInt8(ascii: "n"):
            try literal("null", kind: .null)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            try number()
        default:
            throw .unexpectedByte(offset: pos)
        }
    }

    mutating func literal(_ word: StaticString, kind: JSONNode.Kind) throws(JSONError) {
        let len = word.utf8CodeUnitCount
        guard pos + len <= n else { throw .truncated }
        for i in 0..<len where bytes[pos + i] != word.utf8Start[i] { throw .unexpectedByte(offset: pos + i) }
        let start = pos
        pos += len
        _ = try append(kind, flag: false, start: start, end: pos)
    }

    mutating func container(object: Bool, depth: Int) throws(JSONError) {
        guard depth < limits.maxDepth else { throw .tooDeep }
        let index = try append(object ? .object : .array, flag: false, start: pos, end: 0)
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
                    try string()
                    skipSpace()
                    guard try peek() == UInt8(ascii: ":") else { throw .unexpectedByte(offset: pos) }
                    pos += 1
                    skipSpace()
                }
                try value(depth: depth + 1)
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
        nodes[index].next = Int32(used)
        if object && count > 1 { try rejectDuplicateKeys(object: index) }
    }

    /// Pairwise comparison of the object's keys after unescaping. Objects here are small (token
    /// claims, JWKs); the size bound on the input bounds the quadratic cost. When every key is
    /// short and unescaped (JWT claim names are), each is one word and a pair is one compare.
    func rejectDuplicateKeys(object: Int) throws(JSONError) {
        let raw = buffer
        if nodes[object].count <= 16 {
            var words = InlineArray<16, UInt64>(repeating: 0)
            var k = 0, i = object + 1
            let end = Int(nodes[object].next)
            var allShort = true
            while i < end {
                guard let w = JSONText.shortWord(nodes[i], in: raw) else { allShort = false; break }
                words[k] = w
                k += 1
                i = Int(nodes[i + 1].next)
            }
            if allShort {
                i = object + 1
                // Lengths are compared too: "ab" and "ab\\u0000" pack into the same word.
                var lengths = InlineArray<16, Int32>(repeating: 0)
                var j = 0
                while i < end { lengths[j] = nodes[i].end - nodes[i].start; j += 1; i = Int(nodes[i + 1].next) }
                for a in 0..<k {
                    for b in (a + 1)..<k where words[a] == words[b] && lengths[a] == lengths[b] {
                        var node = object + 1
                        for _ in 0..<b { node = Int(nodes[node + 1].next) }
                        throw .duplicateKey(offset: Int(nodes[node].start))
                    }
                }
                return
            }
        }
        var i = object + 1
        let end = Int(nodes[object].next)
        while i < end {
            var j = Int(nodes[i + 1].next)
            while j < end {
                if JSONText.stringsEqual(nodes[i], nodes[j], in: raw) { throw .duplicateKey(offset: Int(nodes[j].start)) }
                j = Int(nodes[j + 1].next)
            }
            i = Int(nodes[i + 1].next)
        }
    }

    mutating func string() throws(JSONError) {
        pos += 1  // opening quote
        let start = pos
        var escaped = false
        while true {
            // Plain ASCII runs are the common case: one table load per byte.
            while pos < n && classes[Int(bytes[pos])] == 0 { pos += 1 }
            guard pos < n else { throw .truncated }
            switch classes[Int(bytes[pos])] {
            case 1:
                _ = try append(.string, flag: escaped, start: start, end: pos)
                pos += 1  // closing quote
                return
            case 2:
                escaped = true
                try escape()
            case 3:
                throw .invalidString(offset: pos)
            default:
                try utf8Sequence()
            }
        }
    }

    mutating func escape() throws(JSONError) {
        guard pos + 1 < n else { throw .truncated }
        switch bytes[pos + 1] {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"),
             UInt8(ascii: "f"), UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
            pos += 2
        case UInt8(ascii: "u"):
            let unit = try hex4(at: pos + 2)
            pos += 6
            if unit >= 0xD800 && unit <= 0xDBFF {
                // A high surrogate must be followed by an escaped low surrogate.
                guard pos + 1 < n, bytes[pos] == UInt8(ascii: "\\"), bytes[pos + 1] == UInt8(ascii: "u") else {
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
        guard offset + 4 <= n else { throw .truncated }
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
        guard pos + length <= n else { throw .truncated }
        let b1 = bytes[pos + 1]
        guard b1 >= lower && b1 <= upper else { throw .invalidString(offset: pos + 1) }
        for i in 2..<max(2, length) where bytes[pos + i] & 0xC0 != 0x80 {
            throw .invalidString(offset: pos + i)
        }
        pos += length
    }

    mutating func number() throws(JSONError) {
        let start = pos
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
        _ = try append(.number, flag: fractional, start: start, end: pos)
    }

    @inline(__always)
    func isDigit(_ b: UInt8) -> Bool { b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") }
}
