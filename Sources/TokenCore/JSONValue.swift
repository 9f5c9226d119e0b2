/// A JSON document as a tree, for set-up code: JWK Sets, the command line, request bodies that
/// are read once. Parsed by the same strict `JSONTape`; the request path reads tapes directly.
public indirect enum JSONValue: Equatable, Sendable {
    case object([(key: String, value: JSONValue)])
    case array([JSONValue])
    case string(String)
    /// The number's literal text, kept exact (an integer stays an integer).
    case number(String)
    case bool(Bool)
    case null

    public static func == (a: JSONValue, b: JSONValue) -> Bool {
        switch (a, b) {
        case let (.object(x), .object(y)):
            return x.count == y.count && zip(x, y).allSatisfy { $0.key == $1.key && $0.value == $1.value }
        case let (.array(x), .array(y)): return x == y
        case let (.string(x), .string(y)): return x == y
        case let (.number(x), .number(y)): return x == y
        case let (.bool(x), .bool(y)): return x == y
        case (.null, .null): return true
        default: return false
        }
    }

    /// Parses a JSON text strictly (see `JSONTape`).
    public static func parse(_ bytes: [UInt8], limits: JSONLimits = .document) throws(JSONError) -> JSONValue {
        let tape = JSONTape()
        try tape.parse(bytes, limits: limits)
        return bytes.withUnsafeBytes { raw in build(0, tape, raw) }
    }

    public static func parse(_ text: String, limits: JSONLimits = .document) throws(JSONError) -> JSONValue {
        try parse(Array(text.utf8), limits: limits)
    }

    /// Builds the tree of the value at `index` of a parsed tape.
    public static func build(_ index: Int, _ nodes: JSONTape, _ bytes: UnsafeRawBufferPointer) -> JSONValue {
        let node = nodes[index]
        switch node.kind {
        case .object:
            var members: [(key: String, value: JSONValue)] = []
            var i = index + 1
            while i < Int(node.next) {
                members.append((JSONText.string(nodes[i], in: bytes), build(i + 1, nodes, bytes)))
                i = Int(nodes[i + 1].next)
            }
            return .object(members)
        case .array:
            var items: [JSONValue] = []
            var i = index + 1
            while i < Int(node.next) {
                items.append(build(i, nodes, bytes))
                i = Int(nodes[i].next)
            }
            return .array(items)
        case .string:
            return .string(JSONText.string(node, in: bytes))
        case .number:
            return .number(String(decoding: UnsafeRawBufferPointer(rebasing: bytes[Int(node.start)..<Int(node.end)]), as: UTF8.self))
        case .bool:
            return .bool(bytes[Int(node.start)] == UInt8(ascii: "t"))
        case .null:
            return .null
        }
    }

    public subscript(key: String) -> JSONValue? {
        guard case let .object(members) = self else { return nil }
        return members.first { $0.key == key }?.value
    }

    public var stringValue: String? {
        if case let .string(s) = self { return s }
        return nil
    }

    /// The exact integer value of a number without fraction or exponent.
    public var int64Value: Int64? {
        guard case let .number(text) = self, !text.contains(where: { $0 == "." || $0 == "e" || $0 == "E" }) else { return nil }
        return Int64(text)
    }

    public var boolValue: Bool? {
        if case let .bool(b) = self { return b }
        return nil
    }

    public var arrayValue: [JSONValue]? {
        if case let .array(a) = self { return a }
        return nil
    }

    /// Compact serialisation, members in their stored order.
    public func serialized() -> [UInt8] {
        var w = JSONWriter()
        w.value(self)
        return w.bytes
    }

    /// Indented serialisation for people (the command line).
    public func pretty(indent: Int = 0) -> String {
        let pad = String(repeating: "  ", count: indent + 1), end = String(repeating: "  ", count: indent)
        switch self {
        case let .object(members):
            if members.isEmpty { return "{}" }
            let body = members.map { pad + JSONWriter.quoted($0.key) + ": " + $0.value.pretty(indent: indent + 1) }
            return "{\n" + body.joined(separator: ",\n") + "\n" + end + "}"
        case let .array(items):
            if items.isEmpty { return "[]" }
            return "[\n" + items.map { pad + $0.pretty(indent: indent + 1) }.joined(separator: ",\n") + "\n" + end + "]"
        default:
            return String(decoding: serialized(), as: UTF8.self)
        }
    }
}

/// Appends compact JSON to a byte array, escaping strings as RFC 8259 requires.
public struct JSONWriter: Sendable {
    public var bytes: [UInt8]

    public init(capacity: Int = 256) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    public mutating func raw(_ s: StaticString) {
        bytes.append(contentsOf: UnsafeBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
    }

    public mutating func string<C: Collection>(_ utf8: C) where C.Element == UInt8 {
        bytes.append(UInt8(ascii: "\""))
        for b in utf8 {
            switch b {
            case UInt8(ascii: "\""): raw("\\\"")
            case UInt8(ascii: "\\"): raw("\\\\")
            case 0x0A: raw("\\n")
            case 0x0D: raw("\\r")
            case 0x09: raw("\\t")
            case 0..<0x20, 0x7F:
                raw("\\u00")
                let hex: [UInt8] = Array("0123456789abcdef".utf8)
                bytes.append(hex[Int(b >> 4)])
                bytes.append(hex[Int(b & 15)])
            default: bytes.append(b)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    public mutating func string(_ s: String) { string(s.utf8) }

    public mutating func int(_ v: Int64) {
        bytes.append(contentsOf: String(v).utf8)
    }

    /// `"key":` in an object.
    public mutating func key(_ s: String) {
        string(s.utf8)
        bytes.append(UInt8(ascii: ":"))
    }

    public mutating func value(_ v: JSONValue) {
        switch v {
        case let .object(members):
            bytes.append(UInt8(ascii: "{"))
            for (i, m) in members.enumerated() {
                if i > 0 { bytes.append(UInt8(ascii: ",")) }
                key(m.key)
                value(m.value)
            }
            bytes.append(UInt8(ascii: "}"))
        case let .array(items):
            bytes.append(UInt8(ascii: "["))
            for (i, item) in items.enumerated() {
                if i > 0 { bytes.append(UInt8(ascii: ",")) }
                value(item)
            }
            bytes.append(UInt8(ascii: "]"))
        case let .string(s): string(s)
        case let .number(n): bytes.append(contentsOf: n.utf8)
        case let .bool(b): if b { raw("true") } else { raw("false") }
        case .null: raw("null")
        }
    }

    public static func quoted(_ s: String) -> String {
        var w = JSONWriter()
        w.string(s)
        return String(decoding: w.bytes, as: UTF8.self)
    }
}
