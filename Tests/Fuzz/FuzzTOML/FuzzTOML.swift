import Foundation
import FuzzSupport
@testable import Gateway

/// `TOMLReader.parse` (gateway.conf) and `ConfigLoader.load(text:)` by their properties:
/// - parsing is deterministic (the same value, positions included, or the same error);
/// - an error points at a line of the document (1 ... number of line feeds + 1) and at a column
///   within that line (1 ... its length in scalars + 1);
/// - a value's position lies inside the document;
/// - an accepted document, written back by our own serialiser (every key quoted, values first,
///   then `[table]` and `[[array]]` sections with full paths), reads back as the same tree
///   (table order aside, positions aside);
/// - `ConfigLoader.load(text:)` of an accepted document loads or throws, never traps, and so
///   does its rewrite, with the same outcome and the same effective configuration.
enum TOMLFuzz {
    static func check(_ input: UnsafeRawBufferPointer) {
        // As ConfigLoader.load(path:) reads the file.
        guard let text = String(data: Data(input), encoding: .utf8) else { return }
        let lines = lineLengths(text)
        let first = Result { () throws(TOMLError) in try TOMLReader.parse(text) }
        let second = Result { () throws(TOMLError) in try TOMLReader.parse(text) }
        switch (first, second) {
        case let (.failure(a), .failure(b)):
            precondition(a == b, "two parses, two errors: \(a) / \(b)")
            precondition(a.line >= 1 && a.line <= lines.count, "error at line \(a.line) of \(lines.count): \(a)")
            precondition(a.column >= 1 && a.column <= lines[a.line - 1] + 1, "error at column \(a.column) of a line of \(lines[a.line - 1]): \(a)")
        case let (.success(a), .success(b)):
            precondition(same(a, b, positions: true), "two parses, two trees")
            checkPositions(a, lines, isRoot: true)
            var out = ""
            body(a.tableEntries!, [], &out)
            let again: TOMLValue
            do { again = try TOMLReader.parse(out) } catch {
                preconditionFailure("the rewrite does not parse: \(error)\n\(out)")
            }
            precondition(same(a, again, positions: false), "the rewrite reads back differently:\n\(out)")
            let loaded = load(text), reloaded = load(out)
            precondition((loaded == nil) == (reloaded == nil) && loaded == reloaded, "the rewrite loads differently")
        default:
            preconditionFailure("two parses, two verdicts")
        }
    }

    /// The effective configuration, or nil when the loader refuses the text.
    static func load(_ text: String) -> String? {
        guard let loaded = try? ConfigLoader.load(text: text, fileName: "fuzz.conf", environment: [:]) else { return nil }
        return ConfigLoader.effectiveText(loaded.config)
    }

    /// Scalars per line (line feeds split lines; a carriage return counts as a scalar of its line).
    static func lineLengths(_ text: String) -> [Int] {
        var lengths = [0]
        for u in text.unicodeScalars {
            if u == "\n" { lengths.append(0) } else { lengths[lengths.count - 1] += 1 }
        }
        return lengths
    }

    static func checkPositions(_ v: TOMLValue, _ lines: [Int], isRoot: Bool = false) {
        if !isRoot {
            precondition(v.line >= 1 && v.line <= lines.count && v.column >= 1 && v.column <= lines[v.line - 1] + 1,
                         "a value at \(v.line):\(v.column) outside the document")
        }
        switch v.kind {
        case .table(let entries): for e in entries { checkPositions(e.value, lines) }
        case .array(let items): for i in items { checkPositions(i, lines) }
        default: break
        }
    }

    /// Equal trees; tables compared as maps (the rewrite moves values before sub-tables).
    static func same(_ a: TOMLValue, _ b: TOMLValue, positions: Bool) -> Bool {
        if positions && (a.line != b.line || a.column != b.column) { return false }
        switch (a.kind, b.kind) {
        case let (.table(x), .table(y)):
            let ordered = positions ? (x, y) : (x.sorted { $0.key < $1.key }, y.sorted { $0.key < $1.key })
            return x.count == y.count && zip(ordered.0, ordered.1).allSatisfy {
                Array($0.key.unicodeScalars) == Array($1.key.unicodeScalars) && same($0.value, $1.value, positions: positions)
            }
        case let (.array(x), .array(y)):
            return x.count == y.count && zip(x, y).allSatisfy { same($0, $1, positions: positions) }
        case let (.string(x), .string(y)): return Array(x.unicodeScalars) == Array(y.unicodeScalars)
        case let (.integer(x), .integer(y)): return x == y
        case let (.bool(x), .bool(y)): return x == y
        default: return false
        }
    }

    // MARK: Our own serialiser

    /// A basic string: `"` and `\` escaped, every control as \uXXXX, the rest as it is.
    static func quote(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            if u == "\"" || u == "\\" {
                out += "\\" + String(u)
            } else if u.value < 0x20 || u.value == 0x7F {
                let h = String(u.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - h.count) + h
            } else {
                out.unicodeScalars.append(u)
            }
        }
        return out + "\""
    }

    static func path(_ p: [String]) -> String { p.map(quote).joined(separator: ".") }

    /// An array of tables: what only `[[name]]` makes (inline tables are not read).
    static func tables(_ v: TOMLValue) -> [TOMLValue]? {
        guard let items = v.arrayValue, !items.isEmpty, items.allSatisfy({ $0.tableEntries != nil }) else { return nil }
        return items
    }

    static func value(_ v: TOMLValue) -> String {
        switch v.kind {
        case .string(let s): return quote(s)
        case .integer(let n): return String(n)
        case .bool(let b): return b ? "true" : "false"
        case .array(let items): return "[" + items.map(value).joined(separator: ", ") + "]"
        case .table: preconditionFailure("a table inside an array value")
        }
    }

    static func body(_ entries: [(key: String, value: TOMLValue)], _ at: [String], _ out: inout String) {
        for (k, v) in entries where v.tableEntries == nil && tables(v) == nil { out += quote(k) + " = " + value(v) + "\n" }
        for (k, v) in entries {
            guard let sub = v.tableEntries else { continue }
            out += "[" + path(at + [k]) + "]\n"
            body(sub, at + [k], &out)
        }
        for (k, v) in entries {
            guard let elements = tables(v) else { continue }
            for e in elements {
                out += "[[" + path(at + [k]) + "]]\n"
                body(e.tableEntries!, at + [k], &out)
            }
        }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    TOMLFuzz.check(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}

@main enum Main {
    static func main() { FuzzReplay.main(fuzzOne) }
}
