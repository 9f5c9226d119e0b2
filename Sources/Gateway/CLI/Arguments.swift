/// A command-line usage error: printed with the usage text, exit status 2.
struct UsageError: Error {
    let message: String
    init(_ message: String) { self.message = message }
}

/// `--name value` options, `--flag` switches and positional arguments of one verb. Every option
/// must be one the verb declares; anything else is a usage error, never silently ignored.
struct Arguments {
    private(set) var options: [String: String] = [:]
    private(set) var switches: Set<String> = []
    private(set) var positional: [String] = []

    init(_ args: ArraySlice<String>, options known: Set<String>, switches knownSwitches: Set<String> = []) throws {
        var i = args.startIndex
        while i < args.endIndex {
            let arg = args[i]
            if arg == "--" {
                positional.append(contentsOf: args[(i + 1)...])
                break
            }
            if arg.hasPrefix("--") {
                var name = String(arg.dropFirst(2))
                var value: String?
                if let eq = name.firstIndex(of: "=") {
                    value = String(name[name.index(after: eq)...])
                    name = String(name[..<eq])
                }
                if knownSwitches.contains(name) && value == nil {
                    switches.insert(name)
                } else if known.contains(name) {
                    if value == nil {
                        i += 1
                        guard i < args.endIndex else { throw UsageError("--\(name) needs a value") }
                        value = args[i]
                    }
                    guard options[name] == nil else { throw UsageError("--\(name) given twice") }
                    options[name] = value
                } else {
                    throw UsageError("unknown option --\(name)")
                }
            } else {
                positional.append(arg)
            }
            i += 1
        }
    }

    func require(_ name: String) throws -> String {
        guard let v = options[name] else { throw UsageError("--\(name) is required") }
        return v
    }

    func int(_ name: String, default value: Int64) throws -> Int64 {
        guard let text = options[name] else { return value }
        guard let v = Int64(text) else { throw UsageError("--\(name) must be an integer") }
        return v
    }
}
