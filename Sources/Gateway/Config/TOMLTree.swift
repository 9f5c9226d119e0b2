/// A table while the document is read: it remembers how it came to exist, because TOML lets a
/// table implied by `[a.b]` be defined later as `[a]`, but not a table defined twice, and not a
/// table opened with a header extended by dotted keys (or the other way round).
final class TOMLTableNode {
    enum Origin { case root, implicit, header, dotted, arrayElement }
    var origin: Origin
    let path: [String]
    var line: Int
    var column: Int
    var keys: [String] = []
    var children: [String: TOMLChild] = [:]

    init(_ origin: Origin, path: [String], line: Int, column: Int) {
        self.origin = origin
        self.path = path
        self.line = line
        self.column = column
    }

    func add(_ key: String, _ child: TOMLChild) {
        keys.append(key)
        children[key] = child
    }

    var value: TOMLValue {
        TOMLValue(.table(keys.map { ($0, children[$0]!.value) }), line: line, column: column)
    }
}

/// The array behind `[[name]]` headers.
final class TOMLTableArrayNode {
    let line: Int
    let column: Int
    var elements: [TOMLTableNode] = []
    init(line: Int, column: Int) { self.line = line; self.column = column }
}

enum TOMLChild {
    case value(TOMLValue)
    case table(TOMLTableNode)
    case tables(TOMLTableArrayNode)

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
struct TOMLKeyPart {
    let name: String
    let line: Int
    let column: Int
}

/// Building the tree as lines are read: headers, dotted keys and the table rules.
extension TOMLParser {
    // MARK: Building the tree

    /// Where a table header's leading segments lead: created implicitly if missing, the last
    /// element of an array of tables, or an error if a plain value is in the way.
    func descend(_ table: TOMLTableNode, _ part: TOMLKeyPart) throws(TOMLError) -> TOMLTableNode {
        let path = table.path + [part.name]
        switch table.children[part.name] {
        case nil:
            let t = TOMLTableNode(.implicit, path: path, line: part.line, column: part.column)
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

    mutating func defineTable(_ parts: [TOMLKeyPart], line l: Int, column c: Int) throws(TOMLError) {
        var table = root
        for part in parts.dropLast() { table = try descend(table, part) }
        let last = parts[parts.count - 1]
        let path = table.path + [last.name]
        let name = TOMLReader.display(path)
        switch table.children[last.name] {
        case nil:
            let t = TOMLTableNode(.header, path: path, line: l, column: c)
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

    mutating func appendTable(_ parts: [TOMLKeyPart], line l: Int, column c: Int) throws(TOMLError) {
        var table = root
        for part in parts.dropLast() { table = try descend(table, part) }
        let last = parts[parts.count - 1]
        let path = table.path + [last.name]
        let name = TOMLReader.display(path)
        let element = TOMLTableNode(.arrayElement, path: path, line: l, column: c)
        switch table.children[last.name] {
        case nil:
            let a = TOMLTableArrayNode(line: l, column: c)
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
    mutating func insert(_ parts: [TOMLKeyPart], _ v: TOMLValue) throws(TOMLError) {
        var table = current
        for part in parts.dropLast() {
            let path = table.path + [part.name]
            let name = TOMLReader.display(path)
            switch table.children[part.name] {
            case nil:
                let t = TOMLTableNode(.dotted, path: path, line: part.line, column: part.column)
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
