/// A value read from gateway.conf, with the 1-based line and column where it starts so that
/// configuration errors can point at it. Values that did not come from a file (environment
/// overrides) carry line 0.
struct TOMLValue: Sendable {
    enum Kind: Sendable {
        /// Keys in file order; a `[[name]]` array of tables is an `.array` of `.table`s.
        case table([(key: String, value: TOMLValue)])
        case array([TOMLValue])
        case string(String)
        case integer(Int64)
        case bool(Bool)
    }

    var kind: Kind
    var line: Int
    var column: Int

    init(_ kind: Kind, line: Int = 0, column: Int = 0) {
        self.kind = kind
        self.line = line
        self.column = column
    }

    /// "a string", "an integer", ...: how error messages name what was found.
    var typeDescription: String {
        switch kind {
        case .table: return "a table"
        case .array: return "an array"
        case .string: return "a string"
        case .integer: return "an integer"
        case .bool: return "a boolean"
        }
    }

    /// The value of `key` when this is a table that has it.
    subscript(key: String) -> TOMLValue? {
        guard case .table(let entries) = kind else { return nil }
        return entries.first { $0.key == key }?.value
    }

    var stringValue: String? { if case .string(let s) = kind { return s }; return nil }
    var integerValue: Int64? { if case .integer(let n) = kind { return n }; return nil }
    var boolValue: Bool? { if case .bool(let b) = kind { return b }; return nil }
    var arrayValue: [TOMLValue]? { if case .array(let a) = kind { return a }; return nil }
    var tableEntries: [(key: String, value: TOMLValue)]? { if case .table(let t) = kind { return t }; return nil }
}

/// A syntax error in gateway.conf. Line and column are 1-based; columns count Unicode scalars.
struct TOMLError: Error, CustomStringConvertible, Equatable {
    let message: String
    let line: Int
    let column: Int
    var fileName = ""

    /// `gateway.conf:12:9: expected a value`, the form compilers use, so editors can jump to it.
    var description: String {
        fileName.isEmpty ? "\(line):\(column): \(message)" : "\(fileName):\(line):\(column): \(message)"
    }
}

/// Reads the subset of TOML 1.0 that gateway.conf is written in.
///
/// Supported: `#` comments; bare keys (`A-Za-z0-9_-`), quoted keys (`"..."`, `'...'`) and dotted
/// keys (`a.b.c = 1`); tables `[a.b]` and arrays of tables `[[route]]`; basic strings `"..."`
/// with the escapes `\" \\ \b \f \n \t \r \uXXXX \UXXXXXXXX`; literal strings `'...'`; decimal
/// integers with an optional sign and `_` between digits; `true` / `false`; arrays of any of
/// these, over several lines if need be, with comments and a trailing comma allowed.
///
/// Refused with an error naming what is unsupported: floats, dates and times, hexadecimal /
/// octal / binary integers, inline tables, multi-line strings. As in TOML, a key may be defined
/// once, a table once, and a table created by dotted keys or a header cannot be extended the
/// other way. Nesting is bounded (`maxKeyParts`, `maxArrayDepth`): the reader and the tree
/// it builds recurse, and a document nested thousands deep must be an error, not a crash.
enum TOMLReader {
    /// Most parts of one key (`a.b.c` has three): headers and dotted keys together nest tables
    /// at most twice this deep.
    static let maxKeyParts = 32
    /// Deepest nesting of arrays in one value.
    static let maxArrayDepth = 32

    /// Parses a whole document into its root table. `fileName` only prefixes error messages.
    static func parse(_ text: String, fileName: String = "") throws(TOMLError) -> TOMLValue {
        var parser = TOMLParser(text)
        do {
            return try parser.document()
        } catch {
            var e = error
            e.fileName = fileName
            throw e
        }
    }

    /// Why a token is not a TOML decimal integer, in the user's words.
    struct IntegerSyntaxError: Error { let message: String }

    /// A decimal integer as TOML writes it (`42`, `-7`, `+1_000`; no leading zeros). Also used
    /// for environment overrides, so `GATEWAY_X=1_000` means what it means in the file.
    static func integer(_ text: String) -> Result<Int64, IntegerSyntaxError> {
        let scalars = Array(text.unicodeScalars)
        var negative = false
        var start = 0
        if let first = scalars.first, first == "+" || first == "-" {
            negative = first == "-"
            start = 1
        }
        let digits = scalars[start...]
        guard !digits.isEmpty else { return .failure(.init(message: "expected digits in \"\(text)\"")) }
        guard digits.allSatisfy({ isDigit($0) || $0 == "_" }) else {
            return .failure(.init(message: "\"\(text)\" is not a decimal integer"))
        }
        guard isDigit(digits.first!), isDigit(digits.last!), !zip(digits, digits.dropFirst()).contains(where: { $0 == "_" && $1 == "_" }) else {
            return .failure(.init(message: "underscores in an integer must be between digits (\"\(text)\")"))
        }
        let plain = digits.filter { $0 != "_" }
        if plain.count > 1 && plain.first == "0" {
            return .failure(.init(message: "leading zeros are not allowed in an integer (\"\(text)\")"))
        }
        var magnitude: UInt64 = 0
        for d in plain {
            let (m, o1) = magnitude.multipliedReportingOverflow(by: 10)
            let (s, o2) = m.addingReportingOverflow(UInt64(d.value - 48))
            guard !o1, !o2 else { return .failure(.init(message: "integer \(text) is out of range")) }
            magnitude = s
        }
        if negative {
            guard magnitude <= UInt64(Int64.max) + 1 else { return .failure(.init(message: "integer \(text) is out of range")) }
            return .success(magnitude == UInt64(Int64.max) + 1 ? Int64.min : -Int64(magnitude))
        }
        guard magnitude <= UInt64(Int64.max) else { return .failure(.init(message: "integer \(text) is out of range")) }
        return .success(Int64(magnitude))
    }

    /// `a.b."c d"`: how messages show a key path (segments that are not bare keys are quoted).
    static func display(_ path: [String]) -> String {
        path.map { segment in
            !segment.isEmpty && segment.unicodeScalars.allSatisfy(isBareKeyScalar) ? segment : quoted(segment)
        }.joined(separator: ".")
    }

    /// `s` as a TOML basic string, escaped.
    static func quoted(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            default:
                if isControl(u) {
                    let hex = String(u.value, radix: 16, uppercase: true)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        return out + "\""
    }

    static func isDigit(_ u: Unicode.Scalar) -> Bool { u.value >= 48 && u.value <= 57 }

    static func isBareKeyScalar(_ u: Unicode.Scalar) -> Bool {
        switch u {
        case "A"..."Z", "a"..."z", "0"..."9", "_", "-": return true
        default: return false
        }
    }

    static func isControl(_ u: Unicode.Scalar) -> Bool { u.value < 0x20 || u.value == 0x7F }
}
