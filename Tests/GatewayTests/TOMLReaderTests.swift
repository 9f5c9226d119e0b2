import XCTest
@testable import Gateway

/// The TOML subset of gateway.conf: what it reads, and every refusal with its line and column.
final class TOMLReaderTests: XCTestCase {
    private func parse(_ text: String, file: StaticString = #filePath, line: UInt = #line) -> TOMLValue? {
        do {
            return try TOMLReader.parse(text)
        } catch {
            XCTFail("unexpected error: \(error)", file: file, line: line)
            return nil
        }
    }

    /// The error `text` is refused with (fails the test when it is accepted).
    private func refusal(_ text: String, file: StaticString = #filePath, line: UInt = #line) -> TOMLError? {
        do {
            let tree = try TOMLReader.parse(text)
            XCTFail("accepted: \(tree)", file: file, line: line)
            return nil
        } catch {
            return error
        }
    }

    private func assertRefused(_ text: String, at position: (Int, Int), _ fragment: String,
                               file: StaticString = #filePath, line: UInt = #line) {
        guard let e = refusal(text, file: file, line: line) else { return }
        XCTAssertEqual(e.line, position.0, "line of \(e)", file: file, line: line)
        XCTAssertEqual(e.column, position.1, "column of \(e)", file: file, line: line)
        XCTAssertTrue(e.message.contains(fragment), "\(e.message) lacks \(fragment)", file: file, line: line)
    }

    // MARK: What it reads

    func testCommentsAndBlankLinesAreIgnored() {
        let tree = parse("# heading\n\n   \t\na = 1 # after a value\n# end")
        XCTAssertEqual(tree?.tableEntries?.map(\.key), ["a"])
        XCTAssertEqual(tree?["a"]?.integerValue, 1)
    }

    func testBareQuotedAndDottedKeysBuildNestedTables() {
        let tree = parse("""
            a.b.c = 1
            "quoted key" = 2
            'literal.key' = 3
            x . "y z" . w = 4
            bare-key_9 = 5
            """)
        XCTAssertEqual(tree?["a"]?["b"]?["c"]?.integerValue, 1)
        XCTAssertEqual(tree?["quoted key"]?.integerValue, 2)
        XCTAssertEqual(tree?["literal.key"]?.integerValue, 3, "a quoted dot is part of the key")
        XCTAssertEqual(tree?["x"]?["y z"]?["w"]?.integerValue, 4)
        XCTAssertEqual(tree?["bare-key_9"]?.integerValue, 5)
    }

    func testTablesKeepFileOrder() {
        let tree = parse("""
            [server]
            listen = "a"
            workers = 2
            [api.auth.jwt]
            secret = "s"
            [api.auth]
            enable = true
            """)
        XCTAssertEqual(tree?.tableEntries?.map(\.key), ["server", "api"])
        XCTAssertEqual(tree?["server"]?.tableEntries?.map(\.key), ["listen", "workers"])
        XCTAssertEqual(tree?["api"]?["auth"]?.tableEntries?.map(\.key), ["jwt", "enable"])
        XCTAssertEqual(tree?["api"]?["auth"]?["jwt"]?["secret"]?.stringValue, "s")
    }

    func testArrayOfTablesCollectsEachBlockInOrder() {
        let tree = parse("""
            [[route]]
            prefix = "/a/"
            [route.extra]
            n = 1
            [[route]]
            prefix = "/b/"
            """)
        let routes = tree?["route"]?.arrayValue
        XCTAssertEqual(routes?.count, 2)
        XCTAssertEqual(routes?[0]["prefix"]?.stringValue, "/a/")
        XCTAssertEqual(routes?[0]["extra"]?["n"]?.integerValue, 1, "a [route.x] header goes into the latest [[route]]")
        XCTAssertEqual(routes?[1]["prefix"]?.stringValue, "/b/")
        XCTAssertEqual(routes?[1].line, 5)
    }

    func testBasicStringEscapesAreDecoded() {
        // The last tab is a real one: tabs need no escape.
        let tree = parse(#"s = "q\" b\\ n\n t\t r\r bs\b ff\f e\u00E9 smile\U0001F600 tab"# + "\t" + #"raw""#)
        XCTAssertEqual(tree?["s"]?.stringValue, "q\" b\\ n\n t\t r\r bs\u{08} ff\u{0C} e\u{E9} smile\u{1F600} tab\traw")
    }

    func testLiteralStringsAreTakenAsWritten() {
        let tree = parse(#"p = 'C:\path\n "quoted"'"#)
        XCTAssertEqual(tree?["p"]?.stringValue, #"C:\path\n "quoted""#)
    }

    func testEmptyStringsAndArrays() {
        let tree = parse("a = \"\"\nb = ''\nc = []")
        XCTAssertEqual(tree?["a"]?.stringValue, "")
        XCTAssertEqual(tree?["b"]?.stringValue, "")
        XCTAssertEqual(tree?["c"]?.arrayValue?.count, 0)
    }

    func testIntegersAcceptSignsAndUnderscores() {
        let tree = parse("a = 42\nb = +5\nc = -7\nd = 1_000_000\ne = 0\nf = 9223372036854775807\ng = -9223372036854775808\nh = -0")
        XCTAssertEqual(tree?["a"]?.integerValue, 42)
        XCTAssertEqual(tree?["b"]?.integerValue, 5)
        XCTAssertEqual(tree?["c"]?.integerValue, -7)
        XCTAssertEqual(tree?["d"]?.integerValue, 1_000_000)
        XCTAssertEqual(tree?["e"]?.integerValue, 0)
        XCTAssertEqual(tree?["f"]?.integerValue, Int64.max)
        XCTAssertEqual(tree?["g"]?.integerValue, Int64.min)
        XCTAssertEqual(tree?["h"]?.integerValue, 0)
    }

    func testBooleans() {
        let tree = parse("yes = true\nno = false")
        XCTAssertEqual(tree?["yes"]?.boolValue, true)
        XCTAssertEqual(tree?["no"]?.boolValue, false)
    }

    func testArraysSpanLinesWithCommentsAndATrailingComma() {
        let tree = parse("""
            list = [
              "10.0.0.1",   # first
              '10.0.0.2',
              # a comment line
              [1, 2], true,
            ]
            after = 1
            """)
        let list = tree?["list"]?.arrayValue
        XCTAssertEqual(list?.count, 4)
        XCTAssertEqual(list?[0].stringValue, "10.0.0.1")
        XCTAssertEqual(list?[1].stringValue, "10.0.0.2")
        XCTAssertEqual(list?[2].arrayValue?.compactMap(\.integerValue), [1, 2])
        XCTAssertEqual(list?[3].boolValue, true)
        XCTAssertEqual(list?[1].line, 3)
        XCTAssertEqual(tree?["after"]?.line, 7)
    }

    func testValuesRememberTheirLineAndColumn() {
        let tree = parse("\n\n[server]\n  listen = \"x\"\n")
        XCTAssertEqual(tree?["server"]?.line, 3)
        XCTAssertEqual(tree?["server"]?["listen"]?.line, 4)
        XCTAssertEqual(tree?["server"]?["listen"]?.column, 12)
    }

    func testCRLFLineEndingsAndAByteOrderMarkAreAccepted() {
        let tree = parse("\u{FEFF}a = 1\r\n[t]\r\nb = \"x\"\r\n")
        XCTAssertEqual(tree?["a"]?.integerValue, 1)
        XCTAssertEqual(tree?["t"]?["b"]?.line, 3)
        assertRefused("a = 1\rb = 2", at: (1, 6), "carriage return")
    }

    // MARK: Refusals of unsupported TOML

    func testFloatsAreRefused() {
        assertRefused("x = 1.5", at: (1, 5), "floats are not supported")
        assertRefused("x = 1e6", at: (1, 5), "floats are not supported")
        assertRefused("x = -2.0e-3", at: (1, 5), "floats are not supported")
        assertRefused("x = inf", at: (1, 5), "floats are not supported")
        assertRefused("x = +nan", at: (1, 5), "floats are not supported")
    }

    func testDatesAndTimesAreRefused() {
        assertRefused("d = 1979-05-27", at: (1, 5), "dates and times are not supported")
        assertRefused("\nd = 1979-05-27T07:32:00Z", at: (2, 5), "dates and times are not supported")
        assertRefused("t = 07:32:00", at: (1, 5), "dates and times are not supported")
    }

    func testInlineTablesAreRefused() {
        assertRefused("[server]\npoint = { x = 1 }", at: (2, 9), "inline tables are not supported")
    }

    func testMultiLineStringsAreRefused() {
        assertRefused("s = \"\"\"\nline\n\"\"\"", at: (1, 5), "multi-line strings are not supported")
        assertRefused("s = '''x'''", at: (1, 5), "multi-line strings are not supported")
    }

    func testNonDecimalIntegersAreRefused() {
        assertRefused("n = 0xff", at: (1, 5), "hexadecimal, octal and binary")
        assertRefused("n = 0o17", at: (1, 5), "hexadecimal, octal and binary")
        assertRefused("n = 0b101", at: (1, 5), "hexadecimal, octal and binary")
    }

    func testMalformedIntegersAreRefused() {
        assertRefused("n = 012", at: (1, 5), "leading zeros")
        assertRefused("n = 1__0", at: (1, 5), "underscores")
        assertRefused("n = 1_", at: (1, 5), "underscores")
        assertRefused("n = 9223372036854775808", at: (1, 5), "out of range")
        assertRefused("n = -", at: (1, 5), "expected digits")
        assertRefused("n = 1-2", at: (1, 5), "not a decimal integer")
    }

    // MARK: Refusals of malformed input

    func testMissingValueIsRefusedAtItsColumn() {
        assertRefused("[server]\nlisten =", at: (2, 9), "expected a value")
        assertRefused("a = # nothing", at: (1, 5), "expected a value")
        assertRefused("a = [1, ]x", at: (1, 10), "expected the end of the line")
    }

    func testUnquotedWordIsRefusedWithAHint() {
        assertRefused("workers = auto", at: (1, 11), #"strings need quotes: "auto""#)
        assertRefused("body = 10MiB", at: (1, 8), #"strings need quotes: "10MiB""#)
        assertRefused("[server]\nheader_timeout = 15sec", at: (2, 18), #"strings need quotes: "15sec""#)
        assertRefused("password = Tr0ub4dor-and-3", at: (1, 12), #"found an unquoted secret (strings need quotes: "...")"#)
        assertRefused("[api.auth.jwt]\nsecret = 9f86d081884c7d659a2feaa0c55ad015", at: (2, 10), "an unquoted secret")
    }

    func testUnterminatedStringsAndArraysAreRefusedWhereTheyOpen() {
        assertRefused("a = 1\ns = \"abc\nt = 2", at: (2, 5), "unterminated string")
        assertRefused("s = 'abc", at: (1, 5), "unterminated string")
        assertRefused("a = [1,\n2", at: (1, 5), "unterminated array")
        assertRefused("a = [1 2]", at: (1, 8), "expected ',' or ']'")
        assertRefused("a = [1,,2]", at: (1, 8), "expected a value")
    }

    func testInvalidEscapesAreRefusedAtTheBackslash() {
        assertRefused(#"s = "a\qb""#, at: (1, 7), #"invalid escape \q"#)
        assertRefused(#"s = "\u12""#, at: (1, 6), "needs exactly 4 hexadecimal digits")
        assertRefused(#"s = "x\uD800""#, at: (1, 7), "not a Unicode scalar value")
        assertRefused(#"s = "\U0011FFFF""#, at: (1, 6), "not a Unicode scalar value")
    }

    func testControlCharactersMustBeEscaped() {
        assertRefused("s = \"a\u{01}b\"", at: (1, 7), "must be escaped")
        assertRefused("s = 'a\u{7F}b'", at: (1, 7), "control character")
    }

    func testGarbageAfterAValueIsRefused() {
        assertRefused("a = 1 2", at: (1, 7), "expected the end of the line")
        assertRefused("a = \"x\" \"y\"", at: (1, 9), "expected the end of the line")
        assertRefused("[t] x = 1", at: (1, 5), "expected the end of the line")
    }

    func testMissingEqualsAndMissingKeyAreRefused() {
        assertRefused("max connections = 5", at: (1, 5), "expected '=' after the key max")
        assertRefused("= 5", at: (1, 1), "expected a key")
        assertRefused("a. = 5", at: (1, 4), "expected a key")
    }

    func testNestingBeyondTheLimitsIsRefusedNotACrash() {
        // Found by FuzzTOML: the reader and the tree it builds recurse per level, so a document
        // nested some thousands deep overflowed the stack (a crash at start or on reload).
        let deepArray = "a = " + String(repeating: "[", count: 100_000)
        assertRefused(deepArray, at: (1, 5 + TOMLReader.maxArrayDepth), "arrays nested more than 32 deep")
        let deepHeader = "[" + String(repeating: "a.", count: 100_000) + "a]"
        assertRefused(deepHeader, at: (1, 2 + 2 * TOMLReader.maxKeyParts), "a key of more than 32 parts")
        assertRefused(String(repeating: "a.", count: 100_000) + "a = 1", at: (1, 1 + 2 * TOMLReader.maxKeyParts), "a key of more than 32 parts")
        // Up to the limits, as before.
        let arrays = String(repeating: "[", count: TOMLReader.maxArrayDepth) + String(repeating: "]", count: TOMLReader.maxArrayDepth)
        XCTAssertNotNil(parse("a = " + arrays))
        let key = Array(repeating: "k", count: TOMLReader.maxKeyParts).joined(separator: ".")
        XCTAssertEqual(parse("[\(key)]\n\(key) = 1")?.tableEntries?.count, 1)
    }

    func testUnclosedHeadersAreRefused() {
        assertRefused("[server\nlisten = \"x\"", at: (1, 8), "expected ']'")
        assertRefused("[[route]\n", at: (1, 8), "expected ']]'")
    }

    // MARK: Definitions, as TOML defines them

    func testDuplicateKeyIsRefusedAtTheSecondOne() {
        assertRefused("[server]\nlisten = \"a\"\n  listen = \"b\"", at: (3, 3), "duplicate key server.listen (first defined at line 2)")
        assertRefused("a.b = 1\na.b = 2", at: (2, 3), "duplicate key a.b")
        assertRefused("a = 1\n\"a\" = 2", at: (2, 1), "duplicate key a")
    }

    func testTableDefinedTwiceIsRefused() {
        assertRefused("[server]\na = 1\n[log]\n[server]\nb = 2", at: (4, 1), "table [server] is already defined at line 1")
        assertRefused("[a.b]\n[a . b]", at: (2, 1), "table [a.b] is already defined")
    }

    func testImplicitTableMayBeDefinedOnceLater() {
        let tree = parse("[api.auth.jwt]\nkid = \"k\"\n[api.auth]\nenable = true\n[api]\nx = 1")
        XCTAssertEqual(tree?["api"]?["auth"]?["enable"]?.boolValue, true)
        XCTAssertEqual(tree?["api"]?["x"]?.integerValue, 1)
        assertRefused("[a.b]\n[a]\n[a]", at: (3, 1), "table [a] is already defined at line 2")
    }

    func testDottedKeysAndHeadersCannotExtendEachOther() {
        assertRefused("a.b.c = 1\n[a.b]", at: (2, 1), "table [a.b] is already defined by dotted keys at line 1")
        assertRefused("[a.b.c]\nz = 9\n[a]\nb.c.t = 1", at: (4, 1), "opened by a [header]")
        let tree = parse("[fruit]\napple.color = \"red\"\n[fruit.apple.texture]\nsmooth = true")
        XCTAssertEqual(tree?["fruit"]?["apple"]?["texture"]?["smooth"]?.boolValue, true, "sub-tables of dotted tables are allowed")
    }

    func testValuesTablesAndArraysOfTablesCannotReplaceEachOther() {
        assertRefused("[a]\n[[a]]", at: (2, 1), "conflicts with the table [a]")
        assertRefused("a = []\n[[a]]", at: (2, 1), "a is already an array")
        assertRefused("[[a]]\n[a]", at: (2, 1), "[a] is already an array of tables")
        assertRefused("a = 1\n[a.b]", at: (2, 2), "a is already an integer (line 1)")
        assertRefused("a = 1\na.b = 2", at: (2, 1), "a is already an integer")
    }

    // MARK: Messages and helpers

    func testErrorDescriptionHasFileLineAndColumn() {
        do {
            _ = try TOMLReader.parse("[server]\nlisten = \"x\"\n\n\n\n\n\n\n\n\n\nworkers =", fileName: "gateway.conf")
            XCTFail("accepted")
        } catch {
            XCTAssertEqual(error.description, "gateway.conf:12:10: expected a value")
        }
    }

    func testIntegerRulesAreSharedWithTheEnvironment() {
        XCTAssertEqual(try TOMLReader.integer("1_000").get(), 1000)
        XCTAssertEqual(try TOMLReader.integer("-3").get(), -3)
        XCTAssertThrowsError(try TOMLReader.integer("07").get())
        XCTAssertThrowsError(try TOMLReader.integer("5s").get())
        XCTAssertThrowsError(try TOMLReader.integer("").get())
    }

    func testQuotedAndDisplayEscapeWhatIsNotBare() {
        XCTAssertEqual(TOMLReader.quoted("a\"b\\c\n\u{01}"), #""a\"b\\c\n\u0001""#)
        XCTAssertEqual(TOMLReader.display(["server", "max_connections"]), "server.max_connections")
        XCTAssertEqual(TOMLReader.display(["a", "b c", ""]), #"a."b c"."""#)
        let tree = parse("s = \(TOMLReader.quoted("a\"b\\c\n\u{01}\t"))")
        XCTAssertEqual(tree?["s"]?.stringValue, "a\"b\\c\n\u{01}\t", "quoted text reads back as the same string")
    }
}
