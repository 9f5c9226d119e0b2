/// A recursive-descent reader over the document's Unicode scalars, one line construct at a time.
struct TOMLParser {
    let text: [Unicode.Scalar]
    var i = 0
    var line = 1
    var lineStart = 0
    var arrayDepth = 0
    let root = TOMLTableNode(.root, path: [], line: 1, column: 1)
    var current: TOMLTableNode

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

    mutating func key() throws(TOMLError) -> [TOMLKeyPart] {
        var parts: [TOMLKeyPart] = []
        while true {
            skipBlanks()
            let (l, c) = (line, column)
            guard parts.count < TOMLReader.maxKeyParts else {
                throw fail("a key of more than \(TOMLReader.maxKeyParts) parts is not supported", line: l, column: c)
            }
            parts.append(TOMLKeyPart(name: try simpleKey(), line: l, column: c))
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
        // A value under a secret's name is never repeated in an error (errors reach the log).
        let name = parts.last?.name ?? ""
        valueIsSecret = name == "password" || name == "secret"
        defer { valueIsSecret = false }
        let v = try value()
        try insert(parts, v)
    }

    /// Set while the value of a `password` or `secret` key is read.
    private var valueIsSecret = false

    /// An unquoted word in an error: as written, or masked when it may be a secret.
    private func shown(_ word: String) -> (word: String, quoted: String) {
        valueIsSecret ? ("an unquoted secret", "\"...\"") : (word, "\"\(word)\"")
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
            throw fail("expected a value, found \(shown(word).word) (strings need quotes: \(shown(word).quoted))", line: l, column: c)
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
            throw fail("expected a value, found \(shown(word).word) (strings need quotes: \(shown(word).quoted))", line: l, column: c)
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
}
