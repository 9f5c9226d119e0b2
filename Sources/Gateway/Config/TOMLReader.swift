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
        var parser = Parser(text)
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

    fileprivate static func isDigit(_ u: Unicode.Scalar) -> Bool { u.value >= 48 && u.value <= 57 }

    fileprivate static func isBareKeyScalar(_ u: Unicode.Scalar) -> Bool {
        switch u {
        case "A"..."Z", "a"..."z", "0"..."9", "_", "-": return true
        default: return false
        }
    }

    fileprivate static func isControl(_ u: Unicode.Scalar) -> Bool { u.value < 0x20 || u.value == 0x7F }
}

// MARK: - Tree under construction

/// A table while the document is read: it remembers how it came to exist, because TOML lets a
/// table implied by `[a.b]` be defined later as `[a]`, but not a table defined twice, and not a
/// table opened with a header extended by dotted keys (or the other way round).
private final class TableNode {
    enum Origin { case root, implicit, header, dotted, arrayElement }
    var origin: Origin
    let path: [String]
    var line: Int
    var column: Int
    var keys: [String] = []
    var children: [String: Child] = [:]

    init(_ origin: Origin, path: [String], line: Int, column: Int) {
        self.origin = origin
        self.path = path
        self.line = line
        self.column = column
    }

    func add(_ key: String, _ child: Child) {
        keys.append(key)
        children[key] = child
    }

    var value: TOMLValue {
        TOMLValue(.table(keys.map { ($0, children[$0]!.value) }), line: line, column: column)
    }
}

/// The array behind `[[name]]` headers.
private final class TableArrayNode {
    let line: Int
    let column: Int
    var elements: [TableNode] = []
    init(line: Int, column: Int) { self.line = line; self.column = column }
}

private enum Child {
    case value(TOMLValue)
    case table(TableNode)
    case tables(TableArrayNode)

    var line: Int {
        switch self {
        case .value(let v): return v.line
        case .table(let t): return t.line
        case .tables(let a): return a.line
        }
    }

    var value: TOMLValue {
        switch self {
        case .value(let v): return v
        case .table(let t): return t.value
        case .tables(let a): return TOMLValue(.array(a.elements.map(\.value)), line: a.line, column: a.column)
        }
    }
}

/// One segment of a key with where it was written.
private struct KeyPart {
    let name: String
    let line: Int
    let column: Int
}

// MARK: - Parser

/// A recursive-descent reader over the document's Unicode scalars, one line construct at a time.
private struct Parser {
    let text: [Unicode.Scalar]
    var i = 0
    var line = 1
    var lineStart = 0
    var arrayDepth = 0
    let root = TableNode(.root, path: [], line: 1, column: 1)
    var current: TableNode

    init(_ source: String) {
        text = Array(source.unicodeScalars)
        current = root
        if text.first == "\u{FEFF}" { i = 1; lineStart = 1 }
    }

    var column: Int { i - lineStart + 1 }
    var peek: Unicode.Scalar? { i < text.count ? text[i] : nil }
    func peek(_ offset: Int) -> Unicode.Scalar? { i + offset < text.count ? text[i + offset] : nil }

    func fail(_ message: String, line: Int? = nil, column: Int? = nil) -> TOMLError {
        TOMLError(message: message, line: line ?? self.line, column: column ?? self.column)
    }

    /// How a found character is shown: `'x'`, or a name for what cannot be seen.
    static func describe(_ u: Unicode.Scalar?) -> String {
        guard let u else { return "the end of the file" }
        switch u {
        case "\n", "\r": return "the end of the line"
        case " ": return "a space"
        case "\t": return "a tab"
        default:
            if TOMLReader.isControl(u) { return "control character U+\(String(u.value, radix: 16, uppercase: true))" }
            return "'\(u)'"
        }
    }

    mutating func document() throws(TOMLError) -> TOMLValue {
        while true {
            skipBlanks()
            guard let c = peek else { break }
            if c == "[" {
                try header()
            } else if c != "#" && c != "\n" && c != "\r" {
                try keyValue()
            }
            try endOfLine()
        }
        return root.value
    }

    // MARK: Whitespace, comments, line ends

    mutating func skipBlanks() {
        while let c = peek, c == " " || c == "\t" { i += 1 }
    }

    mutating func skipComment() throws(TOMLError) {
        guard peek == "#" else { return }
        while let c = peek, c != "\n", c != "\r" {
            if TOMLReader.isControl(c) && c != "\t" { throw fail("\(Self.describe(c)) in a comment") }
            i += 1
        }
    }

    /// Consumes a line break if one is next; a lone carriage return is an error.
    mutating func newline() throws(TOMLError) -> Bool {
        if peek == "\n" {
            i += 1
        } else if peek == "\r" {
            guard peek(1) == "\n" else { throw fail("carriage return without a line feed") }
            i += 2
        } else {
            return false
        }
        line += 1
        lineStart = i
        return true
    }

    /// After a header or key/value, only blanks and a comment may follow on the line.
    mutating func endOfLine() throws(TOMLError) {
        skipBlanks()
        try skipComment()
        if peek == nil { return }
        if try newline() { return }
        throw fail("expected the end of the line, found \(Self.describe(peek))")
    }

    /// Blanks, comments and line breaks between array elements.
    mutating func skipArraySpace() throws(TOMLError) {
        while true {
            skipBlanks()
            try skipComment()
            if !(try newline()) { return }
        }
    }

    // MARK: Keys

    mutating func key() throws(TOMLError) -> [KeyPart] {
        var parts: [KeyPart] = []
        while true {
            skipBlanks()
            let (l, c) = (line, column)
            guard parts.count < TOMLReader.maxKeyParts else {
                throw fail("a key of more than \(TOMLReader.maxKeyParts) parts is not supported", line: l, column: c)
            }
            parts.append(KeyPart(name: try simpleKey(), line: l, column: c))
            skipBlanks()
            guard peek == "." else { return parts }
            i += 1
        }
    }

    mutating func simpleKey() throws(TOMLError) -> String {
        guard let c = peek else { throw fail("expected a key, found the end of the file") }
        if c == "\"" || c == "'" {
            if peek(1) == c && peek(2) == c { throw fail("multi-line strings are not supported") }
            return c == "\"" ? try basicString() : try literalString()
        }
        guard TOMLReader.isBareKeyScalar(c) else { throw fail("expected a key, found \(Self.describe(c))") }
        let start = i
        while let c = peek, TOMLReader.isBareKeyScalar(c) { i += 1 }
        return String(String.UnicodeScalarView(text[start..<i]))
    }

    // MARK: Lines

    mutating func header() throws(TOMLError) {
        let (l, c) = (line, column)
        i += 1
        let isArray = peek == "["
        if isArray { i += 1 }
        let parts = try key()
        let close = isArray ? "]]" : "]"
        guard peek == "]", !isArray || peek(1) == "]" else {
            throw fail("expected '\(close)' to close the \(isArray ? "array-of-tables" : "table") header, found \(Self.describe(peek))")
        }
        i += close.unicodeScalars.count
        if isArray {
            try appendTable(parts, line: l, column: c)
        } else {
            try defineTable(parts, line: l, column: c)
        }
    }

    mutating func keyValue() throws(TOMLError) {
        let parts = try key()
        guard peek == "=" else {
            throw fail("expected '=' after the key \(TOMLReader.display(parts.map(\.name))), found \(Self.describe(peek))")
        }
        i += 1
        skipBlanks()
        let v = try value()
        try insert(parts, v)
    }

    // MARK: Values

    mutating func value() throws(TOMLError) -> TOMLValue {
        let (l, c) = (line, column)
        guard let ch = peek, ch != "\n", ch != "\r", ch != "#" else { throw fail("expected a value") }
        switch ch {
        case "\"", "'":
            if peek(1) == ch && peek(2) == ch { throw fail("multi-line strings are not supported") }
            let s = ch == "\"" ? try basicString() : try literalString()
            return TOMLValue(.string(s), line: l, column: c)
        case "[":
            return try array()
        case "{":
            throw fail("inline tables are not supported; write a [table] section instead")
        default:
            let start = i
            while let u = peek, TOMLReader.isBareKeyScalar(u) || u == "+" || u == "." || u == ":" { i += 1 }
            let word = String(String.UnicodeScalarView(text[start..<i]))
            if word.isEmpty { throw fail("expected a value, found \(Self.describe(ch))") }
            if word == "true" || word == "false" { return TOMLValue(.bool(word == "true"), line: l, column: c) }
            if let first = word.unicodeScalars.first, TOMLReader.isDigit(first) || first == "+" || first == "-" {
                return TOMLValue(.integer(try number(word, line: l, column: c)), line: l, column: c)
            }
            if word == "inf" || word == "nan" { throw fail("floats are not supported", line: l, column: c) }
            throw fail("expected a value, found \(word) (strings need quotes: \"\(word)\")", line: l, column: c)
        }
    }

    /// A number-like token: a decimal integer, or an error naming the unsupported kind.
    func number(_ word: String, line l: Int, column c: Int) throws(TOMLError) -> Int64 {
        var body = Substring(word)
        if body.first == "+" || body.first == "-" { body = body.dropFirst() }
        let digitsFirst = body.prefix(while: { $0.isASCII && $0.isNumber })
        if body.contains(":") || (digitsFirst.count == 4 && body.dropFirst(4).first == "-") {
            throw fail("dates and times are not supported", line: l, column: c)
        }
        if body.hasPrefix("0x") || body.hasPrefix("0o") || body.hasPrefix("0b") {
            throw fail("hexadecimal, octal and binary integers are not supported; write a decimal integer", line: l, column: c)
        }
        let floatCharacters = Set("0123456789_.eE+-")
        if body == "inf" || body == "nan" || (body.allSatisfy(floatCharacters.contains) && body.contains { ".eE".contains($0) }) {
            throw fail("floats are not supported", line: l, column: c)
        }
        if body.contains(where: \.isLetter) {
            throw fail("expected a value, found \(word) (strings need quotes: \"\(word)\")", line: l, column: c)
        }
        switch TOMLReader.integer(word) {
        case .success(let n): return n
        case .failure(let e): throw fail(e.message, line: l, column: c)
        }
    }

    mutating func array() throws(TOMLError) -> TOMLValue {
        let (l, c) = (line, column)
        guard arrayDepth < TOMLReader.maxArrayDepth else {
            throw fail("arrays nested more than \(TOMLReader.maxArrayDepth) deep are not supported")
        }
        arrayDepth += 1
        defer { arrayDepth -= 1 }
        i += 1
        var items: [TOMLValue] = []
        while true {
            try skipArraySpace()
            guard let ch = peek else { throw fail("unterminated array: expected ']'", line: l, column: c) }
            if ch == "]" { i += 1; break }
            items.append(try value())
            try skipArraySpace()
            guard let next = peek else { throw fail("unterminated array: expected ']'", line: l, column: c) }
            if next == "," { i += 1; continue }
            if next == "]" { i += 1; break }
            throw fail("expected ',' or ']' in the array, found \(Self.describe(next))")
        }
        return TOMLValue(.array(items), line: l, column: c)
    }

    /// `"..."` on one line, escapes decoded.
    mutating func basicString() throws(TOMLError) -> String {
        let (l, c) = (line, column)
        i += 1
        var out = String.UnicodeScalarView()
        while true {
            guard let ch = peek, ch != "\n", ch != "\r" else {
                throw fail("unterminated string: a string must end on the line it starts (multi-line strings are not supported)", line: l, column: c)
            }
            i += 1
            if ch == "\"" { break }
            if ch == "\\" {
                let escapeColumn = column - 1
                guard let e = peek, e != "\n", e != "\r" else {
                    throw fail("unterminated string: a string must end on the line it starts (multi-line strings are not supported)", line: l, column: c)
                }
                i += 1
                switch e {
                case "\"": out.append("\"")
                case "\\": out.append("\\")
                case "n": out.append("\n")
                case "t": out.append("\t")
                case "r": out.append("\r")
                case "b": out.append("\u{08}")
                case "f": out.append("\u{0C}")
                case "u": out.append(try unicodeEscape(digits: 4, column: escapeColumn))
                case "U": out.append(try unicodeEscape(digits: 8, column: escapeColumn))
                default:
                    throw fail("invalid escape \\\(e); use \\\" \\\\ \\n \\t \\r \\b \\f \\uXXXX or \\UXXXXXXXX", column: escapeColumn)
                }
            } else if TOMLReader.isControl(ch) && ch != "\t" {
                throw fail("\(Self.describe(ch)) must be escaped in a string", column: column - 1)
            } else {
                out.append(ch)
            }
        }
        return String(out)
    }

    mutating func unicodeEscape(digits: Int, column escapeColumn: Int) throws(TOMLError) -> Unicode.Scalar {
        let letter = digits == 4 ? "u" : "U"
        var v: UInt32 = 0
        for _ in 0..<digits {
            guard let h = peek, h.isASCII, let d = Int(String(h), radix: 16) else {
                throw fail("\\\(letter) needs exactly \(digits) hexadecimal digits", column: escapeColumn)
            }
            v = v * 16 + UInt32(d)
            i += 1
        }
        guard let scalar = Unicode.Scalar(v) else {
            throw fail("\\\(letter)\(String(v, radix: 16, uppercase: true)) is not a Unicode scalar value", column: escapeColumn)
        }
        return scalar
    }

    /// `'...'` on one line, taken as written.
    mutating func literalString() throws(TOMLError) -> String {
        let (l, c) = (line, column)
        i += 1
        let start = i
        while true {
            guard let ch = peek, ch != "\n", ch != "\r" else {
                throw fail("unterminated string: a string must end on the line it starts (multi-line strings are not supported)", line: l, column: c)
            }
            if ch == "'" { break }
            if TOMLReader.isControl(ch) && ch != "\t" { throw fail("\(Self.describe(ch)) in a literal string") }
            i += 1
        }
        defer { i += 1 }
        return String(String.UnicodeScalarView(text[start..<i]))
    }

    // MARK: Building the tree

    /// Where a table header's leading segments lead: created implicitly if missing, the last
    /// element of an array of tables, or an error if a plain value is in the way.
    func descend(_ table: TableNode, _ part: KeyPart) throws(TOMLError) -> TableNode {
        let path = table.path + [part.name]
        switch table.children[part.name] {
        case nil:
            let t = TableNode(.implicit, path: path, line: part.line, column: part.column)
            table.add(part.name, .table(t))
            return t
        case .table(let t):
            return t
        case .tables(let a):
            return a.elements[a.elements.count - 1]
        case .value(let v):
            throw fail("\(TOMLReader.display(path)) is already \(v.typeDescription) (line \(v.line)); it cannot also be a table",
                       line: part.line, column: part.column)
        }
    }

    mutating func defineTable(_ parts: [KeyPart], line l: Int, column c: Int) throws(TOMLError) {
        var table = root
        for part in parts.dropLast() { table = try descend(table, part) }
        let last = parts[parts.count - 1]
        let path = table.path + [last.name]
        let name = TOMLReader.display(path)
        switch table.children[last.name] {
        case nil:
            let t = TableNode(.header, path: path, line: l, column: c)
            table.add(last.name, .table(t))
            current = t
        case .table(let t) where t.origin == .implicit:
            t.origin = .header
            t.line = l
            t.column = c
            current = t
        case .table(let t):
            let how = t.origin == .dotted ? " by dotted keys" : ""
            throw fail("table [\(name)] is already defined\(how) at line \(t.line)", line: l, column: c)
        case .tables(let a):
            throw fail("[\(name)] is already an array of tables ([[\(name)]] at line \(a.line))", line: l, column: c)
        case .value(let v):
            throw fail("\(name) is already \(v.typeDescription) (line \(v.line)); it cannot also be a table", line: l, column: c)
        }
    }

    mutating func appendTable(_ parts: [KeyPart], line l: Int, column c: Int) throws(TOMLError) {
        var table = root
        for part in parts.dropLast() { table = try descend(table, part) }
        let last = parts[parts.count - 1]
        let path = table.path + [last.name]
        let name = TOMLReader.display(path)
        let element = TableNode(.arrayElement, path: path, line: l, column: c)
        switch table.children[last.name] {
        case nil:
            let a = TableArrayNode(line: l, column: c)
            a.elements.append(element)
            table.add(last.name, .tables(a))
        case .tables(let a):
            a.elements.append(element)
        case .table(let t):
            throw fail("[[\(name)]] conflicts with the table [\(name)] defined at line \(t.line)", line: l, column: c)
        case .value(let v):
            throw fail("\(name) is already \(v.typeDescription) (line \(v.line)); it cannot also be an array of tables", line: l, column: c)
        }
        current = element
    }

    /// `a.b.c = v` in the current table: `a` and `b` become (or must already be) tables made by
    /// dotted keys; `c` must be new.
    mutating func insert(_ parts: [KeyPart], _ v: TOMLValue) throws(TOMLError) {
        var table = current
        for part in parts.dropLast() {
            let path = table.path + [part.name]
            let name = TOMLReader.display(path)
            switch table.children[part.name] {
            case nil:
                let t = TableNode(.dotted, path: path, line: part.line, column: part.column)
                table.add(part.name, .table(t))
                table = t
            case .table(let t) where t.origin == .dotted:
                table = t
            case .table(let t):
                throw fail("table \(name) was opened by a [header] at line \(t.line); add keys to it in its [\(name)] section, not with dotted keys",
                           line: part.line, column: part.column)
            case .tables(let a):
                throw fail("\(name) is an array of tables (line \(a.line)); dotted keys cannot add to it", line: part.line, column: part.column)
            case .value(let existing):
                throw fail("\(name) is already \(existing.typeDescription) (line \(existing.line)); it cannot also be a table",
                           line: part.line, column: part.column)
            }
        }
        let last = parts[parts.count - 1]
        if let existing = table.children[last.name] {
            throw fail("duplicate key \(TOMLReader.display(table.path + [last.name])) (first defined at line \(existing.line))",
                       line: last.line, column: last.column)
        }
        table.add(last.name, .value(v))
    }
}
